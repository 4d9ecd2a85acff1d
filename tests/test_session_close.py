"""``session.close()`` (and ``reset()``, and leaving ``with session:``) inside ``lock()``.

Closing the session ends its transaction, which would release the lock while
the block is still open and let another session in. It is refused like
``commit()`` and ``rollback()``; the lock stays held by the same backend until
the block ends. The usual nesting, a ``lock()`` block inside ``with session:``,
keeps working both ways out.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import scoped_session

import chrononaut
from chrononaut import ChrononautException, RecordLockedError
from tests.locking.procs_advisory import Base, Counter, backend_pid, key_of
from tests.locking.procs_keys import lock_holders


class Boom(Exception):
    pass


@pytest.fixture
def engine_(session_factory):
    engine = session_factory.kw["bind"]
    Base.metadata.create_all(engine)
    with session_factory() as session:
        session.add_all([Counter(id=1, value=0)])
        session.commit()
    return engine


@pytest.fixture
def loose_session(session_factory):
    """A session the test closes itself; closed at teardown too if the test failed."""
    session = session_factory()
    yield session
    session.info.pop("chrononaut_lock_depth", None)
    session.close()


def stored(engine):
    with engine.connect() as connection:
        return connection.execute(sa.text("SELECT value, version FROM adv_counter")).one()


def refused(action):
    return (
        f"session.{action}() inside a lock() block would release the lock before the block "
        "ends; leave the block to commit, or raise to roll back."
    )


def assert_still_held_against(session_factory, engine, key, pid):
    assert lock_holders(engine, key) == [(pid, "ExclusiveLock", True)]
    with session_factory() as other:  # another session cannot get the lock
        record = other.get(Counter, 1)
        with pytest.raises(RecordLockedError), record.lock(nowait=True):
            pass


@pytest.mark.parametrize("action", ["close", "reset"])
def test_close_or_reset_inside_a_lock_block_is_refused_and_the_lock_stays_held(
    session_factory, engine_, action
):
    with session_factory() as session:
        counter = session.get(Counter, 1)
        with counter.lock():
            pid, key = backend_pid(session), key_of(counter)
            with pytest.raises(ChrononautException) as exc_info:
                getattr(session, action)()
            assert type(exc_info.value) is ChrononautException
            assert str(exc_info.value) == refused(action)
            assert_still_held_against(session_factory, engine_, key, pid)
            assert backend_pid(session) == pid  # the same transaction goes on
            counter.value = 1
        assert lock_holders(engine_, key) == []
    assert tuple(stored(engine_)) == (1, 1)


def test_leaving_with_session_inside_a_lock_block_on_it_is_refused(
    session_factory, engine_, loose_session
):
    session = loose_session
    counter = session.get(Counter, 1)
    with counter.lock():
        pid, key = backend_pid(session), key_of(counter)
        with pytest.raises(ChrononautException) as exc_info, session:
            pass
        assert str(exc_info.value) == refused("close")
        assert_still_held_against(session_factory, engine_, key, pid)
        counter.value = 2
    session.close()
    assert tuple(stored(engine_)) == (2, 1)


def test_scoped_session_remove_inside_a_lock_block_is_refused(session_factory, engine_):
    registry = scoped_session(session_factory)
    try:
        counter = registry.get(Counter, 1)
        with counter.lock():
            pid, key = backend_pid(registry()), key_of(counter)
            with pytest.raises(ChrononautException) as exc_info:
                registry.remove()
            assert str(exc_info.value) == refused("close")
            assert_still_held_against(session_factory, engine_, key, pid)
    finally:
        registry.remove()


def test_an_exception_leaving_with_session_inside_a_lock_block_propagates_unchanged(
    engine_, loose_session
):
    session = loose_session
    counter = session.get(Counter, 1)
    key = key_of(counter)
    with pytest.raises(Boom), counter.lock(), session:
        counter.value = 3
        session.flush()
        raise Boom
    # lock() rolled back on the way out: the change is gone and the lock released
    assert lock_holders(engine_, key) == []
    assert tuple(stored(engine_)) == (0, 0)
    assert counter.value == 0
    session.close()


def test_a_lock_block_inside_with_session_commits_or_rolls_back_then_the_session_closes(
    session_factory, engine_
):
    with session_factory() as session:
        counter = session.get(Counter, 1)
        with counter.lock():
            counter.value = 4
    assert tuple(stored(engine_)) == (4, 1)
    assert not session.in_transaction() and list(session) == []  # closed
    with pytest.raises(Boom), session_factory() as session:
        counter = session.get(Counter, 1)
        key = key_of(counter)
        with counter.lock():
            counter.value = 5
            raise Boom
    assert lock_holders(engine_, key) == []
    assert tuple(stored(engine_)) == (4, 1)
    assert list(session) == []  # closed after lock() rolled back


def test_close_outside_lock_blocks_is_untouched(session_factory, engine_):
    with session_factory() as session:
        counter = session.get(Counter, 1)
        with chrononaut.lock(counter):
            pass
        session.close()
        session.reset()
        assert session.get(Counter, 1).value == 0
