"""chrononaut.prune(): older_than and/or keep_last, deletion rows kept, batches, bad inputs."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from freezegun import freeze_time
from sqlalchemy.orm import Mapped, mapped_column

from chrononaut import Versioned, prune

START = datetime(2024, 1, 1, tzinfo=timezone.utc)


@pytest.fixture
def Note(Base, engine):
    class Note(Base, Versioned):
        __tablename__ = "note"
        id: Mapped[int] = mapped_column(primary_key=True)
        title: Mapped[str] = mapped_column(sa.String(50))

    Base.metadata.create_all(engine)
    return Note


def make_notes(session, Note, count, changes, deleted=()):
    """``count`` notes, each changed ``changes`` times, one day apart from START."""
    notes = [Note(id=i, title="t0") for i in range(1, count + 1)]
    session.add_all(notes)
    session.commit()
    for day in range(changes):
        with freeze_time(START + timedelta(days=day)):
            for note in notes:
                note.title = f"t{day + 1}"
            session.commit()
    with freeze_time(START + timedelta(days=changes)):
        for note in notes:
            if note.id in deleted:
                session.delete(note)
        session.commit()
    session.expunge_all()


def history_versions(session, Note):
    table = Note.__history_mapper__.local_table
    rows = session.execute(sa.select(table.c.id, table.c.version).order_by("id", "version"))
    out: dict[int, list[int]] = {}
    for pk, version in rows:
        out.setdefault(pk, []).append(version)
    session.rollback()
    return out


def test_keep_last_keeps_the_newest_versions_of_each_record(Note, session):
    make_notes(session, Note, 3, 5)
    assert prune(session, [Note], keep_last=2) == {Note: 9}
    assert history_versions(session, Note) == {1: [3, 4], 2: [3, 4], 3: [3, 4]}


def test_older_than_deletes_by_age(Note, session):
    make_notes(session, Note, 2, 5)
    with freeze_time(START + timedelta(days=10)):
        assert prune(session, [Note], older_than=timedelta(days=8)) == {Note: 4}
    assert history_versions(session, Note) == {1: [2, 3, 4], 2: [2, 3, 4]}


def test_older_than_accepts_a_cutoff_datetime_naive_as_utc(Note, session):
    make_notes(session, Note, 1, 5)
    assert prune(session, [Note], older_than=datetime(2024, 1, 3)) == {Note: 2}
    assert history_versions(session, Note) == {1: [2, 3, 4]}


def test_both_conditions_must_hold(Note, session):
    make_notes(session, Note, 1, 6)
    # older than day 4: versions 0..3; beyond the newest 3: versions 0..2
    assert prune(session, [Note], older_than=START + timedelta(days=4), keep_last=3) == {Note: 3}
    assert history_versions(session, Note) == {1: [3, 4, 5]}


def test_deletion_rows_are_kept_unless_asked(Note, session):
    make_notes(session, Note, 2, 3, deleted={2})
    assert prune(session, [Note], keep_last=1) == {Note: 5}  # the deletion row counts as kept
    assert history_versions(session, Note) == {1: [2], 2: [3]}
    assert prune(session, [Note], older_than=timedelta(0)) == {Note: 1}  # note 1's
    assert history_versions(session, Note) == {2: [3]}
    assert prune(session, [Note], older_than=timedelta(0), include_deleted=True) == {Note: 1}
    assert history_versions(session, Note) == {}


def test_dry_run_deletes_nothing(Note, session):
    make_notes(session, Note, 2, 3)
    before = history_versions(session, Note)
    assert prune(session, [Note], keep_last=1, dry_run=True) == {Note: 4}
    assert history_versions(session, Note) == before


def test_small_batches_give_the_same_result(Note, session):
    make_notes(session, Note, 7, 4)
    assert prune(session, [Note], keep_last=2, batch_size=3) == {Note: 14}
    assert history_versions(session, Note) == {i: [2, 3] for i in range(1, 8)}


def test_each_batch_commits_on_its_own(Note, session, engine):
    make_notes(session, Note, 4, 3)
    statements: list[str] = []

    def note_statement(conn, cursor, statement, *args):
        statements.append(statement.split()[0].upper())

    sa.event.listen(engine, "before_cursor_execute", note_statement)
    commits: list[int] = []
    sa.event.listen(engine, "commit", lambda conn: commits.append(1))
    try:
        assert prune(session, [Note], keep_last=1, batch_size=3) == {Note: 8}
    finally:
        sa.event.remove(engine, "before_cursor_execute", note_statement)
    assert statements.count("DELETE") == len(commits) - 1 >= 4  # one has_table transaction


def test_pruned_records_answer_versions_with_what_is_left(Note, session):
    make_notes(session, Note, 1, 4)
    prune(session, [Note], keep_last=2)
    note = session.get(Note, 1)
    assert [v.version for v in note.versions()] == [2, 3]
    note.title = "after"
    session.commit()
    assert [v.version for v in note.versions()] == [2, 3, 4]


def test_models_none_prunes_every_mapped_hierarchy(Note, session):
    make_notes(session, Note, 1, 3)
    counts = prune(session, keep_last=1)
    assert counts[Note] == 2


def test_subclass_model_prunes_only_its_records(Base, engine, session):
    class Employee(Base, Versioned):
        __tablename__ = "employee"
        id: Mapped[int] = mapped_column(primary_key=True)
        name: Mapped[str]
        type: Mapped[str] = mapped_column(sa.String(20))
        __mapper_args__ = {"polymorphic_on": "type", "polymorphic_identity": "employee"}

    class Engineer(Employee):
        __tablename__ = "engineer"
        id: Mapped[int] = mapped_column(sa.ForeignKey("employee.id"), primary_key=True)
        language: Mapped[str | None]
        __mapper_args__ = {"polymorphic_identity": "engineer"}

    Base.metadata.create_all(engine)
    people = [Employee(id=1, name="e"), Engineer(id=2, name="g", language="c")]
    session.add_all(people)
    session.commit()
    for n in range(3):
        for person in people:
            person.name = f"n{n}"
        session.commit()
    assert prune(session, [Engineer], keep_last=1) == {Engineer: 2}
    sub = Engineer.__history_mapper__.local_table
    assert session.execute(sa.select(sub.c.version)).scalars().all() == [2]  # cascaded
    assert prune(session, [Employee], keep_last=1) == {Employee: 2}


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({}, ValueError),
        ({"keep_last": 0}, ValueError),
        ({"keep_last": -1}, ValueError),
        ({"keep_last": True}, TypeError),
        ({"keep_last": 1.0}, TypeError),
        ({"keep_last": math.nan}, TypeError),
        ({"keep_last": math.inf}, TypeError),
        ({"keep_last": "5"}, TypeError),
        ({"older_than": -timedelta(days=1)}, ValueError),
        ({"older_than": 30}, TypeError),
        ({"older_than": "365d"}, TypeError),
        ({"older_than": math.inf}, TypeError),
        ({"keep_last": 1, "batch_size": 0}, ValueError),
        ({"keep_last": 1, "batch_size": 10**9}, ValueError),
        ({"keep_last": 1, "batch_size": 2.5}, TypeError),
        ({"keep_last": 1, "include_deleted": 1}, TypeError),
        ({"keep_last": 1, "dry_run": "no"}, TypeError),
        ({"keep_last": 1, "models": []}, ValueError),
        ({"keep_last": 1, "models": "Note"}, TypeError),
        ({"keep_last": 1, "models": [int]}, TypeError),
    ],
)
def test_bad_arguments_raise_before_any_sql(Note, session, engine, kwargs, error):
    make_notes(session, Note, 1, 2)
    statements: list[str] = []
    listener = lambda *args: statements.append(args[2])  # noqa: E731
    sa.event.listen(engine, "before_cursor_execute", listener)
    try:
        with pytest.raises(error):
            prune(session, **kwargs)
        with pytest.raises(TypeError):
            prune(None, keep_last=1)
        with pytest.raises(TypeError):
            prune(session, Note, keep_last=1)  # a class, not a list
    finally:
        sa.event.remove(engine, "before_cursor_execute", listener)
    assert statements == []
    assert history_versions(session, Note) == {1: [0, 1]}


def test_overlapping_models_are_refused(Base, engine, session):
    class Employee(Base, Versioned):
        __tablename__ = "employee"
        id: Mapped[int] = mapped_column(primary_key=True)
        type: Mapped[str] = mapped_column(sa.String(20))
        __mapper_args__ = {"polymorphic_on": "type", "polymorphic_identity": "employee"}

    class Manager(Employee):
        __mapper_args__ = {"polymorphic_identity": "manager"}

    with pytest.raises(ValueError, match="list Employee alone"):
        prune(session, [Employee, Manager], keep_last=1)


def test_prune_does_not_wait_for_a_writer_nor_delete_its_uncommitted_row(
    Note, session, session_factory, clean_database
):
    make_notes(session, Note, 1, 3)  # history versions 0, 1, 2
    impatient = sa.create_engine(clean_database, connect_args={"options": "-c lock_timeout=2000"})
    try:
        with session_factory() as writer:
            note = writer.get(Note, 1)
            note.title = "in flight"
            writer.flush()  # row lock on the note, history row 3 not committed
            with session_factory(bind=impatient) as pruner:
                assert prune(pruner, [Note], keep_last=1) == {Note: 2}  # 0 and 1
            writer.commit()
    finally:
        impatient.dispose()
    assert history_versions(session, Note) == {1: [2, 3]}  # keep_last + the one in flight
