"""``with record.lock():`` and ``chrononaut.lock(*records)`` within one process.

Blocking and ordering across processes are in ``test_advisory_processes.py``;
here each step is sequential, possibly over two sessions (two backends).
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa

import chrononaut

from .procs_advisory import (
    Base,
    Counter,
    backend_pid,
    history_versions,
    key_of,
    lock_rows,
)


class Boom(Exception):
    pass


@pytest.fixture
def engine_(session_factory):
    engine = session_factory.kw["bind"]
    Base.metadata.create_all(engine)
    with session_factory() as session:
        session.add_all([Counter(id=1, value=0), Counter(id=2, value=0)])
        session.commit()
    return engine


def stored(engine, pk):
    with engine.connect() as connection:
        table = Counter.__table__
        row = connection.execute(
            sa.select(table.c.value, table.c.version).where(table.c.id == pk)
        ).one()
        return tuple(row)


def test_lock_takes_a_transaction_advisory_lock_released_at_commit(session_factory, engine_):
    with session_factory() as session:
        counter = session.get(Counter, 1)
        pid = backend_pid(session)
        with counter.lock():
            assert lock_rows(engine_, key_of(counter)) == [(pid, "ExclusiveLock", True)]
        assert lock_rows(engine_, key_of(counter)) == []
        # The backend that held the lock lives on in the pool, without the lock.
        with engine_.connect() as connection:
            alive = connection.execute(
                sa.text("SELECT count(*) FROM pg_stat_activity WHERE pid = :p"), {"p": pid}
            ).scalar_one()
        assert alive == 1


def test_shared_lock_is_a_share_mode_advisory_lock(session_factory, engine_):
    with session_factory() as session:
        counter = session.get(Counter, 1)
        pid = backend_pid(session)
        with counter.lock(shared=True):
            assert lock_rows(engine_, key_of(counter)) == [(pid, "ShareLock", True)]
        assert lock_rows(engine_, key_of(counter)) == []


def test_lock_refreshes_the_record_with_another_sessions_committed_change(
    session_factory, engine_
):
    with session_factory() as session, session_factory() as other:
        counter = session.get(Counter, 1)
        assert counter.value == 0
        other.get(Counter, 1).value = 41
        other.commit()
        assert counter.value == 0  # still the state loaded in this transaction
        with counter.lock():
            assert (counter.value, counter.version) == (41, 1)
            counter.value += 1
    assert stored(engine_, 1) == (42, 2)
    assert history_versions(engine_, Counter) == [0, 1]


def test_lock_of_a_record_with_unflushed_changes_raises(session_factory, engine_):
    with session_factory() as session:
        counter = session.get(Counter, 1)
        counter.value = 3
        with pytest.raises(chrononaut.ChrononautException) as exc_info, counter.lock():
            pass
        assert type(exc_info.value) is chrononaut.ChrononautException
        assert str(exc_info.value) == (
            "Counter(id=1) has unflushed changes, which the refresh after locking would "
            "discard; lock it before changing it."
        )
        assert lock_rows(engine_, key_of(counter)) == []
        assert counter.value == 3  # nothing discarded


def test_leaving_the_block_commits_changes_and_writes_history(session_factory, engine_):
    with session_factory() as session:
        counter = session.get(Counter, 1)
        with counter.lock():
            counter.value = 5
        assert not session.in_transaction()
    assert stored(engine_, 1) == (5, 1)
    assert history_versions(engine_, Counter) == [0]


def test_exception_inside_the_block_rolls_back_and_propagates(session_factory, engine_):
    with session_factory() as session:
        counter = session.get(Counter, 1)
        with pytest.raises(Boom) as exc_info, counter.lock():
            counter.value = 7
            session.flush()
            raise Boom("inside the block")
        assert str(exc_info.value) == "inside the block"
        assert lock_rows(engine_, key_of(counter)) == []
        assert stored(engine_, 1) == (0, 0)
        assert history_versions(engine_, Counter) == []
        with counter.lock():  # the session is usable again
            assert counter.value == 0
            counter.value = 1
    assert stored(engine_, 1) == (1, 1)


@pytest.mark.parametrize("action", ["commit", "rollback"])
def test_commit_or_rollback_inside_the_block_raises_and_keeps_the_lock(
    session_factory, engine_, action
):
    with session_factory() as session:
        counter = session.get(Counter, 1)
        pid = backend_pid(session)
        with counter.lock():
            counter.value = 9
            session.flush()
            with pytest.raises(chrononaut.ChrononautException) as exc_info:
                getattr(session, action)()
            assert str(exc_info.value) == (
                f"session.{action}() inside a lock() block would release the lock before "
                "the block ends; leave the block to commit, or raise to roll back."
            )
            assert lock_rows(engine_, key_of(counter)) == [(pid, "ExclusiveLock", True)]
            assert stored(engine_, 1) == (0, 0)  # nothing committed yet
            counter.value += 1
    assert stored(engine_, 1) == (10, 2)
    assert lock_rows(engine_, key_of(counter)) == []


def test_nested_lock_blocks_commit_only_when_the_outermost_ends(session_factory, engine_):
    with session_factory() as session:
        first, second = session.get(Counter, 1), session.get(Counter, 2)
        pid = backend_pid(session)
        with first.lock():
            first.value = 1
            with second.lock():
                second.value = 2
            assert session.in_transaction()
            assert (stored(engine_, 1), stored(engine_, 2)) == ((0, 0), (0, 0))
            assert lock_rows(engine_, key_of(first)) == [(pid, "ExclusiveLock", True)]
            assert lock_rows(engine_, key_of(second)) == [(pid, "ExclusiveLock", True)]
            with pytest.raises(chrononaut.ChrononautException) as exc_info:
                session.commit()  # still inside the outer block
            assert "inside a lock() block" in str(exc_info.value)
        assert (stored(engine_, 1), stored(engine_, 2)) == ((1, 1), (2, 1))
        assert lock_rows(engine_, key_of(second)) == []


def test_exception_in_a_nested_block_rolls_back_the_outermost(session_factory, engine_):
    with session_factory() as session:
        first, second = session.get(Counter, 1), session.get(Counter, 2)
        with pytest.raises(Boom) as exc_info, first.lock():
            first.value = 1
            with second.lock():
                second.value = 2
                raise Boom("inner")
        assert exc_info.value.args == ("inner",)
        assert (stored(engine_, 1), stored(engine_, 2)) == ((0, 0), (0, 0))
        assert lock_rows(engine_, key_of(first)) == []
        assert history_versions(engine_, Counter) == []


def test_lock_of_several_records_locks_refreshes_and_commits_them_all(session_factory, engine_):
    with session_factory() as session, session_factory() as other:
        first, second = session.get(Counter, 1), session.get(Counter, 2)
        other.get(Counter, 2).value = 20
        other.commit()
        pid = backend_pid(session)
        with chrononaut.lock(second, first):
            assert second.value == 20
            assert lock_rows(engine_, key_of(first)) == [(pid, "ExclusiveLock", True)]
            assert lock_rows(engine_, key_of(second)) == [(pid, "ExclusiveLock", True)]
            first.value, second.value = 1, 21
    assert (stored(engine_, 1), stored(engine_, 2)) == ((1, 1), (21, 2))


@pytest.mark.parametrize("shared", [False, True])
def test_is_locked_is_true_only_for_another_sessions_lock(session_factory, engine_, shared):
    with session_factory() as holder, session_factory() as observer:
        held, seen = holder.get(Counter, 1), observer.get(Counter, 1)
        assert seen.is_locked() is False
        observer.commit()
        with held.lock(shared=shared):
            assert held.is_locked() is False  # its own lock
            assert seen.is_locked() is True
            assert observer.get(Counter, 2).is_locked() is False
            observer.commit()
        assert seen.is_locked() is False
        assert held.is_locked() is False


def test_lock_arguments_are_checked(session_factory, engine_):
    with session_factory() as session, session_factory() as other:
        counter, foreign = session.get(Counter, 1), other.get(Counter, 2)
        cases = [
            (lambda: counter.lock(timeout=0), "timeout must be a positive number"),
            (lambda: counter.lock(nowait=True, timeout=1), "not both"),
            (lambda: chrononaut.lock(), "at least one record"),
            (lambda: chrononaut.lock(counter, foreign), "records of one session"),
        ]
        for make, message in cases:
            with pytest.raises(ValueError) as exc_info, make():
                pass
            assert message in str(exc_info.value)
        assert lock_rows(engine_, key_of(counter)) == []


def _in_key_order(*records):
    return sorted(records, key=key_of)


def test_nowait_failing_on_a_later_record_releases_the_locks_it_took(session_factory, engine_):
    with session_factory() as session, session_factory() as other:
        first, second = _in_key_order(session.get(Counter, 1), session.get(Counter, 2))
        taken_later = other.get(Counter, second.id)
        pid = backend_pid(session)
        with taken_later.lock():
            with pytest.raises(chrononaut.RecordLockedError) as exc_info:  # noqa: SIM117
                with chrononaut.lock(second, first, nowait=True):
                    pass
            assert exc_info.value.record == f"Counter(id={second.id})"
            # The caller's transaction goes on, without the lock it took on ``first``.
            assert session.in_transaction()
            assert lock_rows(engine_, key_of(first)) == []
            assert lock_rows(engine_, key_of(second)) == [
                (backend_pid(other), "ExclusiveLock", True)
            ]
            assert backend_pid(session) == pid


def _lock_timeout(session):
    return session.execute(sa.text("SHOW lock_timeout")).scalar_one()


def test_lock_timeout_is_back_to_its_previous_value_inside_the_block(session_factory, engine_):
    with session_factory() as session:
        counter = session.get(Counter, 1)
        session.execute(sa.text("SET LOCAL lock_timeout = '7s'"))
        with counter.lock(timeout=0.25):
            assert _lock_timeout(session) == "7s"
        assert _lock_timeout(session) == "0"  # the block committed: SET LOCAL ended with it


def test_lock_timeout_is_back_to_its_previous_value_after_timing_out(session_factory, engine_):
    with session_factory() as session, session_factory() as other:
        counter = session.get(Counter, 1)
        session.execute(sa.text("SET LOCAL lock_timeout = '7s'"))
        with other.get(Counter, 1).lock():
            with pytest.raises(chrononaut.LockTimeoutError), counter.lock(timeout=0.25):
                pass
            assert session.in_transaction()
            assert _lock_timeout(session) == "7s"
