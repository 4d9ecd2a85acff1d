"""The database guard: writes outside the ORM are versioned by triggers, exactly once.

"Raw" writes go through a connection of their own, as another service or a
psql session would; the ORM writes through a chrononaut session. Every test
counts the history rows, so a double write (trigger and ORM both) shows.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, sessionmaker

import chrononaut
from chrononaut import Change, ConflictError, Versioned, suppress_versioning

DATABASE_INFO = {"user_id": None, "remote_addr": None, "source": "database"}


@pytest.fixture
def Doc(Base, engine):
    class Doc(Base, Versioned):
        __tablename__ = "doc"
        __chrononaut_database_guard__ = True
        __chrononaut_hidden__ = ["secret"]
        __chrononaut_untracked__ = ["views"]
        id: Mapped[int] = mapped_column(primary_key=True)
        title: Mapped[str] = mapped_column(sa.String(80))
        body: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON)  # json: no = operator
        secret: Mapped[str | None]
        views: Mapped[int] = mapped_column(default=0)

    Base.metadata.create_all(engine)
    return Doc


@pytest.fixture
def stay(engine):
    """A chrononaut session that keeps what it loaded across commits (a long-lived form)."""
    factory = sessionmaker(engine, expire_on_commit=False)
    chrononaut.listen(factory)
    with factory() as session:
        yield session


def raw(engine, sql: str, **params: Any) -> int:
    """Run ``sql`` in a transaction of its own, outside any session; return its rowcount."""
    with engine.begin() as connection:
        return connection.execute(sa.text(sql), params).rowcount


def db_user(engine) -> str:
    with engine.connect() as connection:
        return connection.exec_driver_sql("SELECT current_user").scalar()


def history(engine, *columns: str) -> list[tuple[Any, ...]]:
    """``(id, version, *columns, change_info)`` of every doc_history row, in order."""
    names = ", ".join(["id", "version", *columns, "change_info"])
    with engine.connect() as connection:
        return [
            tuple(row)
            for row in connection.exec_driver_sql(
                f"SELECT {names} FROM doc_history ORDER BY id, version"
            )
        ]


def stored(engine, doc_id: int = 1) -> tuple[Any, ...] | None:
    with engine.connect() as connection:
        return connection.exec_driver_sql(
            f"SELECT title, version FROM doc WHERE id = {doc_id}"
        ).first()


def add_doc(session, Doc, doc_id: int = 1, **values: Any) -> Any:
    doc = Doc(id=doc_id, title=values.pop("title", "draft"), **values)
    session.add(doc)
    session.commit()
    return doc


def test_raw_update_bumps_version_and_writes_the_replaced_version_marked_database(
    engine, session, Doc
):
    add_doc(session, Doc, secret="s1")
    with engine.begin() as connection:
        connection.exec_driver_sql("SET application_name = 'nightly-sync'")
        connection.exec_driver_sql("UPDATE doc SET title = 'synced' WHERE id = 1")

    assert stored(engine) == ("synced", 1)
    assert history(engine, "title") == [
        (
            1,
            0,
            "draft",
            {**DATABASE_INFO, "db_user": db_user(engine), "application_name": "nightly-sync"},
        )
    ]


def test_raw_update_of_hidden_column_names_it_and_keeps_no_value(engine, session, Doc):
    add_doc(session, Doc, secret="s1")

    raw(engine, "UPDATE doc SET secret = 's2' WHERE id = 1")

    assert stored(engine) == ("draft", 1)
    (row,) = history(engine, "title")
    assert row[:3] == (1, 0, "draft")
    assert row[3]["hidden_cols_changed"] == ["secret"]
    with engine.connect() as connection:
        columns = sa.inspect(connection).get_columns("doc_history")
    assert "secret" not in {c["name"] for c in columns}


def test_raw_updates_that_change_nothing_tracked_write_nothing(engine, session, Doc):
    add_doc(session, Doc, body={"a": 1})

    raw(engine, "UPDATE doc SET views = views + 5 WHERE id = 1")  # untracked
    raw(engine, "UPDATE doc SET title = title, body = body, secret = secret")  # same values
    raw(engine, "UPDATE doc SET body = '{\"a\": 1}' WHERE id = 1")  # same json, re-sent

    assert stored(engine) == ("draft", 0)
    assert history(engine) == []


def test_raw_update_of_json_column_is_versioned(engine, session, Doc):
    add_doc(session, Doc, body={"a": 1})

    raw(engine, "UPDATE doc SET body = '{\"a\": 2}' WHERE id = 1")

    assert [(r[0], r[1], r[2]) for r in history(engine, "body")] == [(1, 0, {"a": 1})]


def test_one_raw_statement_over_many_rows_writes_one_row_per_record(engine, session, Doc):
    for doc_id in (1, 2, 3):
        add_doc(session, Doc, doc_id)

    assert raw(engine, "UPDATE doc SET title = 'all' WHERE id <= 2") == 2
    raw(engine, "UPDATE doc SET title = 'again' WHERE id = 2")

    assert [r[:3] for r in history(engine, "title")] == [
        (1, 0, "draft"),
        (2, 0, "draft"),
        (2, 1, "all"),
    ]


def test_stale_orm_write_after_raw_update_raises_conflict_naming_the_database_change(
    engine, stay, Doc
):
    doc = add_doc(stay, Doc)
    raw(engine, "UPDATE doc SET title = 'from psql' WHERE id = 1")

    doc.title = "from the form"
    with pytest.raises(ConflictError) as exc_info:
        stay.commit()
    stay.rollback()

    err = exc_info.value
    (row,) = history(engine, "changed")
    assert (err.expected_version, err.current_version) == (0, 1)
    assert err.changes == [
        Change(
            version=1,
            user_id=None,
            changed=row[2].astimezone(timezone.utc),
            columns=("title",),
            source="database",
            db_user=db_user(engine),
        )
    ]
    assert f"version 1 by database user {db_user(engine)} outside the ORM at " in str(err)
    assert err.to_dict()["changes"][0]["source"] == "database"
    assert stored(engine) == ("from psql", 1)


def test_stale_orm_delete_after_raw_update_raises_conflict(engine, stay, Doc):
    doc = add_doc(stay, Doc)
    raw(engine, "UPDATE doc SET title = 'from psql' WHERE id = 1")

    stay.delete(doc)
    with pytest.raises(ConflictError) as exc_info:
        stay.commit()
    stay.rollback()

    assert [c.source for c in exc_info.value.changes] == ["database"]
    assert stored(engine) == ("from psql", 1)


def test_stale_orm_write_after_raw_delete_raises_conflict_naming_the_deletion(engine, stay, Doc):
    doc = add_doc(stay, Doc)
    raw(engine, "DELETE FROM doc WHERE id = 1")

    doc.title = "too late"
    with pytest.raises(ConflictError) as exc_info:
        stay.commit()
    stay.rollback()

    err = exc_info.value
    assert (err.expected_version, err.current_version) == (0, None)
    assert [(c.version, c.deleted, c.source) for c in err.changes] == [(1, True, "database")]
    assert f"by database user {db_user(engine)} outside the ORM" in str(err)


def test_orm_update_and_delete_write_exactly_one_history_row_each(engine, session, Doc):
    doc = add_doc(session, Doc)

    doc.title = "edited"
    doc.secret = "s"
    session.commit()
    session.delete(doc)
    session.commit()

    assert history(engine, "title") == [
        (1, 0, "draft", {"user_id": None, "remote_addr": None, "hidden_cols_changed": ["secret"]}),
        (1, 1, "edited", {"user_id": None, "remote_addr": None, "deleted": True}),
    ]


def test_orm_untracked_only_write_is_not_versioned_by_the_trigger(engine, session, Doc):
    doc = add_doc(session, Doc)

    doc.views = 10
    session.commit()

    assert stored(engine) == ("draft", 0)
    assert history(engine) == []


def test_bulk_statements_write_exactly_one_history_row_each(engine, session, Doc):
    for doc_id in (1, 2):
        add_doc(session, Doc, doc_id)

    session.execute(sa.update(Doc).where(Doc.id == 1).values(title="bulk"))
    session.commit()
    session.execute(sa.delete(Doc).where(Doc.id.in_([1, 2])))
    session.commit()

    assert [(r[0], r[1], r[2], r[3].get("deleted", False)) for r in history(engine, "title")] == [
        (1, 0, "draft", False),
        (1, 1, "bulk", True),
        (2, 0, "draft", True),
    ]
    assert all("source" not in r[-1] for r in history(engine))


def test_raw_delete_writes_the_deletion_row_at_commit(engine, session, Doc):
    add_doc(session, Doc)
    raw(engine, "UPDATE doc SET title = 'last words' WHERE id = 1")

    with engine.begin() as connection:
        connection.exec_driver_sql("DELETE FROM doc WHERE id = 1")
        count = connection.exec_driver_sql("SELECT count(*) FROM doc_history").scalar()
        assert count == 1  # the deletion row waits for the commit

    rows = history(engine, "title")
    assert [r[:3] for r in rows] == [(1, 0, "draft"), (1, 1, "last words")]
    assert rows[1][3] == {
        **DATABASE_INFO,
        "db_user": db_user(engine),
        "application_name": None,
        "deleted": True,
    }
    (deletion,) = [h for h in session.scalars(sa.select(Doc.__history_mapper__)) if h.version == 1]
    assert deletion.is_deletion


def test_rolled_back_raw_writes_leave_nothing(engine, session, Doc):
    add_doc(session, Doc)
    add_doc(session, Doc, 2)

    with engine.connect() as connection:
        connection.exec_driver_sql("UPDATE doc SET title = 'oops' WHERE id = 1")
        connection.exec_driver_sql("DELETE FROM doc WHERE id = 2")
        connection.rollback()

    assert stored(engine, 1) == ("draft", 0)
    assert stored(engine, 2) == ("draft", 0)
    assert history(engine) == []


def test_raw_write_inside_the_orm_transaction_is_versioned_too(engine, stay, Doc):
    doc = add_doc(stay, Doc)

    stay.execute(sa.text("UPDATE doc SET title = 'by text()' WHERE id = 1"))
    doc.title = "stale in the same transaction"
    with pytest.raises(ConflictError):
        stay.flush()
    stay.rollback()

    assert history(engine) == []  # rolled back with the transaction
    assert stored(engine) == ("draft", 0)


def test_raw_update_that_sets_version_itself_is_left_to_its_writer(engine, session, Doc):
    add_doc(session, Doc)

    raw(engine, "UPDATE doc SET title = 'managed', version = version + 1 WHERE id = 1")

    assert stored(engine) == ("managed", 1)
    assert history(engine) == []


def test_versions_and_diff_read_across_database_written_rows(engine, session, Doc):
    doc = add_doc(session, Doc)
    doc.title = "orm edit"
    session.commit()
    raw(engine, "UPDATE doc SET title = 'raw edit', secret = 'x' WHERE id = 1")
    session.expire_all()
    doc.title = "orm again"
    session.commit()

    versions = doc.versions()
    assert [(v.version, v.title, v.change_info.get("source")) for v in versions] == [
        (0, "draft", None),
        (1, "orm edit", "database"),  # the state the raw UPDATE replaced
        (2, "raw edit", None),
    ]
    assert doc.version == 3
    assert doc.diff(versions[1]) == {"title": ("orm edit", "orm again")}
    assert doc.diff(versions[1], versions[2]) == {"title": ("orm edit", "raw edit")}
    middle = versions[2].changed
    assert doc.version_at(middle).title == "raw edit"
    assert isinstance(middle, datetime) and middle.tzinfo is not None


def test_suppressed_orm_writes_stay_unversioned(engine, session, Doc):
    doc = add_doc(session, Doc)
    gone = add_doc(session, Doc, 2)

    with suppress_versioning():
        doc.title = "backfilled"
        session.delete(gone)
        session.commit()

    assert stored(engine) == ("backfilled", 0)
    assert stored(engine, 2) is None
    assert history(engine) == []
    doc.title = "after"  # the session's version still matches: no conflict
    session.commit()
    assert [r[:2] for r in history(engine)] == [(1, 0)]


@pytest.mark.parametrize("form", ["update", "delete", "query_update", "query_delete"])
def test_suppressed_bulk_statements_stay_unversioned(engine, session, Doc, form):
    for doc_id in (1, 2):
        add_doc(session, Doc, doc_id)

    with suppress_versioning():
        if form == "update":
            session.execute(sa.update(Doc).values(title="bulk"))
        elif form == "delete":
            session.execute(sa.delete(Doc).where(Doc.id == 1))
        elif form == "query_update":
            session.query(Doc).update({"title": "bulk"})
        else:
            session.query(Doc).filter(Doc.id == 1).delete()
        session.commit()

    assert history(engine) == []
    with engine.connect() as connection:
        versions = connection.exec_driver_sql("SELECT version FROM doc").scalars().all()
    assert set(versions) == {0}


def test_suppression_ends_with_the_flush_in_the_same_transaction(engine, session, Doc):
    doc = add_doc(session, Doc)
    add_doc(session, Doc, 2)

    with suppress_versioning():
        doc.title = "quiet"
        session.flush()
    session.execute(sa.text("UPDATE doc SET title = 'loud' WHERE id = 2"))
    session.execute(sa.text("DELETE FROM doc WHERE id = 2"))
    session.commit()

    rows = history(engine, "title")
    assert [(r[0], r[1], r[2], r[3].get("deleted", False)) for r in rows] == [
        (2, 0, "draft", False),
        (2, 1, "loud", True),
    ]


def test_raw_sql_may_suppress_the_guard_for_its_transaction(engine, session, Doc):
    add_doc(session, Doc)
    add_doc(session, Doc, 2)

    with engine.begin() as connection:
        connection.exec_driver_sql("SET LOCAL chrononaut.suppress = 'on'")
        connection.exec_driver_sql("UPDATE doc SET title = 'migrated'")
        connection.exec_driver_sql("DELETE FROM doc WHERE id = 2")
    raw(engine, "UPDATE doc SET title = 'guarded again' WHERE id = 1")

    assert stored(engine) == ("guarded again", 1)
    assert [r[:3] for r in history(engine, "title")] == [(1, 0, "migrated")]
