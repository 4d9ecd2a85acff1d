"""lock() behind PgBouncer in transaction pooling mode.

Transaction-level advisory locks live exactly as long as the transaction, so
they survive PgBouncer handing each transaction to whichever server connection
is free, and never leak to the next client of that connection.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import sessionmaker

import chrononaut
from chrononaut import RecordLockedError

from .procs_pgbouncer import Base, Ticket, hold_lock

PGBOUNCER = shutil.which("pgbouncer") or (
    "/usr/sbin/pgbouncer" if Path("/usr/sbin/pgbouncer").exists() else None
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def bouncer_url(clean_database: str) -> Iterator[str]:
    """A PgBouncer (transaction pooling, 2 server connections) in front of the test database."""
    if PGBOUNCER is None:
        pytest.skip("pgbouncer is not installed (apt-get install pgbouncer); .ci/run installs it")
    server = sa.engine.make_url(clean_database)
    if not server.host or server.host.startswith("/"):
        pytest.skip("the PgBouncer test needs a TCP server: set CHRONONAUT_TEST_DATABASE_URL")
    folder = Path(tempfile.mkdtemp(prefix="chrononaut-pgbouncer-"))
    folder.chmod(0o755)
    port = _free_port()
    (folder / "users.txt").write_text(f'"{server.username}" ""\n')
    (folder / "pgbouncer.ini").write_text(
        f"""[databases]
chrononaut = host={server.host} port={server.port or 5432} dbname={server.database} \
user={server.username}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {folder}/users.txt
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
    command = [PGBOUNCER, str(folder / "pgbouncer.ini")]
    if os.geteuid() == 0:
        command[1:1] = ["-u", "nobody"]  # PgBouncer refuses to run as root
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
        yield url.render_as_string(hide_password=False)
    finally:
        process.terminate()
        process.wait(10)
        shutil.rmtree(folder, ignore_errors=True)


def test_lock_excludes_a_second_client_behind_pgbouncer_transaction_pooling(
    clean_database, bouncer_url
):
    direct = sa.create_engine(clean_database)
    Base.metadata.create_all(direct)
    with direct.begin() as connection:
        connection.execute(sa.insert(Ticket.__table__).values(id=1, title="new", version=0))

    engine = sa.create_engine(bouncer_url, poolclass=sa.pool.NullPool)
    factory = sessionmaker(engine)
    chrononaut.listen(factory)
    context = multiprocessing.get_context("spawn")
    locked, release = context.Event(), context.Event()
    holder = context.Process(target=hold_lock, args=(bouncer_url, locked, release))
    holder.start()
    try:
        assert locked.wait(20), "the holder never got the lock"
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
        with direct.connect() as connection:
            left = connection.execute(
                sa.text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'")
            ).scalar()
            assert left == 0
            versions = connection.execute(
                sa.text("SELECT version FROM ticket_history ORDER BY version")
            ).scalars()
            assert list(versions) == [0, 1]
    finally:
        release.set()
        holder.join(5)
        if holder.is_alive():
            holder.terminate()
        engine.dispose()
        direct.dispose()
