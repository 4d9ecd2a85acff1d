"""Stale writes SQLAlchemy itself refuses surface as ConflictError too.

``session.merge()`` of a detached record whose version differs from the
session's copy raises inside ``merge()``; a flush after a bulk statement run
with ``synchronize_session=False`` fails on a row this very transaction
changed. Both raised a bare StaleDataError, which ``retry_on_conflict`` and
the 409 handler do not catch.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.orm.exc import StaleDataError

from chrononaut import ConflictError, Versioned, acting_as, retry_on_conflict


@pytest.fixture
def models(Base, engine, session_factory):
    class Note(Base, Versioned):
        __tablename__ = "stale_note"
        id: Mapped[int] = mapped_column(primary_key=True)
        title: Mapped[str] = mapped_column(sa.String(80))

    class Plain(Base):
        """Not versioned: its stale UPDATE stays SQLAlchemy's StaleDataError."""

        __tablename__ = "stale_plain"
        id: Mapped[int] = mapped_column(primary_key=True)
        title: Mapped[str] = mapped_column(sa.String(80))

    Base.metadata.create_all(engine)
    with session_factory() as session:
        session.add_all([Note(id=1, title="first"), Note(id=2, title="second")])
        session.add(Plain(id=1, title="plain"))
        session.commit()
    return Note, Plain


def stored(engine):
    with engine.connect() as connection:
        rows = connection.execute(sa.text("SELECT id, title, version FROM stale_note ORDER BY id"))
        return [tuple(row) for row in rows]


def bob_renames(session_factory, Note, title):
    with session_factory() as other, acting_as("bob"):
        other.get(Note, 1).title = title
        other.commit()


def detached_copy(session_factory, Note):
    with session_factory() as session:
        note = session.get(Note, 1)
        session.expunge(note)
    return note


# --- merge() --------------------------------------------------------------------------


def test_merge_of_a_stale_detached_record_raises_conflict_error_from_history(
    session_factory, models, engine
):
    Note, _ = models
    stale = detached_copy(session_factory, Note)  # version 0
    bob_renames(session_factory, Note, "bob's title")
    stale.title = "my title"
    with session_factory() as session:
        with pytest.raises(ConflictError) as exc_info:
            session.merge(stale)
        error = exc_info.value
        assert isinstance(error, StaleDataError)
        assert (error.record, error.expected_version, error.current_version) == (
            "Note(id=1)",
            0,
            1,
        )
        assert [(c.version, c.user_id, c.columns) for c in error.changes] == [
            (1, "bob", ("title",))
        ]
        assert str(error).startswith("Note(id=1) changed since you loaded version 0: version 1")
        assert error.session is session
        assert isinstance(error.__cause__, StaleDataError)
        # nothing was written or flushed; the session goes on
        assert session.get(Note, 1).title == "bob's title"
        session.rollback()
    assert stored(engine) == [(1, "bob's title", 1), (2, "second", 0)]


def test_merge_onto_a_stale_copy_in_the_session_names_the_sessions_version(
    session_factory, models
):
    Note, _ = models
    with session_factory() as session:
        in_session = session.get(Note, 1)  # version 0, kept in the session
        bob_renames(session_factory, Note, "bob's title")
        current = detached_copy(session_factory, Note)  # version 1
        with pytest.raises(ConflictError) as exc_info:
            session.merge(current)
        error = exc_info.value
        assert (error.expected_version, error.current_version) == (0, 1)
        assert [c.user_id for c in error.changes] == ["bob"]
        assert in_session.title == "first"  # not refreshed behind the caller's back
        session.rollback()
        assert session.merge(current).title == "bob's title"


def test_retry_on_conflict_retries_a_stale_merge(session_factory, models):
    Note, _ = models
    stale = detached_copy(session_factory, Note)
    bob_renames(session_factory, Note, "bob's title")
    attempts = []
    with session_factory() as session:

        @retry_on_conflict(attempts=2)
        def save(note):
            attempts.append(note)
            session.merge(note)
            session.commit()

        with pytest.raises(ConflictError):
            save(stale)
        # retried once, after a rollback that expired the session's copy: the version
        # check of the second merge() still ran (it is not skipped for an expired copy)
        assert len(attempts) == 2
        save(detached_copy(session_factory, Note))
        assert len(attempts) == 3


def test_merge_onto_an_expired_copy_does_not_write_over_newer_data(
    session_factory, models, engine
):
    Note, _ = models
    stale = detached_copy(session_factory, Note)
    with session_factory() as session:
        session.get(Note, 1)
        session.commit()  # the session's copy is expired now
        bob_renames(session_factory, Note, "bob's title")
        stale.title = "overwrite"
        with pytest.raises(ConflictError) as exc_info:
            session.merge(stale)
            session.commit()
        assert (exc_info.value.expected_version, exc_info.value.current_version) == (0, 1)
        session.rollback()
    assert stored(engine) == [(1, "bob's title", 1), (2, "second", 0)]


# --- a flush after a bulk statement with synchronize_session=False ----------------------


@pytest.mark.parametrize(
    "statement",
    ["update", "delete"],
)
def test_a_write_after_an_unsynchronised_bulk_statement_raises_conflict_error(
    session_factory, models, engine, statement
):
    Note, _ = models
    with session_factory() as session:
        note = session.get(Note, 1)
        bulk = (
            sa.update(Note).where(Note.id == 1).values(title="bulk")
            if statement == "update"
            else sa.delete(Note).where(Note.id == 1)
        )
        session.execute(bulk, execution_options={"synchronize_session": False})
        note.title = "mine"
        with pytest.raises(ConflictError) as exc_info:
            session.flush()
        error = exc_info.value
        assert isinstance(error.__cause__, StaleDataError)
        # The failed flush rolled back the whole transaction, the bulk statement with it:
        # the record is at its committed version, which is also the one loaded.
        assert (error.record, error.expected_version, error.current_version) == (
            "Note(id=1)",
            0,
            0,
        )
        assert (error.changes, error.columns) == ([], ())
        assert error.session is session
        session.rollback()
    assert stored(engine) == [(1, "first", 0), (2, "second", 0)]


def test_a_delete_after_an_unsynchronised_bulk_update_raises_conflict_error(
    session_factory, models, engine
):
    Note, _ = models
    with session_factory() as session:
        first, second = session.get(Note, 1), session.get(Note, 2)
        session.execute(
            sa.update(Note).where(Note.id == 2).values(title="bulk"),
            execution_options={"synchronize_session": False},
        )
        session.delete(second)
        first.title = "fine"
        with pytest.raises(ConflictError) as exc_info:
            session.flush()
        assert exc_info.value.record == "Note(id=2)"
        session.rollback()
    assert stored(engine) == [(1, "first", 0), (2, "second", 0)]


def test_a_stale_plain_model_in_the_same_flush_keeps_sqlalchemys_error(
    session_factory, models, engine
):
    Note, Plain = models
    with session_factory() as session:
        note, plain = session.get(Note, 1), session.get(Plain, 1)
        with session_factory() as other:
            other.delete(other.get(Plain, 1))
            other.commit()
        note.title = "fine"
        plain.title = "gone"
        with pytest.raises(StaleDataError) as exc_info:
            session.flush()
        assert type(exc_info.value) is StaleDataError
        assert "stale_plain" in str(exc_info.value)
        session.rollback()
