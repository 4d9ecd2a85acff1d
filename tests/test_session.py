"""``chrononaut.listen()`` and ``chrononaut.remove()`` on each kind of target.

A ``Session`` instance, a ``sessionmaker`` and a ``scoped_session`` all get the
same: history on flush, the lock and lease guard, stale writes as
``ConflictError``, and commit refused inside ``lock()``. ``remove()`` takes
versioning and the guard away again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Mapped, Session, mapped_column, scoped_session, sessionmaker

import chrononaut
from chrononaut import (
    ChrononautException,
    ConflictError,
    LockTimeoutError,
    RecordLockedError,
    Settings,
    Versioned,
)

KINDS = ["session", "sessionmaker", "scoped_session", "scoped_session_used_before_listen"]


@pytest.fixture
def Note(Base, engine):
    class Note(Base, Versioned):
        __tablename__ = "note"
        id: Mapped[int] = mapped_column(primary_key=True)
        body: Mapped[str]

    Base.metadata.create_all(engine)
    with Session(engine) as session:
        session.add(Note(id=1, body="first"))
        session.commit()
    return Note


def _wire(kind, engine, settings=None):
    """(a session chrononaut listens to, a function that removes chrononaut, cleanup)."""
    if kind == "session":
        session = Session(engine)
        chrononaut.listen(session, settings=settings)
        return (lambda: session), (lambda: chrononaut.remove(session)), session.close
    if kind == "sessionmaker":
        factory = sessionmaker(engine)
        chrononaut.listen(factory, settings=settings)
        made = factory()
        return (lambda: made), (lambda: chrononaut.remove(factory)), made.close
    scoped = scoped_session(sessionmaker(engine))
    if kind == "scoped_session_used_before_listen":
        scoped.execute(sa.text("SELECT 1"))  # the scoped session makes its session now
        scoped.commit()
    chrononaut.listen(scoped, settings=settings)
    return scoped, (lambda: chrononaut.remove(scoped)), scoped.remove


@pytest.fixture(params=KINDS)
def wired(request, engine, Note) -> Iterator[tuple[Callable[[], Session], Callable[[], None]]]:
    """(a session chrononaut listens to, a function that removes chrononaut from it)."""
    get_session, remove, cleanup = _wire(request.param, engine)
    yield get_session, remove
    cleanup()


def hold_lock_on_note(other: Session) -> None:
    other.execute(
        sa.text("SELECT pg_advisory_xact_lock(:k)"),
        {"k": chrononaut.locking.keys.advisory_key("note", (1,))},
    )


def history_bodies(engine, Note) -> list[tuple[int, str]]:
    table = Note.__history_mapper__.local_table
    with engine.connect() as connection:
        rows = connection.execute(sa.select(table.c.version, table.c.body).order_by("version"))
        return [tuple(row) for row in rows]


def test_a_listened_session_writes_history(wired, engine, Note):
    get_session, _ = wired
    session = get_session()
    session.get(Note, 1).body = "second"
    session.commit()
    assert history_bodies(engine, Note) == [(0, "first")]


def test_a_listened_session_is_guarded_against_another_transactions_lock(wired, engine, Note):
    get_session, _ = wired
    session = get_session()
    note = session.get(Note, 1)
    with Session(engine) as other:
        factory_free = other.get(Note, 1)
        hold_lock_on_note(other)
        note.body = "mine"
        with pytest.raises(RecordLockedError) as exc_info:
            session.flush()
        assert exc_info.value.record == "Note(id=1)"
        session.rollback()
        assert factory_free.body == "first"


def test_a_listened_session_turns_a_stale_write_into_conflict_error(wired, engine, Note):
    get_session, _ = wired
    session = get_session()
    note = session.get(Note, 1)
    with Session(engine) as other:
        other.execute(sa.update(Note.__table__).values(body="theirs", version=1))
        other.commit()
    note.body = "mine"
    with pytest.raises(ConflictError) as exc_info:
        session.commit()
    assert (exc_info.value.expected_version, exc_info.value.current_version) == (0, 1)
    session.rollback()


def test_a_listened_session_refuses_commit_inside_lock(wired, Note):
    get_session, _ = wired
    session = get_session()
    with session.get(Note, 1).lock():
        with pytest.raises(ChrononautException) as exc_info:
            session.commit()
        assert "inside a lock() block" in str(exc_info.value)


def test_remove_stops_versioning_and_the_guard(wired, engine, Note):
    get_session, remove = wired
    remove()
    session = get_session()
    note = session.get(Note, 1)
    with Session(engine) as other:
        hold_lock_on_note(other)
        note.body = "unguarded"
        session.commit()  # neither refused by the other's lock nor versioned
    assert history_bodies(engine, Note) == []
    with Session(engine) as check:
        assert check.get(Note, 1).body == "unguarded"


@pytest.mark.parametrize("kind", KINDS)
def test_remove_stops_the_guard_that_waits_for_locks(engine, Note, kind):
    get_session, remove, cleanup = _wire(kind, engine, Settings(lock_wait=0.2))
    session = get_session()
    note = session.get(Note, 1)
    with Session(engine) as other:
        hold_lock_on_note(other)
        note.body = "waits"
        with pytest.raises(LockTimeoutError):  # listened: the flush waits for the lock
            session.flush()
        session.rollback()
        remove()
        note.body = "unguarded"
        session.commit()  # removed: no wait, no refusal
    cleanup()
    assert history_bodies(engine, Note) == []


def test_listen_versions_the_session_every_scope_made_before_it(engine, Note):
    scope = ["a"]
    scoped = scoped_session(sessionmaker(engine), scopefunc=lambda: scope[0])
    made_in_a = scoped()
    scope[0] = "b"
    made_in_b = scoped()
    chrononaut.listen(scoped, settings=Settings(require_extra_change_info=False))
    assert scoped() is made_in_b
    for body, made in (("from a", made_in_a), ("from b", made_in_b)):
        made.get(Note, 1).body = body
        made.commit()
    scope[0] = "c"
    scoped.get(Note, 1).body = "from c"  # a session made after listen()
    scoped.commit()
    # history keeps prior states: the change made in c recorded "from b"
    assert history_bodies(engine, Note) == [(0, "first"), (1, "from a"), (2, "from b")]
    chrononaut.remove(scoped)
    made_in_a.get(Note, 1).body = "unversioned"
    made_in_a.commit()
    assert len(history_bodies(engine, Note)) == 3
    for made in (made_in_a, made_in_b, scoped()):
        made.close()
