"""Waits PostgreSQL can take: check_seconds, Settings(lock_wait=...), lock(timeout=...).

A wait becomes ``lock_timeout``, a whole number of milliseconds up to
2147483647. NaN, infinities, booleans and waits PostgreSQL cannot take are
refused with ValueError before anything reaches the database (the
``lock(timeout=...)`` tests need ``advisory.lock`` to call ``check_seconds``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import sessionmaker

import chrononaut
from chrononaut import Settings
from chrononaut.settings import MAX_WAIT_SECONDS, check_seconds
from tests.locking.procs_advisory import Base, Counter, key_of
from tests.locking.procs_keys import lock_holders

REFUSED = [float("nan"), float("inf"), -float("inf"), True, False, -1, 2_147_483.648, 1e12,
           10**400, "2", None, Decimal("1")]  # fmt: skip


def short(value: object) -> str:
    return repr(value)[:24]


def limit(what: str, value: object, lowest: str = "a positive number of seconds") -> str:
    return (
        f"{what} must be {lowest}, at most 2147483.647 (PostgreSQL's lock_timeout limit), "
        f"got {value!r}."
    )


@pytest.mark.parametrize("value", [0.001, 0.0001, 1, 2.5, MAX_WAIT_SECONDS])
def test_check_seconds_passes_waits_postgresql_can_take(value):
    assert check_seconds(value, "timeout") == float(value)


@pytest.mark.parametrize("value", [*REFUSED, 0, 0.0], ids=short)
def test_check_seconds_refuses_what_lock_timeout_cannot_take(value):
    with pytest.raises(ValueError) as exc_info:
        check_seconds(value, "timeout")
    assert str(exc_info.value) == limit("timeout", value)


def test_check_seconds_allows_zero_when_asked():
    assert check_seconds(0, "lock_wait", allow_zero=True) == 0.0
    with pytest.raises(ValueError) as exc_info:
        check_seconds(-0.5, "lock_wait", allow_zero=True)
    assert str(exc_info.value) == limit("lock_wait", -0.5, "a number of seconds >= 0")


@pytest.mark.parametrize("value", REFUSED, ids=short)
def test_settings_refuse_a_lock_wait_postgresql_cannot_take(value):
    with pytest.raises(ValueError) as exc_info:
        Settings(lock_wait=value)
    assert str(exc_info.value) == limit(
        "lock_wait (CHRONONAUT_LOCK_WAIT)", value, "a number of seconds >= 0"
    )


def test_settings_take_zero_and_the_longest_wait():
    assert Settings(lock_wait=0).lock_wait == 0
    assert Settings(lock_wait=MAX_WAIT_SECONDS).lock_wait == MAX_WAIT_SECONDS


def test_the_longest_lock_wait_is_one_postgresql_takes(engine):
    factory = sessionmaker(engine)
    chrononaut.listen(factory, settings=Settings(lock_wait=MAX_WAIT_SECONDS))
    Base.metadata.create_all(engine)
    with factory() as session:
        session.add(Counter(id=1, value=0))
        session.commit()
        session.get(Counter, 1).value = 1  # the flush waits up to lock_wait for holders
        session.commit()
        assert session.get(Counter, 1).value == 1


# --- lock(timeout=...) (needs advisory.lock to call check_seconds) ----------------------------


@contextmanager
def statements(engine: sa.Engine) -> Iterator[list[str]]:
    sent: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany):
        sent.append(statement)

    sa.event.listen(engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        sa.event.remove(engine, "before_cursor_execute", record)


@pytest.fixture
def counter(session_factory, engine):
    Base.metadata.create_all(engine)
    with session_factory() as session:
        session.add(Counter(id=1, value=0))
        session.commit()
    with session_factory() as session:
        yield session.get(Counter, 1)


@pytest.mark.parametrize("value", [*(v for v in REFUSED if v is not None), 0], ids=short)
def test_lock_refuses_a_timeout_postgresql_cannot_take_before_touching_the_database(
    engine, counter, value
):  # (None is no timeout)
    session = sa.inspect(counter).session
    session.commit()
    with (
        statements(engine) as sent,
        pytest.raises(ValueError) as exc_info,
        counter.lock(timeout=value),
    ):
        pass
    assert str(exc_info.value) == limit("timeout", value)
    assert sent == []
    assert lock_holders(engine, key_of(counter)) == []
    with counter.lock(timeout=0.0001):  # a wait under a millisecond waits one
        counter.value = 1
    assert lock_holders(engine, key_of(counter)) == []
