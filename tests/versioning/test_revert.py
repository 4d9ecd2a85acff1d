"""record.revert_to(version): tracked columns back, a new version, change_info["reverted_to"]."""

from __future__ import annotations

import math

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

import chrononaut
from chrononaut import ChrononautException, ConflictError, Versioned, VersionNotFoundError


@pytest.fixture
def Note(Base, engine):
    class Note(Base, Versioned):
        __tablename__ = "note"
        __chrononaut_hidden__ = ["secret"]
        __chrononaut_untracked__ = ["views"]
        id: Mapped[int] = mapped_column(primary_key=True)
        title: Mapped[str] = mapped_column(sa.String(50))
        body: Mapped[str] = mapped_column(default="")
        secret: Mapped[str] = mapped_column(default="")
        views: Mapped[int] = mapped_column(default=0)
        slug: Mapped[str] = mapped_column(sa.Computed("lower(title)"), nullable=True)

    Base.metadata.create_all(engine)
    return Note


@pytest.fixture
def note(Note, session):
    """A note at version 3: titles a, b, c, d (history versions 0, 1, 2)."""
    note = Note(id=1, title="a", body="body a", secret="s0")
    session.add(note)
    session.commit()
    for title in "bcd":
        note.title = title
        note.body = f"body {title}"
        note.secret = f"s-{title}"
        note.views += 1
        session.commit()
    assert note.version == 3
    return note


def test_revert_sets_tracked_columns_and_writes_a_new_version(note, session):
    assert note.revert_to(1) is note
    assert (note.title, note.body) == ("b", "body b")
    session.commit()
    assert note.version == 4
    row = note.versions()[-1]
    assert (row.version, row.title) == (3, "d")
    assert row.change_info["reverted_to"] == 1
    assert note.slug == "b"  # the database computed it again


def test_revert_keeps_hidden_and_untracked_values(note, session):
    note.revert_to(0)
    session.commit()
    assert (note.title, note.secret, note.views) == ("a", "s-d", 3)


def test_revert_to_a_history_object(note, session):
    target = note.versions()[2]
    note.revert_to(target)
    session.commit()
    assert note.title == "c"
    assert note.versions()[-1].change_info["reverted_to"] == 2


def test_revert_to_version_zero_is_the_first_version(note, session):
    note.revert_to(0)
    session.commit()
    assert note.title == "a"


def test_revert_to_identical_values_writes_nothing(note, session):
    note.revert_to(2)
    session.commit()
    assert note.version == 4
    note.revert_to(2)  # same values again
    assert not session.is_modified(note)
    session.commit()
    assert note.version == 4
    note.title = "e"
    session.commit()
    assert "reverted_to" not in note.versions()[-1].change_info


def test_revert_to_current_or_future_version_raises(note, session):
    with pytest.raises(VersionNotFoundError) as exc_info:
        note.revert_to(3)
    assert (exc_info.value.version, exc_info.value.current_version) == (3, 3)
    assert "not an earlier version" in str(exc_info.value)
    with pytest.raises(VersionNotFoundError):
        note.revert_to(99)


def test_revert_to_another_records_history_object_raises(Note, note, session):
    other = Note(id=2, title="x")
    session.add(other)
    session.commit()
    other.title = "y"
    session.commit()
    with pytest.raises(ChrononautException, match="not a version of Note"):
        note.revert_to(other.versions()[0])
    assert not session.dirty


@pytest.mark.parametrize(
    ("bad", "error"),
    [
        (True, TypeError),
        (False, TypeError),
        (-1, ValueError),
        (1.0, TypeError),
        (math.nan, TypeError),
        (math.inf, TypeError),
        ("1", TypeError),
        (None, TypeError),
    ],
)
def test_bad_versions_raise_before_any_change(note, session, bad, error):
    with pytest.raises(error):
        note.revert_to(bad)
    assert not session.dirty and note.title == "d"


def test_revert_of_transient_pending_detached_and_deleted_records_raises(Note, note, session):
    with pytest.raises(ChrononautException, match="not saved yet"):
        Note(id=5, title="t").revert_to(0)
    pending = Note(id=6, title="p")
    session.add(pending)
    with pytest.raises(ChrononautException, match="not saved yet"):
        pending.revert_to(0)
    session.expunge(pending)
    session.delete(note)
    with pytest.raises(ChrononautException, match="marked for deletion"):
        note.revert_to(0)
    session.commit()
    with pytest.raises(ChrononautException, match="restore"):
        note.revert_to(0)
    loaded = session.get(Note, 1)
    assert loaded is None
    fresh = Note(id=7, title="f")
    session.add(fresh)
    session.commit()
    session.expunge(fresh)
    with pytest.raises(ChrononautException, match="not attached"):
        fresh.revert_to(0)
    with pytest.raises(TypeError, match="Versioned records"):
        Versioned.revert_to(object(), 0)  # type: ignore[arg-type]


def test_revert_does_not_autoflush_pending_changes(note, session):
    note.body = "edited"
    note.revert_to(0)
    assert note.body == "body a"
    assert note.version == 3  # nothing flushed yet
    session.commit()
    assert note.version == 4


def test_revert_of_a_stale_record_raises_conflict_at_flush(Note, note, session, session_factory):
    with session_factory() as other:
        theirs = other.get(Note, 1)
        theirs.title = "theirs"
        other.commit()
    note.revert_to(0)  # note still says version 3
    with pytest.raises(ConflictError) as exc_info:
        session.commit()
    assert (exc_info.value.expected_version, exc_info.value.current_version) == (3, 4)
    session.rollback()
    assert note.title == "theirs"


def test_revert_under_lock_refreshes_then_reverts(Note, note, session, session_factory):
    with session_factory() as other:
        theirs = other.get(Note, 1)
        theirs.title = "theirs"
        other.commit()
    with note.lock():
        note.revert_to(0)
    assert (note.title, note.version) == ("a", 5)


def test_revert_respects_another_owners_lease(Note, note, session, session_factory):
    with session_factory() as other, chrononaut.acting_as("bob"):
        other.get(Note, 1).acquire_lease()
        other.commit()
    with chrononaut.acting_as("alice"):
        note.revert_to(0)
        with pytest.raises(chrononaut.RecordLockedError):
            session.commit()
    session.rollback()
    assert note.title == "d"


def test_revert_to_a_pruned_version_names_the_oldest_kept(Note, note, session):
    session.commit()
    assert chrononaut.prune(session, [Note], keep_last=1) == {Note: 2}
    session.expire_all()
    with pytest.raises(VersionNotFoundError) as exc_info:
        note.revert_to(0)
    assert exc_info.value.oldest_kept == 2
    assert "was pruned; the oldest kept version is 2" in str(exc_info.value)
    note.revert_to(2)
    session.commit()
    assert note.title == "c"


def test_revert_to_never_changed_record_raises(Note, session):
    fresh = Note(id=9, title="only")
    session.add(fresh)
    session.commit()
    with pytest.raises(VersionNotFoundError) as exc_info:
        fresh.revert_to(0)
    assert exc_info.value.oldest_kept is None


def test_joined_inheritance_revert_sets_base_and_subclass_columns(Base, engine, session):
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
    ada = Engineer(id=1, name="Ada", language="ml", badge="b0")
    session.add(ada)
    session.commit()
    ada.name, ada.language, ada.badge = "Ada L.", "python", "b1"
    session.commit()
    ada.revert_to(0)
    session.commit()
    assert (ada.name, ada.language, ada.badge, ada.type, ada.version) == (
        "Ada",
        "ml",
        "b1",
        "engineer",
        2,
    )
    row = ada.versions()[-1]
    assert type(row).__name__ == "EngineerHistory" and row.language == "python"
    assert row.change_info["reverted_to"] == 0


def test_single_table_inheritance_revert_sets_subclass_columns(Base, engine, session):
    class Employee(Base, Versioned):
        __tablename__ = "employee"
        id: Mapped[int] = mapped_column(primary_key=True)
        name: Mapped[str]
        type: Mapped[str] = mapped_column(sa.String(20))
        __mapper_args__ = {"polymorphic_on": "type", "polymorphic_identity": "employee"}

    class Manager(Employee):
        __chrononaut_hidden__ = ["salary"]
        team: Mapped[str | None] = mapped_column(nullable=True)
        salary: Mapped[int | None] = mapped_column(nullable=True)
        __mapper_args__ = {"polymorphic_identity": "manager"}

    Base.metadata.create_all(engine)
    mia = Manager(id=1, name="Mia", team="A", salary=1)
    session.add(mia)
    session.commit()
    mia.team, mia.salary = "B", 2
    session.commit()
    mia.revert_to(mia.versions()[0])
    session.commit()
    assert (mia.team, mia.salary, mia.version) == ("A", 2, 2)


def test_composite_key_revert_and_prune(Base, engine, session):
    class Shelf(Base, Versioned):
        __tablename__ = "shelf"
        region: Mapped[str] = mapped_column(sa.String(8), primary_key=True)
        number: Mapped[int] = mapped_column(primary_key=True)
        label: Mapped[str]

    Base.metadata.create_all(engine)
    shelves = [Shelf(region=r, number=n, label="l0") for r in ("eu", "us") for n in (1, 2, 3)]
    session.add_all(shelves)
    session.commit()
    for i in range(1, 4):
        for shelf in shelves:
            shelf.label = f"l{i}"
        session.commit()
    assert chrononaut.prune(session, [Shelf], keep_last=1, batch_size=2) == {Shelf: 12}
    session.expire_all()
    for shelf in shelves:
        assert [v.version for v in shelf.versions()] == [2]
    shelves[0].revert_to(2)
    session.commit()
    assert shelves[0].label == "l2"
    with pytest.raises(VersionNotFoundError, match="oldest kept version is 2"):
        shelves[1].revert_to(1)
