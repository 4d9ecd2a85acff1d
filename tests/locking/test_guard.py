"""The lock-aware flush guard: no flush writes a record another transaction holds under lock().

Every holder is a real OS process (spawned) on the same PostgreSQL server;
steps are ordered with events and with the server's own lock state.
"""

from __future__ import annotations

import time

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import sessionmaker

import chrononaut
from chrononaut import ConflictError, LockTimeoutError, RecordLockedError, Settings
from chrononaut.locking import keys

from . import procs_guard as procs
from .procs_guard import GuardItem, GuardPair


@pytest.fixture
def tables(engine):
    procs.Base.metadata.create_all(engine)
    return engine


def seed(session, *records):
    session.add_all(records)
    session.commit()


def stored(engine, model, **pk):
    """(title, version, number of history rows) of a row, read on a fresh connection."""
    table = sa.inspect(model).local_table
    history = model.__history_mapper__.local_table
    where = [table.c[k] == v for k, v in pk.items()]
    with engine.connect() as connection:
        row = connection.execute(sa.select(table.c.title, table.c.version).where(*where)).first()
        count = connection.execute(
            sa.select(sa.func.count())
            .select_from(history)
            .where(*[history.c[k] == v for k, v in pk.items()])
        ).scalar_one()
    return (None if row is None else tuple(row)), count


def lock_wait_factory(engine, seconds):
    factory = sessionmaker(engine)
    chrononaut.listen(factory, settings=Settings(lock_wait=seconds))
    return factory


def assert_advisory_refusal(error, record):
    assert type(error) is RecordLockedError
    assert (error.record, error.owner, error.expires_at) == (record, None, None)
    assert record in str(error)
    assert "locked by another transaction" in str(error)


@pytest.mark.parametrize("shared", [False, True], ids=["exclusive", "shared"])
def test_flushing_an_update_of_a_record_another_process_locked_raises_and_writes_nothing(
    tables, session, clean_database, shared
):
    seed(session, GuardItem(id=1, title="draft"))
    item = session.get(GuardItem, 1)
    locked, release = procs.CTX.Event(), procs.CTX.Event()
    args = (clean_database, "GuardItem", (1,), locked, release, None, shared)
    with procs.child(procs.hold_lock, *args, signals=(release,)) as holder:
        assert locked.wait(procs.PARENT_WAIT)
        item.title = "mine"
        with pytest.raises(RecordLockedError) as exc_info:
            session.flush()
        assert_advisory_refusal(exc_info.value, "GuardItem(id=1)")
        session.rollback()
        assert stored(tables, GuardItem, id=1) == (("draft", 0), 0)
        release.set()
        assert procs.joined_ok(holder)


def test_flushing_a_delete_of_a_record_another_process_locked_raises_and_writes_nothing(
    tables, session, clean_database
):
    seed(session, GuardItem(id=1, title="draft"))
    item = session.get(GuardItem, 1)
    locked, release = procs.CTX.Event(), procs.CTX.Event()
    args = (clean_database, "GuardItem", (1,), locked, release)
    with procs.child(procs.hold_lock, *args, signals=(release,)) as holder:
        assert locked.wait(procs.PARENT_WAIT)
        session.delete(item)
        with pytest.raises(RecordLockedError) as exc_info:
            session.flush()
        assert_advisory_refusal(exc_info.value, "GuardItem(id=1)")
        session.rollback()
        assert stored(tables, GuardItem, id=1) == (("draft", 0), 0)
        release.set()
        assert procs.joined_ok(holder)


def test_a_refused_flush_writes_none_of_its_records_but_unlocked_records_alone_are_written(
    tables, session, clean_database
):
    seed(session, GuardItem(id=1, title="a"), GuardItem(id=2, title="b"))
    locked, release = procs.CTX.Event(), procs.CTX.Event()
    args = (clean_database, "GuardItem", (1,), locked, release)
    with procs.child(procs.hold_lock, *args, signals=(release,)) as holder:
        assert locked.wait(procs.PARENT_WAIT)
        first, second = session.get(GuardItem, 1), session.get(GuardItem, 2)
        first.title, second.title = "a2", "b2"
        with pytest.raises(RecordLockedError) as exc_info:
            session.flush()
        assert_advisory_refusal(exc_info.value, "GuardItem(id=1)")
        session.rollback()
        assert stored(tables, GuardItem, id=2) == (("b", 0), 0)

        session.get(GuardItem, 2).title = "b3"
        session.commit()  # the lock on record 1 does not stop a write of record 2
        assert stored(tables, GuardItem, id=2) == (("b3", 1), 1)
        assert stored(tables, GuardItem, id=1) == (("a", 0), 0)
        release.set()
        assert procs.joined_ok(holder)


def test_the_lock_holders_own_flushes_are_not_blocked_by_its_lock(tables, session):
    seed(session, GuardItem(id=1, title="draft"))
    item = session.get(GuardItem, 1)
    hi, lo = procs.advisory_parts("guard_item", (1,))
    with item.lock():
        holders = session.execute(
            sa.text(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
                "AND classid::bigint = :hi AND objid::bigint = :lo AND pid = pg_backend_pid()"
            ),
            {"hi": hi, "lo": lo},
        ).scalar()
        assert holders == 1
        item.title = "first"
        session.flush()
        item.title = "second"
        session.flush()
    assert stored(tables, GuardItem, id=1) == (("second", 2), 2)


def test_all_records_of_one_flush_are_checked_in_one_query(tables, session, clean_database):
    seed(session, *(GuardItem(id=i, title="t") for i in range(1, 51)))
    statements = []

    def count(conn, cursor, statement, parameters, context, executemany):
        if "pg_locks" in statement or "chrononaut_leases" in statement:
            statements.append(statement)

    items = session.scalars(sa.select(GuardItem).order_by(GuardItem.id)).all()
    locked, release = procs.CTX.Event(), procs.CTX.Event()
    args = (clean_database, "GuardItem", (50,), locked, release)
    sa.event.listen(tables, "before_cursor_execute", count)
    try:
        with procs.child(procs.hold_lock, *args, signals=(release,)) as holder:
            assert locked.wait(procs.PARENT_WAIT)
            for item in items:
                item.title = "changed"
            with pytest.raises(RecordLockedError) as exc_info:
                session.flush()
            assert_advisory_refusal(exc_info.value, "GuardItem(id=50)")
            assert len(statements) == 1
            session.rollback()
            release.set()
            assert procs.joined_ok(holder)

        statements.clear()
        for item in session.scalars(sa.select(GuardItem)).all():
            item.title = "changed"
        session.flush()
        assert len(statements) == 1
        session.commit()
    finally:
        sa.event.remove(tables, "before_cursor_execute", count)
    assert stored(tables, GuardItem, id=50) == (("changed", 1), 1)


def test_with_lock_wait_the_flush_waits_for_the_holder_to_commit_then_writes(
    tables, session, clean_database
):
    seed(session, GuardItem(id=1, title="draft"))
    factory = lock_wait_factory(tables, 3)
    with factory() as waiting:
        item = waiting.get(GuardItem, 1)
        locked, report = procs.CTX.Event(), procs.CTX.Queue()
        args = (clean_database, "GuardItem", (1,), locked, report, None)
        with procs.child(procs.hold_lock_until_waiter, *args) as holder:
            assert locked.wait(procs.PARENT_WAIT)
            item.title = "mine"
            waiting.commit()  # blocks on the holder's lock until the holder commits
            assert report.get(timeout=procs.PARENT_WAIT) is True  # the holder saw us wait
            assert procs.joined_ok(holder)
    assert stored(tables, GuardItem, id=1) == (("mine", 1), 1)


def test_with_lock_wait_a_flush_of_a_row_the_holder_changed_raises_conflict(
    tables, session, clean_database
):
    seed(session, GuardItem(id=1, title="draft"))
    factory = lock_wait_factory(tables, 3)
    with factory() as waiting:
        item = waiting.get(GuardItem, 1)
        locked, report = procs.CTX.Event(), procs.CTX.Queue()
        args = (clean_database, "GuardItem", (1,), locked, report, "holder's")
        with procs.child(procs.hold_lock_until_waiter, *args) as holder:
            assert locked.wait(procs.PARENT_WAIT)
            item.title = "mine"
            with pytest.raises(ConflictError) as exc_info:
                waiting.flush()
            assert report.get(timeout=procs.PARENT_WAIT) is True
            assert procs.joined_ok(holder)
        waiting.rollback()
    error = exc_info.value
    assert (error.record, error.expected_version, error.current_version) == (
        "GuardItem(id=1)",
        0,
        1,
    )
    assert [(c.version, c.user_id, c.columns) for c in error.changes] == [
        (1, "holder", ("title",))
    ]
    assert "version 1 by holder" in str(error)
    assert stored(tables, GuardItem, id=1) == (("holder's", 1), 1)


def test_with_lock_wait_a_holder_that_never_commits_times_out_and_the_session_survives(
    tables, session, clean_database
):
    seed(session, GuardItem(id=1, title="draft"))
    factory = lock_wait_factory(tables, 0.5)
    with factory() as waiting:
        item = waiting.get(GuardItem, 1)
        locked, release = procs.CTX.Event(), procs.CTX.Event()
        args = (clean_database, "GuardItem", (1,), locked, release, None, False, False)
        with procs.child(procs.hold_lock, *args, signals=(release,)) as holder:
            assert locked.wait(procs.PARENT_WAIT)
            item.title = "mine"
            started = time.monotonic()
            with pytest.raises(RecordLockedError) as exc_info:
                waiting.flush()
            elapsed = time.monotonic() - started
            error = exc_info.value
            assert isinstance(error, LockTimeoutError)
            assert (error.record, error.owner, error.expires_at) == ("GuardItem(id=1)", None, None)
            assert "GuardItem(id=1)" in str(error) and "0.5" in str(error)
            assert 0.4 <= elapsed < 3.0
            assert stored(tables, GuardItem, id=1) == (("draft", 0), 0)
            release.set()  # the holder rolls back
            assert procs.joined_ok(holder)
        # The timeout left the transaction usable: the same changes now go through.
        waiting.commit()
    assert stored(tables, GuardItem, id=1) == (("mine", 1), 1)


def test_a_locked_composite_key_record_is_refused_and_its_neighbours_are_written(
    tables, session, clean_database
):
    seed(
        session,
        GuardPair(region="eu", number=7, title="x"),
        GuardPair(region="eu", number=8, title="x"),
        GuardPair(region="us", number=7, title="x"),
    )
    locked, release = procs.CTX.Event(), procs.CTX.Event()
    args = (clean_database, "GuardPair", ("eu", 7), locked, release)
    with procs.child(procs.hold_lock, *args, signals=(release,)) as holder:
        assert locked.wait(procs.PARENT_WAIT)
        session.get(GuardPair, ("eu", 7)).title = "y"
        with pytest.raises(RecordLockedError) as exc_info:
            session.flush()
        assert_advisory_refusal(exc_info.value, "GuardPair(region='eu', number=7)")
        session.rollback()
        session.get(GuardPair, ("eu", 8)).title = "y"
        session.get(GuardPair, ("us", 7)).title = "y"
        session.commit()
        release.set()
        assert procs.joined_ok(holder)
    assert stored(tables, GuardPair, region="eu", number=7) == (("x", 0), 0)
    assert stored(tables, GuardPair, region="eu", number=8) == (("y", 1), 1)
    assert stored(tables, GuardPair, region="us", number=7) == (("y", 1), 1)


@pytest.mark.parametrize("records", [1, 40], ids=["probed", "lock-table-read"])
def test_a_flush_ignores_advisory_locks_held_in_another_database_of_the_server(
    tables, session, clean_database, records
):
    # Advisory locks are per database: another app on the same server whose
    # table has the same name and key does not lock this record. 40 records take
    # the guard's lock-table read (guard.PROBE_LIMIT), 1 its probes.
    seed(session, *(GuardItem(id=i, title="draft") for i in range(1, records + 1)))
    url = sa.engine.make_url(clean_database)
    other_database = url.set(database="template1" if url.database == "postgres" else "postgres")
    key = keys.advisory_key(keys.table_name(GuardItem), (1,))
    locked, release = procs.CTX.Event(), procs.CTX.Event()
    args = (other_database.render_as_string(hide_password=False), key, locked, release)
    with procs.child(procs.hold_raw_advisory_lock, *args, signals=(release,)) as holder:
        assert locked.wait(procs.PARENT_WAIT)
        for item in session.scalars(sa.select(GuardItem)):
            item.title = "mine"
        session.commit()
        release.set()
        assert procs.joined_ok(holder)
    assert stored(tables, GuardItem, id=1) == (("mine", 1), 1)
