"""chrononaut.restore(session, Model, *pk): a deleted record back from its deletion row."""

from __future__ import annotations

import math

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

import chrononaut
from chrononaut import ChrononautException, Versioned, restore, suppress_versioning


@pytest.fixture
def Note(Base, engine):
    class Note(Base, Versioned):
        __tablename__ = "note"
        __chrononaut_hidden__ = ["secret"]
        __chrononaut_untracked__ = ["views"]
        id: Mapped[int] = mapped_column(primary_key=True)
        title: Mapped[str] = mapped_column(sa.String(50))
        secret: Mapped[str | None] = mapped_column(default="default secret")
        views: Mapped[int | None] = mapped_column(server_default=sa.text("7"))
        memo: Mapped[str | None]

    Base.metadata.create_all(engine)
    return Note


@pytest.fixture
def deleted_note(Note, session):
    """Note 1, changed twice then deleted: its deletion row is version 2."""
    note = Note(id=1, title="a", secret="s", views=3, memo="m")
    session.add(note)
    session.commit()
    for title in "bc":
        note.title = title
        session.commit()
    session.delete(note)
    session.commit()
    session.expunge_all()
    return 1


def test_restore_recreates_tracked_columns_and_continues_numbering(Note, deleted_note, session):
    note = restore(session, Note, deleted_note)
    assert isinstance(note, Note) and note in session.new
    session.commit()
    assert (note.title, note.memo, note.version) == ("c", "m", 3)
    assert [(v.version, v.is_deletion) for v in note.versions()] == [
        (0, False),
        (1, False),
        (2, True),
    ]


def test_restore_gives_hidden_and_untracked_columns_their_defaults(Note, deleted_note, session):
    note = restore(session, Note, deleted_note)
    session.commit()
    assert note.secret == "default secret"  # the column's Python default
    assert note.views == 7  # the column's server default


def test_restored_mark_rides_on_the_next_history_row(Note, deleted_note, session):
    note = restore(session, Note, deleted_note)
    session.commit()
    note.title = "d"
    session.commit()
    row = note.versions()[-1]
    assert (row.version, row.title, row.change_info["restored"]) == (3, "c", True)
    note.title = "e"
    session.commit()
    assert "restored" not in note.versions()[-1].change_info


def test_restore_of_an_existing_record_raises(Note, deleted_note, session):
    restore(session, Note, deleted_note)
    session.commit()
    with pytest.raises(ChrononautException, match=r"Note\(id=1\) exists"):
        restore(session, Note, 1)


def test_restore_of_a_never_deleted_or_unknown_record_raises(Note, session):
    with pytest.raises(ChrononautException, match="has no history"):
        restore(session, Note, 42)
    note = Note(id=2, title="x")
    session.add(note)
    session.commit()
    note.title = "y"
    session.commit()
    with suppress_versioning():
        session.delete(note)
        session.commit()
    with pytest.raises(ChrononautException, match="not a deletion row"):
        restore(session, Note, 2)
    assert not session.new


@pytest.mark.parametrize(
    ("args", "error"),
    [
        ((), TypeError),
        ((1, 2), TypeError),
        ((None,), TypeError),
        ((True,), TypeError),
        (("1",), TypeError),
        ((1.5,), (TypeError, ValueError)),
        ((math.nan,), (TypeError, ValueError)),
        ((math.inf,), (TypeError, ValueError)),
    ],
)
def test_bad_primary_keys_raise_before_any_sql(Note, session, args, error):
    with pytest.raises(error):
        restore(session, Note, *args)
    assert not session.in_transaction()


def test_bad_session_and_model_raise(Note, session, deleted_note):
    with pytest.raises(TypeError, match="Session"):
        restore(object(), Note, 1)
    with pytest.raises(TypeError, match="Versioned model class"):
        restore(session, "Note", 1)
    with pytest.raises(TypeError, match="Versioned model class"):
        restore(session, Note(id=3, title="x"), 1)
    with pytest.raises(TypeError, match="Versioned model class"):
        restore(session, int, 1)
    assert not session.in_transaction()


def test_restore_goes_through_the_scoped_session(db):
    class Memo(db.Model, Versioned):
        id = db.Column(db.Integer, primary_key=True)
        text = db.Column(db.String(20))

    db.create_all()
    memo = Memo(id=1, text="hello")
    db.session.add(memo)
    db.session.commit()
    db.session.delete(memo)
    db.session.commit()
    back = restore(db.session, Memo, 1)
    db.session.commit()
    assert (back.text, back.version) == ("hello", 1)


def _delete(session, obj):
    session.delete(obj)
    session.commit()
    session.expunge_all()


def test_joined_inheritance_restores_the_subclass(Base, engine, session):
    class Employee(Base, Versioned):
        __tablename__ = "employee"
        id: Mapped[int] = mapped_column(primary_key=True)
        name: Mapped[str]
        type: Mapped[str] = mapped_column(sa.String(20))
        __mapper_args__ = {"polymorphic_on": "type", "polymorphic_identity": "employee"}

    class Engineer(Employee):
        __tablename__ = "engineer"
        __chrononaut_hidden__ = ["badge"]
        id: Mapped[int] = mapped_column(sa.ForeignKey("employee.id"), primary_key=True)
        language: Mapped[str | None]
        badge: Mapped[str | None]
        __mapper_args__ = {"polymorphic_identity": "engineer"}

    Base.metadata.create_all(engine)
    session.add(Engineer(id=1, name="Ada", language="ml", badge="b-1"))
    session.commit()
    ada = session.get(Engineer, 1)
    ada.language = "python"
    session.commit()
    _delete(session, ada)

    back = restore(session, Employee, 1)  # through the base class
    assert type(back) is Engineer
    session.commit()
    assert (back.name, back.language, back.badge, back.version) == ("Ada", "python", None, 2)
    session.expunge_all()
    again = session.get(Employee, 1)
    assert type(again) is Engineer and again.language == "python"
    _delete(session, again)
    assert type(restore(session, Engineer, 1)) is Engineer
    session.rollback()

    session.add(Employee(id=2, name="Bob"))
    session.commit()
    _delete(session, session.get(Employee, 2))
    with pytest.raises(ChrononautException, match="was a Employee, not a Engineer"):
        restore(session, Engineer, 2)


def test_single_table_inheritance_restores_the_subclass(Base, engine, session):
    class Employee(Base, Versioned):
        __tablename__ = "employee"
        id: Mapped[int] = mapped_column(primary_key=True)
        name: Mapped[str]
        type: Mapped[str] = mapped_column(sa.String(20))
        __mapper_args__ = {"polymorphic_on": "type", "polymorphic_identity": "employee"}

    class Manager(Employee):
        __chrononaut_untracked__ = ["parking"]
        team: Mapped[str | None] = mapped_column(nullable=True)
        parking: Mapped[str | None] = mapped_column(nullable=True)
        __mapper_args__ = {"polymorphic_identity": "manager"}

    Base.metadata.create_all(engine)
    session.add(Manager(id=1, name="Mia", team="A", parking="P3"))
    session.commit()
    mia = session.get(Manager, 1)
    mia.team = "B"
    session.commit()
    _delete(session, mia)

    back = restore(session, Employee, 1)
    assert type(back) is Manager
    session.commit()
    assert (back.name, back.team, back.parking, back.type, back.version) == (
        "Mia",
        "B",
        None,
        "manager",
        2,
    )
    back.team = "C"
    session.commit()
    assert back.versions()[-1].change_info["restored"] is True


def test_restore_then_revert_and_prune_work_together(Note, deleted_note, session):
    note = restore(session, Note, deleted_note)
    session.commit()
    note.revert_to(0)
    session.commit()
    assert (note.title, note.version) == ("a", 4)
    info = note.versions()[-1].change_info
    assert (info["restored"], info["reverted_to"]) == (True, 0)
    assert chrononaut.prune(session, [Note], keep_last=1) == {Note: 2}  # deletion row kept
    session.expire_all()
    assert [(v.version, v.is_deletion) for v in note.versions()] == [(2, True), (3, False)]


def test_restore_honours_another_owners_lease_on_the_key(Note, session):
    with chrononaut.acting_as("bob"):
        note = Note(id=1, title="a")
        session.add(note)
        session.commit()
        note.acquire_lease()
        session.delete(note)  # bob's own lease: allowed; the lease outlives the record
        session.commit()
    with chrononaut.acting_as("alice"), pytest.raises(chrononaut.RecordLockedError) as exc_info:
        restore(session, Note, 1)
    assert (exc_info.value.owner, exc_info.value.record) == ("bob", "Note(id=1)")
    assert not session.new
    session.rollback()
    with chrononaut.acting_as("bob"):
        restore(session, Note, 1)
        session.commit()
    assert session.get(Note, 1).title == "a"


def test_restore_honours_another_transactions_lock_on_the_key(Note, session, engine):
    from chrononaut.locking import keys

    note = Note(id=1, title="a")
    session.add(note)
    session.commit()
    session.delete(note)
    session.commit()
    key = keys.advisory_key(keys.table_name(Note), (1,))
    with engine.connect() as other:
        other.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": key})
        with pytest.raises(chrononaut.RecordLockedError, match="holds lock"):
            restore(session, Note, 1)
        assert not session.new
        other.rollback()
    session.rollback()
    restore(session, Note, 1)
    session.commit()
    assert session.get(Note, 1).version == 1


def test_record_changes_models_carry_the_restored_mark_on_the_row(Base, engine, session):
    class Memo(Base, Versioned, chrononaut.RecordChanges):
        __tablename__ = "memo"
        id: Mapped[int] = mapped_column(primary_key=True)
        text: Mapped[str]

    Base.metadata.create_all(engine)
    with chrononaut.acting_as("alice"):
        memo = Memo(id=1, text="x")
        session.add(memo)
        session.commit()
        session.delete(memo)
        session.commit()
        back = restore(session, Memo, 1)
        session.commit()
    assert (back.change_info["restored"], back.change_info["user_id"]) == (True, "alice")
