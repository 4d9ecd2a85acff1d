"""``lock()`` across real OS processes on one PostgreSQL server.

Steps are ordered with Events, Barriers and the server's own lock state
(``pg_locks``); times are bounded only to check that a timeout fires.
"""

from __future__ import annotations

import time

import pytest
import sqlalchemy as sa

import chrononaut

from .procs_advisory import (
    CTX,
    WAIT,
    Base,
    Counter,
    backend_pid,
    children,
    history_versions,
    hold,
    increment,
    key_of,
    lock_in_argument_order,
    lock_pair_many,
    lock_rows,
    nested_opposite,
    try_lock,
    wait_until,
)


@pytest.fixture
def url(session_factory, clean_database):
    Base.metadata.create_all(session_factory.kw["bind"])
    with session_factory() as session:
        session.add_all([Counter(id=1, value=0), Counter(id=2, value=0)])
        session.commit()
    return clean_database


@pytest.fixture
def engine_(session_factory, url):
    return session_factory.kw["bind"]


@pytest.fixture
def key(url):
    return key_of(Counter(id=1))


def stored(engine, pk):
    table = Counter.__table__
    with engine.connect() as connection:
        query = sa.select(table.c.value, table.c.version).where(table.c.id == pk)
        return tuple(connection.execute(query).one())


def holder_spec(url, shared=False, new_value=None):
    acquired, release, result = CTX.Event(), CTX.Event(), CTX.Queue()
    spec = (hold, (url, "Counter", 1, shared, new_value, acquired, release, result))
    return spec, acquired, release, result


def test_lock_waits_until_the_holder_commits_then_reads_its_change(url, engine_, key):
    spec, acquired, release, held = holder_spec(url, new_value=100)
    waiting = CTX.Queue()
    with children(spec):
        assert acquired.wait(WAIT)
        holder_pid = held.get(timeout=WAIT)["pid"]
        with children((try_lock, (url, "Counter", 1, False, None, False, waiting))):
            waiter_pid = waiting.get(timeout=WAIT)["pid"]
            wait_until(
                lambda: (waiter_pid, "ExclusiveLock", False) in lock_rows(engine_, key),
                "the waiter to queue behind the holder",
            )
            assert sorted(lock_rows(engine_, key)) == sorted(
                [(holder_pid, "ExclusiveLock", True), (waiter_pid, "ExclusiveLock", False)]
            )
            assert waiting.empty()  # it has not got the lock
            release.set()
            report = waiting.get(timeout=WAIT)
        assert held.get(timeout=WAIT) == {"event": "committed"}
    assert report["event"] == "acquired"
    assert report["seen"] == 100  # the holder's change, visible only after its commit
    assert lock_rows(engine_, key) == []


def test_nowait_raises_record_locked_at_once_and_keeps_the_transaction(
    session_factory, url, engine_
):
    spec, acquired, release, held = holder_spec(url)
    with children(spec), session_factory() as session:
        assert acquired.wait(WAIT)
        counter, other = session.get(Counter, 1), session.get(Counter, 2)
        other.value = 5
        session.flush()
        started = time.monotonic()
        with pytest.raises(chrononaut.RecordLockedError) as exc_info, counter.lock(nowait=True):
            pass
        assert time.monotonic() - started < 2.0
        error = exc_info.value
        assert type(error) is chrononaut.RecordLockedError
        assert str(error) == "Counter(id=1) is locked by another transaction."
        assert (error.record, error.owner, error.expires_at) == ("Counter(id=1)", None, None)
        assert session.execute(sa.text("SELECT 1")).scalar_one() == 1
        session.commit()
        release.set()
        assert held.get(timeout=WAIT)["event"] == "holding"
        assert held.get(timeout=WAIT) == {"event": "committed"}
    assert stored(engine_, 2) == (5, 1)


def test_timeout_raises_lock_timeout_after_about_that_long_and_keeps_the_transaction(
    session_factory, url, engine_, key
):
    spec, acquired, release, held = holder_spec(url)
    with children(spec), session_factory() as session:
        assert acquired.wait(WAIT)
        before = session.execute(sa.text("SHOW lock_timeout")).scalar_one()
        counter, other = session.get(Counter, 1), session.get(Counter, 2)
        other.value = 6
        session.flush()
        started = time.monotonic()
        with pytest.raises(chrononaut.LockTimeoutError) as exc_info, counter.lock(timeout=0.5):
            pass
        elapsed = time.monotonic() - started
        assert 0.4 <= elapsed < 3.0
        error = exc_info.value
        assert isinstance(error, chrononaut.RecordLockedError)
        assert str(error) == "Timed out after 0.5s waiting for the lock on Counter(id=1)."
        assert (error.record, error.owner, error.expires_at) == ("Counter(id=1)", None, None)
        # The caller's transaction is intact: its flushed work, settings and queries.
        pid = backend_pid(session)
        assert session.execute(sa.text("SHOW lock_timeout")).scalar_one() == before
        assert session.get(Counter, 2).value == 6
        assert (pid, "ExclusiveLock", False) not in lock_rows(engine_, key)
        session.commit()
        assert stored(engine_, 2) == (6, 1)
        release.set()
        assert held.get(timeout=WAIT)["event"] == "holding"
        assert held.get(timeout=WAIT) == {"event": "committed"}
        with counter.lock(timeout=0.5):
            counter.value = 1
    assert stored(engine_, 1) == (1, 1)


def test_shared_locks_coexist_and_an_exclusive_nowait_fails(session_factory, url, engine_, key):
    first, acquired_1, release_1, held_1 = holder_spec(url, shared=True)
    second, acquired_2, release_2, held_2 = holder_spec(url, shared=True)
    with children(first, second), session_factory() as session:
        # Each holder keeps its lock until released, so both hold it at once.
        assert acquired_1.wait(WAIT) and acquired_2.wait(WAIT)
        pids = sorted([held_1.get(timeout=WAIT)["pid"], held_2.get(timeout=WAIT)["pid"]])
        assert lock_rows(engine_, key) == [(pid, "ShareLock", True) for pid in pids]
        counter = session.get(Counter, 1)
        assert counter.is_locked() is True
        with pytest.raises(chrononaut.RecordLockedError) as exc_info, counter.lock(nowait=True):
            pass
        assert exc_info.value.record == "Counter(id=1)"
        assert "is locked by another transaction" in str(exc_info.value)
        with counter.lock(shared=True, nowait=True):  # a third shared holder is welcome
            assert len(lock_rows(engine_, key)) == 3
        release_1.set()
        release_2.set()
        assert held_1.get(timeout=WAIT) == held_2.get(timeout=WAIT) == {"event": "committed"}
    assert lock_rows(engine_, key) == []


def test_four_processes_incrementing_inside_lock_lose_no_update(url, engine_):
    processes, times = 4, 25
    barrier, done = CTX.Barrier(processes), CTX.Queue()
    specs = [(increment, (url, 1, times, barrier, done)) for _ in range(processes)]
    with children(*specs):
        reports = [done.get(timeout=WAIT) for _ in range(processes)]
    assert reports == [{"event": "done"}] * processes
    total = processes * times
    assert stored(engine_, 1) == (total, total)
    assert history_versions(engine_, Counter) == list(range(total))


def test_locking_the_same_pair_in_opposite_orders_never_deadlocks(url, engine_):
    iterations = 40
    barrier, done = CTX.Barrier(2), CTX.Queue()
    specs = [
        (lock_pair_many, (url, (1, 2), iterations, barrier, done)),
        (lock_pair_many, (url, (2, 1), iterations, barrier, done)),
    ]
    with children(*specs):
        reports = [done.get(timeout=WAIT) for _ in specs]
    assert reports == [{"event": "done", "errors": []}] * 2
    assert stored(engine_, 1) == stored(engine_, 2) == (2 * iterations, 2 * iterations)


def test_several_records_are_locked_in_key_order_whatever_the_argument_order(url, engine_):
    low, high = sorted((Counter(id=1), Counter(id=2)), key=key_of)
    result = CTX.Queue()
    with engine_.connect() as holder:
        holder.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": key_of(high)})
        # The child names the higher key first; it must take the lower one first.
        with children((lock_in_argument_order, (url, (high.id, low.id), result))):
            pid = result.get(timeout=WAIT)["pid"]
            wait_until(
                lambda: (pid, "ExclusiveLock", False) in lock_rows(engine_, key_of(high)),
                "the child to wait for the higher key",
            )
            assert lock_rows(engine_, key_of(low)) == [(pid, "ExclusiveLock", True)]
            holder.commit()  # releases the higher key: the child gets both
            assert result.get(timeout=WAIT) == {"event": "acquired"}


def _waits_for_a_lock(engine, pid):
    with engine.connect() as connection:
        return connection.execute(
            sa.text("SELECT EXISTS (SELECT 1 FROM pg_locks WHERE pid = :p AND NOT granted)"),
            {"p": pid},
        ).scalar()


@pytest.mark.parametrize("target", [1, 302], ids=["first-written", "302nd-written"])
def test_lock_waits_for_a_write_another_transaction_has_not_committed(
    session_factory, url, engine_, target
):
    # However many records the writer's transaction has written, a lock() of one
    # of them waits for that write and then reads it: the holder's own change
    # never fails on a write that was already in flight.
    with session_factory() as writer:
        writer.add_all(Counter(id=i, value=0) for i in range(3, 303))
        writer.commit()
        for counter in writer.scalars(sa.select(Counter)):
            counter.value = 41
        writer.flush()  # 302 uncommitted writes
        result = CTX.Queue()
        with children((try_lock, (url, "Counter", target, False, None, False, result))):
            pid = result.get(timeout=WAIT)["pid"]
            wait_until(lambda: _waits_for_a_lock(engine_, pid), "lock() to wait for the write")
            writer.commit()
            report = result.get(timeout=WAIT)
    assert (report["event"], report["seen"]) == ("acquired", 41)


@pytest.mark.parametrize("how", ["nowait", "timeout"])
def test_lock_of_a_record_with_an_uncommitted_write_refuses_without_waiting_long(
    session_factory, url, engine_, how
):
    with session_factory() as writer:
        writer.get(Counter, 1).value = 41
        writer.flush()
        result = CTX.Queue()
        nowait, timeout = (True, None) if how == "nowait" else (False, 0.3)
        with children((try_lock, (url, "Counter", 1, nowait, timeout, False, result))):
            result.get(timeout=WAIT)  # asking
            report = result.get(timeout=WAIT)
        writer.rollback()
    expected = "RecordLockedError" if how == "nowait" else "LockTimeoutError"
    assert (report["event"], report["type"], report["record"]) == (
        "error",
        expected,
        "Counter(id=1)",
    )
    assert lock_rows(engine_, key_of(Counter(id=1))) == []


def test_opposite_nested_locks_surface_as_deadlock_error(url, engine_):
    barrier, results = CTX.Barrier(2), CTX.Queue()
    specs = [
        (nested_opposite, (url, 1, 2, barrier, results)),
        (nested_opposite, (url, 2, 1, barrier, results)),
    ]
    with children(*specs):
        reports = sorted(
            (results.get(timeout=WAIT) for _ in specs), key=lambda r: r["event"] == "error"
        )
    winner, loser = reports
    assert winner == {"event": "committed", "outer": winner["outer"]}
    assert loser["type"] == "DeadlockError"
    assert loser["is_record_locked"] is True
    blocked_on = f"Counter(id={winner['outer']})"  # the loser's inner record
    assert loser["record"] == blocked_on
    assert loser["message"].startswith(f"Deadlock while locking {blocked_on}; ")
    assert "roll back and retry" in loser["message"]
    inner = 3 - winner["outer"]
    assert stored(engine_, inner) == (1, 1)  # only the winner's increment
    assert stored(engine_, winner["outer"]) == (0, 0)
    assert history_versions(engine_, Counter) == [0]


def test_terminated_lock_holder_frees_the_lock_and_leaves_no_history(
    session_factory, url, engine_, key
):
    with session_factory() as session:
        session.get(Counter, 1).value = 1
        session.commit()
    assert history_versions(engine_, Counter) == [0]
    spec, acquired, release, held = holder_spec(url, new_value=999)
    taker = CTX.Queue()
    with children(spec):
        assert acquired.wait(WAIT)
        holder_pid = held.get(timeout=WAIT)["pid"]  # it has flushed 999 and its history row
        assert lock_rows(engine_, key) == [(holder_pid, "ExclusiveLock", True)]
        with engine_.connect() as connection:
            killed = connection.execute(
                sa.text("SELECT pg_terminate_backend(:p)"), {"p": holder_pid}
            ).scalar_one()
        assert killed is True
        wait_until(lambda: lock_rows(engine_, key) == [], "the lock to be freed")
        with children((try_lock, (url, "Counter", 1, True, None, False, taker))):
            assert taker.get(timeout=WAIT)["event"] == "asking"
            report = taker.get(timeout=WAIT)
        release.set()
        holder_report = held.get(timeout=WAIT)
    assert report["event"] == "acquired"
    assert report["seen"] == 1
    assert holder_report["event"] == "error"
    assert stored(engine_, 1) == (1, 1)
    assert history_versions(engine_, Counter) == [0]
