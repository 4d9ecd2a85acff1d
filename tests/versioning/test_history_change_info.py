"""A history object's change_info: loaded as JSON text, decoded when read, a jsonb column
in queries."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from chrononaut import ChrononautException, Versioned, acting_as, rationale


def _note(Base, engine):
    class Note(Base, Versioned):
        __tablename__ = "note"
        id: Mapped[int] = mapped_column(primary_key=True)
        text: Mapped[str]

    Base.metadata.create_all(engine)
    return Note


def _two_changes(session, Note):
    note = Note(id=1, text="a")
    session.add(note)
    session.commit()
    with acting_as("alice"), rationale("typo"):
        note.text = "b"
        session.commit()
    with acting_as("bob"):
        note.text = "c"
        session.commit()
    return note


def test_change_info_is_decoded_when_read_and_once(Base, engine, session):
    Note = _note(Base, engine)
    note = _two_changes(session, Note)
    first, second = note.versions()
    assert "_chrononaut_change_info_decoded" not in first.__dict__  # not decoded yet
    assert first.change_info["user_id"] == "alice"
    assert first.change_info["extra"] == {"rationale": "typo"}
    assert first.change_info is first.change_info  # decoded once, the same dict
    assert second.change_info["user_id"] == "bob"
    assert not first.is_deletion


def test_change_info_is_the_jsonb_column_in_queries(Base, engine, session):
    Note = _note(Base, engine)
    note = _two_changes(session, Note)
    History = Note.__history_mapper__.class_
    by_alice = session.scalars(
        sa.select(History).where(History.change_info["user_id"].astext == "alice")
    ).all()
    assert [h.version for h in by_alice] == [0]
    assert session.scalars(sa.select(History.change_info).order_by(History.version)).all() == [
        h.change_info for h in note.versions()
    ]
    refined = note.versions(return_query=True).filter(
        History.change_info["user_id"].astext == "bob"
    )
    assert [h.text for h in refined] == ["b"]


def test_change_info_read_after_expiry_reloads(Base, engine, session):
    Note = _note(Base, engine)
    note = _two_changes(session, Note)
    first = note.versions()[0]
    assert first.change_info["user_id"] == "alice"
    session.expire(first)
    assert first.change_info["user_id"] == "alice"  # reloaded, decoded again


def test_change_info_decodes_what_the_database_holds(Base, engine, session):
    Note = _note(Base, engine)
    note = _two_changes(session, Note)
    raw = session.execute(
        sa.text("SELECT change_info::text FROM note_history ORDER BY version")
    ).scalars()
    assert [json.loads(r) for r in raw] == [h.change_info for h in note.versions()]


def test_assigning_change_info_of_a_loaded_history_object_is_refused(Base, engine, session):
    Note = _note(Base, engine)
    note = _two_changes(session, Note)
    first = note.versions()[0]
    with pytest.raises(ChrononautException, match="history rows are immutable"):
        first.change_info = {"user_id": "mallory"}
    session.commit()
    session.expire_all()
    assert note.versions()[0].change_info["user_id"] == "alice"
