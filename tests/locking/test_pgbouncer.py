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
import re
import subprocess
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import sessionmaker

import chrononaut
from chrononaut import RecordLockedError
from chrononaut.locking import keys

from .procs_pgbouncer import Base, Ticket, hold_lock
from .servers import PGBOUNCER, pgbouncer, server_pids

#: The advisory locks held in the current database by the backends in ``:pids``.
ADVISORY_LOCKS = sa.text(
    "SELECT classid::bigint, objid::bigint, granted FROM pg_locks "
    "WHERE locktype = 'advisory' AND pid = ANY(:pids) "
    "AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
    "ORDER BY classid, objid"
)


@pytest.fixture
def bouncer_url(clean_database: str) -> Iterator[str]:
    """A PgBouncer (transaction pooling, 2 server connections) in front of the test database."""
    with pgbouncer(clean_database, pool_size=2) as url:
        yield url


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


def _edit_through(url: sa.URL, rounds: int, **connect_args: object) -> list[int]:
    """Edit ticket 1 under ``lock()`` ``rounds`` times through one pooled psycopg 3 connection.

    Every other round a second client keeps one of PgBouncer's two server
    connections busy in a transaction, so consecutive transactions of the
    pooled client run on different server connections. Returns the backend pid
    each round ran on.
    """
    engine = sa.create_engine(url, pool_size=1, max_overflow=0, connect_args=connect_args)
    pinning = sa.create_engine(url, poolclass=sa.pool.NullPool, connect_args=connect_args)
    factory = sessionmaker(engine)
    chrononaut.listen(factory)
    pids = []
    try:
        for round_ in range(rounds):
            pin = pinning.connect() if round_ % 2 else None
            if pin is not None:
                pin.execute(sa.text("SELECT 1"))  # a transaction: holds a server connection
            with factory() as session:
                ticket = session.get(Ticket, 1)
                with ticket.lock():
                    pids.append(session.execute(sa.text("SELECT pg_backend_pid()")).scalar())
                    ticket.title = f"edit {round_}"
            if pin is not None:
                pin.close()
    finally:
        engine.dispose()
        pinning.dispose()
    return pids


def test_psycopg3_without_prepared_statements_works_behind_transaction_pooling(
    clean_database, bouncer_url
):
    """The README's PgBouncer setting for psycopg 3: ``prepare_threshold=None``.

    psycopg 3 prepares a statement on the server connection after running it five
    times (``prepare_threshold``); PgBouncer before 1.21 (or with
    ``max_prepared_statements = 0``) hands the next transaction another server
    connection, where that statement does not exist. With preparing off, lock()
    and history work however PgBouncer assigns connections.
    """
    direct = sa.create_engine(clean_database, poolclass=sa.pool.NullPool)
    Base.metadata.create_all(direct)
    with direct.begin() as connection:
        connection.execute(sa.insert(Ticket.__table__).values(id=1, title="new", version=0))
    url = sa.make_url(bouncer_url).set(drivername="postgresql+psycopg")
    try:
        pids = _edit_through(url, 12, prepare_threshold=None)
        assert len(set(pids)) == 2, f"every round ran on the same server connection: {pids}"
        with direct.connect() as connection:
            versions = connection.execute(
                sa.text("SELECT version FROM ticket_history ORDER BY version")
            ).scalars()
            assert list(versions) == list(range(12))
            title = connection.execute(sa.text("SELECT title FROM ticket")).scalar()
            assert title == "edit 11"
    finally:
        direct.dispose()


def _pgbouncer_version() -> tuple[int, ...]:
    output = subprocess.run([PGBOUNCER, "--version"], capture_output=True, text=True).stdout
    match = re.search(r"PgBouncer (\d+)\.(\d+)", output)
    assert match, output
    return tuple(int(part) for part in match.groups())


def test_psycopg3_default_prepared_statements_break_behind_old_pgbouncer(
    clean_database, bouncer_url
):
    """Why the README asks for ``prepare_threshold=None``: without it, the sixth run of a
    statement fails on whichever server connection did not prepare it."""
    if PGBOUNCER is None or _pgbouncer_version() >= (1, 21):
        pytest.skip("PgBouncer 1.21 and later can track prepared statements")
    direct = sa.create_engine(clean_database, poolclass=sa.pool.NullPool)
    Base.metadata.create_all(direct)
    with direct.begin() as connection:
        connection.execute(sa.insert(Ticket.__table__).values(id=1, title="new", version=0))
    url = sa.make_url(bouncer_url).set(drivername="postgresql+psycopg")
    try:
        with pytest.raises(sa.exc.ProgrammingError, match=r"prepared statement .* does not exist"):
            _edit_through(url, 12)
    finally:
        direct.dispose()
