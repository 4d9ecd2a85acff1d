"""The version counter: conditioned writes, stale writes as ConflictError, untracked columns.

Two sessions on two connections of a real server play the two writers; the
interleaving is fixed by the order of the test's own statements.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone

import pytest
import sqlalchemy as sa
from freezegun import freeze_time
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.orm.exc import StaleDataError

from chrononaut import (
    Change,
    ChrononautException,
    ConflictError,
    Versioned,
    acting_as,
)


@pytest.fixture
def Doc(Base, engine):
    class Doc(Base, Versioned):
        __tablename__ = "doc"
        __chrononaut_hidden__ = ["secret"]
        __chrononaut_untracked__ = ["views"]
        id: Mapped[int] = mapped_column(primary_key=True)
        title: Mapped[str] = mapped_column(sa.String(80))
        status: Mapped[str] = mapped_column(sa.String(20), default="draft")
        secret: Mapped[str | None] = mapped_column(sa.String(80))
        views: Mapped[int] = mapped_column(default=0)

    Base.metadata.create_all(engine)
    return Doc


@pytest.fixture
def statements(engine):
    """Every (SQL, parameters) the engine sends, captured before execution."""
    captured: list[tuple[str, dict]] = []

    def capture(conn, cursor, statement, parameters, context, executemany):
        captured.append((statement, parameters))

    sa.event.listen(engine, "before_cursor_execute", capture)
    yield captured
    sa.event.remove(engine, "before_cursor_execute", capture)


def new_doc(session_factory, Doc, doc_id=42, version=0, **values):
    """Insert a Doc and update it until it is at ``version``; returns its id."""
    with session_factory() as s:
        s.add(Doc(id=doc_id, title=values.pop("title", "draft"), **values))
        s.commit()
        for n in range(version):
            s.get(Doc, doc_id).status = f"step {n + 1}"
            s.commit()
    return doc_id


def writes_to(captured, verb):
    """The captured statements of one kind on table ``doc`` (``UPDATE`` or ``DELETE``)."""
    prefix = {"UPDATE": "UPDATE doc ", "DELETE": "DELETE FROM doc "}[verb]
    return [(sql, params) for sql, params in captured if sql.startswith(prefix)]


def where_version(sql, params):
    """The value the WHERE clause compares ``doc.version`` to, or None if it does not."""
    where = sql.split(" WHERE ", 1)[1]
    match = re.search(r"doc\.version = %\((\w+)\)s", where)
    return params[match.group(1)] if match else None


def stored(engine, Doc, doc_id=42):
    """The row as committed, read on a connection of its own (None if deleted)."""
    table = Doc.__table__
    with engine.connect() as conn:
        row = conn.execute(sa.select(table).where(table.c.id == doc_id)).mappings().first()
    return dict(row) if row is not None else None


def history(engine, Doc, doc_id=42):
    """(version, title, status, change_info) of every history row, oldest first."""
    table = Doc.__history_mapper__.local_table
    stmt = (
        sa.select(table.c.version, table.c.title, table.c.status, table.c.change_info)
        .where(table.c.id == doc_id)
        .order_by(table.c.version)
    )
    with engine.connect() as conn:
        return [tuple(row) for row in conn.execute(stmt)]


def test_orm_update_is_conditioned_on_loaded_version_and_bumps_it(
    session_factory, Doc, statements
):
    new_doc(session_factory, Doc, version=2)
    with session_factory() as s:
        doc = s.get(Doc, 42)
        statements.clear()
        doc.title = "final"
        s.commit()

    [(sql, params)] = writes_to(statements, "UPDATE")
    assert where_version(sql, params) == 2
    assert params["version"] == 3
    assert "doc.id = " in sql.split(" WHERE ", 1)[1]


def test_orm_delete_is_conditioned_on_loaded_version(session_factory, Doc, statements, engine):
    new_doc(session_factory, Doc, version=1)
    with session_factory() as s:
        doc = s.get(Doc, 42)
        statements.clear()
        s.delete(doc)
        s.commit()

    [(sql, params)] = writes_to(statements, "DELETE")
    assert where_version(sql, params) == 1
    assert stored(engine, Doc) is None


def test_stale_update_raises_conflict_writes_nothing_and_rollback_makes_session_reusable(
    session_factory, Doc, engine
):
    new_doc(session_factory, Doc)
    with session_factory() as mine, session_factory() as theirs:
        doc = mine.get(Doc, 42)
        theirs.get(Doc, 42).status = "review"
        theirs.commit()

        doc.title = "stale edit"
        with pytest.raises(ConflictError) as exc_info:
            mine.commit()

        err = exc_info.value
        assert isinstance(err, ChrononautException)
        assert isinstance(err, StaleDataError)
        assert (err.record, err.expected_version, err.current_version) == ("Doc(id=42)", 0, 1)
        assert err.columns == ("status",)
        row = stored(engine, Doc)
        assert (row["title"], row["status"], row["version"]) == ("draft", "review", 1)
        assert [h[:3] for h in history(engine, Doc)] == [(0, "draft", "draft")]

        mine.rollback()
        doc = mine.get(Doc, 42)
        assert (doc.version, doc.status) == (1, "review")
        doc.title = "second try"
        mine.commit()

    row = stored(engine, Doc)
    assert (row["title"], row["status"], row["version"]) == ("second try", "review", 2)
    assert [h[:3] for h in history(engine, Doc)] == [(0, "draft", "draft"), (1, "draft", "review")]


def test_stale_delete_raises_conflict_and_keeps_the_row(session_factory, Doc, engine):
    new_doc(session_factory, Doc)
    with session_factory() as mine, session_factory() as theirs:
        doc = mine.get(Doc, 42)
        theirs.get(Doc, 42).title = "renamed"
        theirs.commit()

        mine.delete(doc)
        with pytest.raises(ConflictError) as exc_info:
            mine.flush()

        err = exc_info.value
        assert isinstance(err, StaleDataError)
        assert (err.expected_version, err.current_version) == (0, 1)
        assert [c.columns for c in err.changes] == [("title",)]
        assert stored(engine, Doc)["title"] == "renamed"
        assert [h[0] for h in history(engine, Doc)] == [0]

        mine.rollback()
        mine.delete(mine.get(Doc, 42))
        mine.commit()

    assert stored(engine, Doc) is None
    assert [(h[0], h[3].get("deleted")) for h in history(engine, Doc)] == [(0, None), (1, True)]


@pytest.mark.parametrize("action", ["update", "delete"])
def test_write_to_record_deleted_by_another_session_says_it_was_deleted(
    session_factory, Doc, engine, action
):
    new_doc(session_factory, Doc)
    with session_factory() as mine, session_factory() as theirs:
        doc = mine.get(Doc, 42)
        theirs.delete(theirs.get(Doc, 42))
        with acting_as("bob"), freeze_time("2024-05-01 09:30:00"):
            theirs.commit()

        if action == "update":
            doc.title = "too late"
        else:
            mine.delete(doc)
        with pytest.raises(ConflictError) as exc_info:
            mine.commit()
        mine.rollback()

    err = exc_info.value
    assert err.current_version is None
    assert err.expected_version == 0
    assert err.changes == [
        Change(
            version=1,
            user_id="bob",
            changed=datetime(2024, 5, 1, 9, 30, tzinfo=timezone.utc),
            columns=(),
            deleted=True,
        )
    ]
    assert str(err) == (
        "Doc(id=42) was deleted since you loaded version 0: "
        "version 1 by bob at 09:30:00 UTC deleted it"
    )
    assert stored(engine, Doc) is None
    assert [h[0] for h in history(engine, Doc)] == [0]


def test_conflict_message_is_one_sentence_naming_version_user_time_and_columns(
    session_factory, Doc
):
    new_doc(session_factory, Doc, version=7)
    with session_factory() as mine, session_factory() as theirs:
        doc = mine.get(Doc, 42)
        other = theirs.get(Doc, 42)
        other.title, other.status = "by alice", "published"
        with acting_as("alice"), freeze_time("2024-05-01 12:01:05"):
            theirs.commit()

        doc.title = "mine"
        with pytest.raises(ConflictError) as exc_info:
            mine.commit()
        mine.rollback()

    err = exc_info.value
    assert str(err) == (
        "Doc(id=42) changed since you loaded version 7: "
        "version 8 by alice at 12:01:05 UTC changed title, status"
    )
    assert (err.record, err.model, err.identity) == ("Doc(id=42)", "Doc", (42,))
    assert (err.expected_version, err.current_version) == (7, 8)
    assert err.columns == ("status", "title")


def test_conflict_lists_every_intervening_version_and_names_hidden_columns_without_values(
    session_factory, Doc
):
    new_doc(session_factory, Doc, version=7)
    with session_factory() as mine, session_factory() as theirs:
        doc = mine.get(Doc, 42)
        other = theirs.get(Doc, 42)
        other.title, other.status = "by alice", "published"
        with acting_as("alice"), freeze_time("2024-05-01 12:01:05"):
            theirs.commit()
        theirs.get(Doc, 42).secret = "hunter2"
        with acting_as(7), freeze_time("2024-05-01 12:02:10"):
            theirs.commit()

        doc.status = "archived"
        with pytest.raises(ConflictError) as exc_info:
            mine.commit()
        mine.rollback()

    err = exc_info.value
    assert [(c.version, c.user_id, c.columns, c.deleted) for c in err.changes] == [
        (8, "alice", ("title", "status"), False),
        (9, 7, ("secret",), False),
    ]
    times = ["2024-05-01T12:01:05", "2024-05-01T12:02:10"]
    for change, expected in zip(err.changes, times, strict=True):
        assert change.changed.tzinfo is not None
        assert change.changed.utcoffset().total_seconds() == 0
        assert change.changed == datetime.fromisoformat(expected).replace(tzinfo=timezone.utc)
    assert (err.expected_version, err.current_version) == (7, 9)
    assert err.columns == ("secret", "status", "title")
    assert str(err) == (
        "Doc(id=42) changed since you loaded version 7: "
        "version 8 by alice at 12:01:05 UTC changed title, status; "
        "version 9 by 7 at 12:02:10 UTC changed secret"
    )
    assert "hunter2" not in str(err)
    assert "hunter2" not in repr(err.to_dict())
    assert err.to_dict()["changes"][1]["columns"] == ["secret"]


def test_stale_object_updating_only_an_untracked_column_neither_checks_nor_bumps_version(
    session_factory, Doc, engine, statements
):
    new_doc(session_factory, Doc)
    with session_factory() as mine, session_factory() as theirs:
        doc = mine.get(Doc, 42)
        theirs.get(Doc, 42).title = "theirs"
        theirs.commit()

        statements.clear()
        doc.views = 5
        mine.commit()

    [(sql, params)] = writes_to(statements, "UPDATE")
    assert "version" not in sql
    assert sorted(params.values()) == [5, 42]
    row = stored(engine, Doc)
    assert (row["title"], row["views"], row["version"]) == ("theirs", 5, 1)
    assert [h[0] for h in history(engine, Doc)] == [0]


def test_untracked_only_write_to_a_record_deleted_meanwhile_raises_conflict(
    session_factory, Doc, engine
):
    new_doc(session_factory, Doc)
    with session_factory() as mine, session_factory() as theirs:
        doc = mine.get(Doc, 42)
        theirs.delete(theirs.get(Doc, 42))
        with acting_as("bob"):
            theirs.commit()

        doc.views = 5  # untracked: no version check, but the row must still exist
        with pytest.raises(ConflictError) as exc_info:
            mine.commit()
        mine.rollback()

    err = exc_info.value
    assert (err.record, err.expected_version, err.current_version) == ("Doc(id=42)", 0, None)
    assert [(c.version, c.user_id, c.deleted) for c in err.changes] == [(1, "bob", True)]
    assert stored(engine, Doc) is None


def test_untracked_sql_expression_on_stale_object_is_applied_by_the_database(
    session_factory, Doc, engine
):
    new_doc(session_factory, Doc, views=3)
    with session_factory() as mine, session_factory() as theirs:
        doc = mine.get(Doc, 42)
        other = theirs.get(Doc, 42)
        other.title, other.views = "theirs", 10
        theirs.commit()

        doc.views = Doc.views + 1
        mine.commit()
        assert (doc.views, doc.version, doc.title) == (11, 1, "theirs")

    row = stored(engine, Doc)
    assert (row["title"], row["views"], row["version"]) == ("theirs", 11, 1)
    assert [h[0] for h in history(engine, Doc)] == [0]


def test_stale_change_of_tracked_and_untracked_columns_is_checked_and_writes_neither(
    session_factory, Doc, engine
):
    new_doc(session_factory, Doc)
    with session_factory() as mine, session_factory() as theirs:
        doc = mine.get(Doc, 42)
        theirs.get(Doc, 42).status = "review"
        theirs.commit()

        doc.title, doc.views = "mine", 99
        with pytest.raises(ConflictError) as exc_info:
            mine.commit()
        mine.rollback()

    assert (exc_info.value.expected_version, exc_info.value.current_version) == (0, 1)
    row = stored(engine, Doc)
    assert (row["title"], row["views"], row["version"]) == ("draft", 0, 1)


def test_conflict_explanation_stays_consistent_when_a_commit_lands_while_it_is_built(
    session_factory, Doc, engine
):
    # The explanation reads history, then the current row. A third writer
    # commits right after the history read; current_version and changes must
    # still describe the same versions.
    new_doc(session_factory, Doc)
    injected = []

    def commit_after_history_read(conn, cursor, statement, parameters, context, executemany):
        if not injected and "FROM doc_history" in statement:
            injected.append(statement)
            with session_factory() as third:
                third.get(Doc, 42).status = "third"
                third.commit()

    with session_factory() as mine, session_factory() as theirs:
        doc = mine.get(Doc, 42)
        theirs.get(Doc, 42).title = "theirs"
        theirs.commit()

        doc.title = "mine"
        sa.event.listen(engine, "after_cursor_execute", commit_after_history_read)
        try:
            with pytest.raises(ConflictError) as exc_info:
                mine.commit()
        finally:
            sa.event.remove(engine, "after_cursor_execute", commit_after_history_read)
        mine.rollback()

    err = exc_info.value
    assert injected, "the explanation never read history"
    assert stored(engine, Doc)["version"] == 2
    seen = (err.current_version, [(c.version, c.columns) for c in err.changes])
    assert seen in [
        (1, [(1, ("title",))]),  # explained as of before the third commit
        (2, [(1, ("title",)), (2, ("status",))]),  # or as of after it
    ]
