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
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import sessionmaker

import chrononaut
from chrononaut import RecordLockedError
from chrononaut.locking import keys

from .procs_pgbouncer import Base, Ticket, hold_lock
from .servers import pgbouncer, server_pids

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
