"""Which records ``lock()`` takes: the refusals happen before the database is touched.

A record marked for deletion, deleted, detached or changed is refused with
the reason and the fix; no statement runs (no autoflushed DELETE), no lock
is left held, and the session goes on. The ``check_lockable`` tests call
the check itself; the ``lock()`` tests go through ``lock()``, which calls it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import sqlalchemy as sa

import chrononaut
from chrononaut import ChrononautException
from chrononaut.locking import keys
from chrononaut.locking.records import check_lockable

from .procs_advisory import Base, Counter, key_of
from .procs_keys import lock_holders


@pytest.fixture
def engine_(session_factory):
    engine = session_factory.kw["bind"]
    Base.metadata.create_all(engine)
    with session_factory() as session:
        session.add_all([Counter(id=1, value=10), Counter(id=2, value=20)])
        session.commit()
    return engine


@contextmanager
def statements(engine: sa.Engine) -> Iterator[list[str]]:
    """Every SQL statement ``engine`` sends while the block runs."""
    sent: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany):
        sent.append(statement)

    sa.event.listen(engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        sa.event.remove(engine, "before_cursor_execute", record)


def stored(engine: sa.Engine) -> list[tuple[int, int, int]]:
    with engine.connect() as connection:
        sql = sa.text("SELECT id, value, version FROM adv_counter ORDER BY id")
        return [tuple(row) for row in connection.execute(sql)]


MARKED = (
    "Counter(id=1) is marked for deletion (session.delete()), and locking it would flush "
    "the DELETE; lock a record before deleting it."
)
FLUSHED = (
    "Counter(id=1) was deleted in this transaction (its DELETE is flushed), so there is "
    "nothing to lock; lock a record before deleting it."
)
COMMITTED = (
    "Counter(id=1) was deleted and the deletion committed; there is no record left to lock."
)
DETACHED = (
    "Counter(id=1) is detached from its session; merge it into the session (session.merge()) "
    "or load it again before locking it."
)


# --- check_lockable -------------------------------------------------------------------------


def test_check_lockable_returns_the_normalised_primary_key_of_a_plain_record(session, engine_):
    counter = session.get(Counter, 1)
    with statements(engine_) as sent:
        assert check_lockable(session, counter) == (1,)
    assert sent == []


def refusal(engine, session, record):
    """(type, message) of check_lockable's refusal, which sends no statement."""
    with statements(engine) as sent, pytest.raises(Exception) as exc_info:
        check_lockable(session, record)
    assert sent == []
    return type(exc_info.value), str(exc_info.value)


def test_check_lockable_refuses_each_state_lock_cannot_refresh(session_factory, engine_):
    with session_factory() as session, session_factory() as other:
        counter = session.get(Counter, 1)
        session.delete(counter)
        assert refusal(engine_, session, counter) == (ChrononautException, MARKED)
        session.flush()
        assert refusal(engine_, session, counter) == (ChrononautException, FLUSHED)
        session.commit()
        assert refusal(engine_, session, counter) == (ChrononautException, COMMITTED)
        assert refusal(engine_, None, counter) == (ChrononautException, COMMITTED)
        second = other.get(Counter, 2)
        other.expunge(second)
        detached = (ValueError, DETACHED.replace("id=1", "id=2"))
        assert refusal(engine_, other, second) == detached
        assert refusal(engine_, None, second) == detached
        assert refusal(engine_, session, other.merge(second)) == (
            ValueError,
            "lock() takes records of one session; merge them into it first",
        )


def test_check_lockable_keeps_the_refusals_lock_made_before(session, engine_):
    counter = session.get(Counter, 2)
    counter.value = 21
    assert refusal(engine_, session, counter) == (
        ChrononautException,
        "Counter(id=2) has unflushed changes, which the refresh after locking would discard; "
        "lock it before changing it.",
    )
    fresh = Counter(id=3)
    assert refusal(engine_, None, fresh) == (
        ChrononautException,
        "Counter instance is not in the database yet; commit it before locking it.",
    )
    session.add(fresh)
    assert refusal(engine_, session, fresh) == (
        ChrononautException,
        "Counter instance is not in the database yet; commit it before locking it.",
    )
    kind, message = refusal(engine_, session, object())
    assert kind is TypeError and message.startswith("lock() takes Versioned records, got <object")
    session.rollback()


# --- lock(), which calls check_lockable first ------------------------------------------------


def test_lock_of_a_record_marked_for_deletion_refuses_without_flushing_the_delete(
    session_factory, engine_
):
    with session_factory() as session:
        counter = session.get(Counter, 1)
        key = key_of(counter)
        session.delete(counter)
        with (
            statements(engine_) as sent,
            pytest.raises(ChrononautException) as exc_info,
            counter.lock(),
        ):
            pass
        assert (type(exc_info.value), str(exc_info.value)) == (ChrononautException, MARKED)
        assert sent == []
        assert lock_holders(engine_, key) == []
        assert counter in session.deleted  # still only marked: nothing was flushed
        assert stored(engine_) == [(1, 10, 0), (2, 20, 0)]
        session.rollback()
        with counter.lock():  # the session goes on, and the record locks as usual
            counter.value = 11
    assert stored(engine_) == [(1, 11, 1), (2, 20, 0)]


def test_lock_of_a_record_whose_delete_is_flushed_refuses_and_holds_no_lock(
    session_factory, engine_
):
    with session_factory() as session:
        counter = session.get(Counter, 1)
        key = key_of(counter)
        session.delete(counter)
        session.flush()
        with (
            statements(engine_) as sent,
            pytest.raises(ChrononautException) as exc_info,
            counter.lock(),
        ):
            pass
        assert (type(exc_info.value), str(exc_info.value)) == (ChrononautException, FLUSHED)
        assert sent == []
        assert lock_holders(engine_, key) == []
        session.rollback()
    assert stored(engine_) == [(1, 10, 0), (2, 20, 0)]


def test_lock_of_a_deleted_or_detached_record_among_others_names_it(session_factory, engine_):
    with session_factory() as session:
        first, second = session.get(Counter, 1), session.get(Counter, 2)
        session.delete(first)
        session.commit()
        second = session.get(Counter, 2)
        other = session_factory()
        kept = other.get(Counter, 2)
        other.close()
        for record, error, message in [
            (first, ChrononautException, COMMITTED),
            (kept, ValueError, DETACHED.replace("id=1", "id=2")),
        ]:
            with (
                statements(engine_) as sent,
                pytest.raises(error) as exc_info,
                chrononaut.lock(second, record),
            ):
                pass
            assert (type(exc_info.value), str(exc_info.value)) == (error, message)
            assert sent == []
            assert lock_holders(engine_, key_of(second)) == []
        assert keys.identity_of(second) == (2,)
