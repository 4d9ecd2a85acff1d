"""lock() behind PgBouncer in transaction pooling mode.

Transaction-level advisory locks live exactly as long as the transaction, so
they survive PgBouncer handing each transaction to whichever server connection
is free, and never leak to the next client of that connection.

PgBouncer listens on TCP 127.0.0.1 and reaches the server over TCP or, for the
embedded server the README's plain ``pytest`` starts, through its Unix socket.
The lock checks look only at the test database and at PgBouncer's own server
connections (their pids, from PgBouncer's ``SHOW SERVERS``), so other sessions
on the same server, in this database or another, cannot change the outcome.
"""

from __future__ import annotations

import multiprocessing
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import pytest
import sqlalchemy as sa
from sqlalchemy.orm import sessionmaker

import chrononaut
from chrononaut import RecordLockedError
from chrononaut.locking import keys

from .procs_pgbouncer import Base, Ticket, hold_lock

PGBOUNCER = shutil.which("pgbouncer") or (
    "/usr/sbin/pgbouncer" if Path("/usr/sbin/pgbouncer").exists() else None
)

#: The advisory locks held in the current database by the backends in ``:pids``.
ADVISORY_LOCKS = sa.text(
    "SELECT classid::bigint, objid::bigint, granted FROM pg_locks "
    "WHERE locktype = 'advisory' AND pid = ANY(:pids) "
    "AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
    "ORDER BY classid, objid"
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _run_as(server_host: str) -> list[str]:
    """PgBouncer refuses to run as root: the owner of the server's socket directory, or nobody."""
    if os.geteuid() != 0:
        return []
    if server_host.startswith("/"):
        owner = pwd.getpwuid(os.stat(server_host).st_uid).pw_name
        if owner != "root":
            return ["-u", owner]  # the embedded server's socket directory is its owner's only
    return ["-u", "nobody"]


@pytest.fixture
def bouncer_url(clean_database: str) -> Iterator[str]:
    """A PgBouncer (transaction pooling, 2 server connections) in front of the test database."""
    if PGBOUNCER is None:
        pytest.skip("pgbouncer is not installed (apt-get install pgbouncer); .ci/run installs it")
    server = sa.engine.make_url(clean_database)
    host = server.host or server.query.get("host")
    if not isinstance(host, str):
        pytest.skip(f"cannot tell PgBouncer where the server of {server!r} listens: name its host")
    folder = Path(tempfile.mkdtemp(prefix="chrononaut-pgbouncer-"))
    folder.chmod(0o755)
    port = _free_port()
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
default_pool_size = 2
max_client_conn = 20
logfile = {folder}/pgbouncer.log
ignore_startup_parameters = extra_float_digits
"""
    )
    (folder / "pgbouncer.log").touch()
    for path in folder.iterdir():
        path.chmod(0o666)  # readable, and the log writable, by the unprivileged user
    command = [PGBOUNCER, *_run_as(host), str(folder / "pgbouncer.ini")]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    log = (folder / "pgbouncer.log").read_text(errors="replace")[-2000:]
                    pytest.fail(f"pgbouncer did not start (exit {process.poll()}): {log}")
                time.sleep(0.05)
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


def advisory_locks(direct: sa.Engine, pids: list[int]) -> list[tuple[int, int, bool]]:
    """``(classid, objid, granted)`` of the advisory locks ``pids`` hold in the test database."""
    with direct.connect() as connection:
        return [tuple(row) for row in connection.execute(ADVISORY_LOCKS, {"pids": pids})]


def test_lock_excludes_a_second_client_behind_pgbouncer_transaction_pooling(
    clean_database, bouncer_url
):
    direct = sa.create_engine(clean_database, poolclass=sa.pool.NullPool)
    Base.metadata.create_all(direct)
    with direct.begin() as connection:
        connection.execute(sa.insert(Ticket.__table__).values(id=1, title="new", version=0))
    ticket_lock = (*keys.split_key(keys.advisory_key("ticket", (1,))), True)
    # A bystander on the same server and database, not behind PgBouncer, holds an
    # advisory lock of its own all along: the checks below must not see it.
    bystander = direct.connect()
    bystander.execute(sa.text("SELECT pg_advisory_lock(7, 7)"))

    engine = sa.create_engine(bouncer_url, poolclass=sa.pool.NullPool)
    factory = sessionmaker(engine)
    chrononaut.listen(factory)
    context = multiprocessing.get_context("spawn")
    locked, release = context.Event(), context.Event()
    holder = context.Process(target=hold_lock, args=(bouncer_url, locked, release))
    holder.start()
    try:
        assert locked.wait(20), "the holder never got the lock"
        # The holder's lock is seen where the checks look: a PgBouncer server connection.
        assert advisory_locks(direct, server_pids(bouncer_url)) == [ticket_lock]
        with factory() as session:
            ticket = session.get(Ticket, 1)
            with pytest.raises(RecordLockedError) as exc_info, ticket.lock(nowait=True):
                pass
            assert exc_info.value.record == "Ticket(id=1)"
            assert exc_info.value.owner is None
            session.rollback()
            assert ticket.is_locked()
            session.rollback()
        release.set()
        holder.join(20)
        assert holder.exitcode == 0

        # The holder's commit released the lock; its server connection, reused by
        # the next transaction, carries no leftover lock.
        with factory() as session:
            ticket = session.get(Ticket, 1)
            with ticket.lock(nowait=True):
                assert ticket.title == "edited by the holder"
                ticket.title = "edited through pgbouncer"
        pids = server_pids(bouncer_url)
        assert pids, "PgBouncer has no server connections left to check"
        assert advisory_locks(direct, pids) == []
        with direct.connect() as connection:
            versions = connection.execute(
                sa.text("SELECT version FROM ticket_history ORDER BY version")
            ).scalars()
            assert list(versions) == [0, 1]
    finally:
        release.set()
        holder.join(5)
        if holder.is_alive():
            holder.terminate()
        bystander.close()
        engine.dispose()
        direct.dispose()
