"""Lease owners, ttl and force are checked before anything reaches the database.

An owner is a non-empty str of at most 255 characters, or an int (stored as
its decimal text); the acting user id goes through the same check. A ttl is
a positive timedelta of at most ``MAX_TTL`` (a century); ``force`` is a bool.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import pytest
import sqlalchemy as sa

from chrononaut import RecordLockedError, acting_as
from chrononaut.locking import leases
from chrononaut.locking.leases import MAX_OWNER_LENGTH, MAX_TTL, acting_owner, check_owner

from . import procs_guard as procs
from .procs_guard import LeaseItem


@pytest.fixture
def item(engine, session):
    procs.Base.metadata.create_all(engine)
    session.add(LeaseItem(id=1, title="draft"))
    session.commit()
    return session.get(LeaseItem, 1)


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


def stored_owners(engine):
    with engine.connect() as connection:
        return connection.execute(sa.text("SELECT owner FROM chrononaut_leases")).scalars().all()


SENTINEL = object()
LONG = "x" * (MAX_OWNER_LENGTH + 1)

BAD_OWNERS = [
    (SENTINEL, TypeError,
     f"owner must be a str or an int (a user id), got {SENTINEL!r} (object)."),
    (1.5, TypeError, "owner must be a str or an int (a user id), got 1.5 (float)."),
    (True, TypeError, "owner must be a str or an int (a user id), got True (bool)."),
    (b"alice", TypeError, "owner must be a str or an int (a user id), got b'alice' (bytes)."),
    ("", ValueError, "owner must name someone, got ''; pass a user id."),
    ("  \t", ValueError, "owner must name someone, got '  \\t'; pass a user id."),
    ("al\x00ice", ValueError,
     "owner 'al\\x00ice' contains a NUL character, which PostgreSQL text cannot hold."),
    (LONG, ValueError, f"owner is 256 characters long, over the limit of 255, got "
     f"{LONG[:40]!r}...; pass a shorter user id."),
]  # fmt: skip


@pytest.mark.parametrize(("owner", "error", "message"), BAD_OWNERS)
def test_acquire_lease_refuses_an_owner_no_lease_can_name(item, engine, owner, error, message):
    with statements(engine) as sent, pytest.raises(error) as exc_info:
        item.acquire_lease(owner=owner)
    assert (type(exc_info.value), str(exc_info.value)) == (error, message)
    assert sent == []


@pytest.mark.parametrize(("owner", "error", "message"), BAD_OWNERS)
def test_release_lease_refuses_the_same_owners(item, engine, owner, error, message):
    with statements(engine) as sent, pytest.raises(error) as exc_info:
        leases.release_lease(item, owner=owner)
    assert str(exc_info.value) == message
    assert sent == []


def test_an_int_owner_is_stored_as_its_text_and_is_the_same_owner(item, session, engine):
    held = item.acquire_lease(owner=42)
    session.commit()
    assert held.owner == "42"
    assert stored_owners(engine) == ["42"]
    with acting_as("42"):
        item.acquire_lease()  # the same owner renews
    with acting_as(42):
        item.release_lease()
    session.commit()
    assert stored_owners(engine) == []


def test_the_longest_owner_is_stored_whole(item, session, engine):
    longest = "é" * MAX_OWNER_LENGTH
    assert item.acquire_lease(owner=longest).owner == longest
    session.commit()
    assert stored_owners(engine) == [longest]
    assert check_owner(" alice ") == " alice "  # kept as given, spaces and all


@pytest.mark.parametrize(
    ("acting", "message"),
    [
        ("", "the acting user id must name someone, got ''; pass a user id."),
        (True, "the acting user id must be a str or an int (a user id), got True (bool)."),
    ],
)
def test_the_acting_user_id_goes_through_the_same_check(item, session, engine, acting, message):
    with acting_as(acting), statements(engine) as sent:
        with pytest.raises((TypeError, ValueError)) as exc_info:
            item.acquire_lease()
        assert str(exc_info.value) == message
        with pytest.raises((TypeError, ValueError)) as exc_info:
            acting_owner(session)
        assert str(exc_info.value) == message
    assert sent == []


@pytest.mark.parametrize(
    ("ttl", "error", "message"),
    [
        (timedelta.max, ValueError, "ttl must be a positive timedelta of at most 36525 days "
         f"(MAX_TTL), got {timedelta.max!r}."),
        (MAX_TTL + timedelta(microseconds=1), ValueError, "ttl must be a positive timedelta of "
         f"at most 36525 days (MAX_TTL), got {MAX_TTL + timedelta(microseconds=1)!r}."),
        (timedelta(0), ValueError, "ttl must be a positive timedelta of at most 36525 days "
         "(MAX_TTL), got datetime.timedelta(0)."),
        (timedelta(seconds=-1), ValueError, "ttl must be a positive timedelta of at most 36525 "
         "days (MAX_TTL), got datetime.timedelta(days=-1, seconds=86399)."),
        (900, TypeError, "ttl must be a timedelta, got 900 (int)."),
        (None, TypeError, "ttl must be a timedelta, got None (NoneType)."),
    ],
)  # fmt: skip
def test_acquire_lease_refuses_a_ttl_the_database_cannot_store(item, engine, ttl, error, message):
    with statements(engine) as sent, pytest.raises(error) as exc_info:
        item.acquire_lease(ttl=ttl, owner="alice")
    assert (type(exc_info.value), str(exc_info.value)) == (error, message)
    assert sent == []


def test_the_longest_ttl_is_one_the_database_stores(item, session):
    lease = item.acquire_lease(ttl=MAX_TTL, owner="alice")
    session.commit()
    assert lease.expires_at - lease.acquired_at == MAX_TTL
    assert item.lease == lease


@pytest.mark.parametrize("force", ["yes", 1, None])
def test_force_must_be_a_bool(item, engine, force):
    message = f"force must be True or False, got {force!r}."
    with statements(engine) as sent:
        with pytest.raises(TypeError) as exc_info:
            item.acquire_lease(owner="alice", force=force)
        assert str(exc_info.value) == message
        with pytest.raises(TypeError) as exc_info:
            item.release_lease(force=force)
        assert str(exc_info.value) == message
    assert sent == []


def test_force_true_still_breaks_another_owners_lease(item, session):
    item.acquire_lease(owner="alice")
    session.commit()
    with pytest.raises(RecordLockedError):
        item.acquire_lease(owner="bob")
    session.rollback()
    assert item.acquire_lease(owner="bob", force=True).owner == "bob"
    session.commit()
