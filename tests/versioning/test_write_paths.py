"""Which writes are versioned, by path: the table of README's "Bulk statements".

Each test is one row of that table: an UPDATE and a DELETE made that way,
and whether they wrote history and bumped ``version``.
"""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from chrononaut import Versioned


def make_note(Base, engine, guard: bool = False) -> Any:
    class Note(Base, Versioned):
        __tablename__ = "note"
        __chrononaut_database_guard__ = guard
        id: Mapped[int] = mapped_column(primary_key=True)
        body: Mapped[str]

    Base.metadata.create_all(engine)
    return Note


def seed(session, Note) -> None:
    session.add_all([Note(id=1, body="a"), Note(id=2, body="x")])
    session.commit()


def written(engine) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """(rows of note, rows of note_history) as (id, body, version, deleted)."""
    with engine.connect() as connection:
        notes = connection.execute(sa.text("SELECT id, body, version FROM note ORDER BY id"))
        history = connection.execute(
            sa.text(
                "SELECT id, body, version, coalesce((change_info->>'deleted')::bool, false) "
                "FROM note_history ORDER BY id, version"
            )
        )
        return [tuple(r) for r in notes], [tuple(r) for r in history]


def test_orm_flush_is_versioned(Base, engine, session):
    Note = make_note(Base, engine)
    seed(session, Note)
    session.get(Note, 1).body = "b"
    session.delete(session.get(Note, 2))
    session.commit()

    assert written(engine) == ([(1, "b", 1)], [(1, "a", 0, False), (2, "x", 0, True)])


@pytest.mark.parametrize("form", ["statement", "query"])
def test_orm_bulk_statements_are_versioned(Base, engine, session, form):
    Note = make_note(Base, engine)
    seed(session, Note)
    if form == "statement":
        session.execute(sa.update(Note).where(Note.id == 1).values(body="b"))
        session.execute(sa.delete(Note).where(Note.id == 2))
    else:
        session.query(Note).filter_by(id=1).update({"body": "b"})
        session.query(Note).filter_by(id=2).delete()
    session.commit()

    assert written(engine) == ([(1, "b", 1)], [(1, "a", 0, False), (2, "x", 0, True)])


def test_core_statements_on_the_table_through_the_session_are_versioned(Base, engine, session):
    Note = make_note(Base, engine)
    table = Note.__table__
    seed(session, Note)
    session.execute(sa.update(table).where(table.c.id == 1).values(body="b"))
    session.execute(sa.delete(table).where(table.c.id == 2))
    session.commit()

    assert written(engine) == ([(1, "b", 1)], [(1, "a", 0, False), (2, "x", 0, True)])


def test_core_statements_on_the_engine_are_not_versioned(Base, engine, session):
    Note = make_note(Base, engine)
    table = Note.__table__
    seed(session, Note)
    with engine.begin() as connection:
        connection.execute(sa.update(table).where(table.c.id == 1).values(body="b"))
        connection.execute(sa.delete(table).where(table.c.id == 2))

    assert written(engine) == ([(1, "b", 0)], [])


@pytest.mark.parametrize("where", ["session", "engine"])
def test_raw_sql_is_not_versioned(Base, engine, session, where):
    Note = make_note(Base, engine)
    seed(session, Note)
    statements = ["UPDATE note SET body = 'b' WHERE id = 1", "DELETE FROM note WHERE id = 2"]
    if where == "session":
        for sql in statements:
            session.execute(sa.text(sql))
        session.commit()
    else:
        with engine.begin() as connection:
            for sql in statements:
                connection.exec_driver_sql(sql)

    assert written(engine) == ([(1, "b", 0)], [])


@pytest.mark.parametrize("path", ["core on the engine", "raw sql", "orm flush", "core session"])
def test_the_database_guard_versions_every_path(Base, engine, session, path):
    Note = make_note(Base, engine, guard=True)
    table = Note.__table__
    seed(session, Note)
    if path == "core on the engine":
        with engine.begin() as connection:
            connection.execute(sa.update(table).where(table.c.id == 1).values(body="b"))
            connection.execute(sa.delete(table).where(table.c.id == 2))
    elif path == "raw sql":
        with engine.begin() as connection:
            connection.exec_driver_sql("UPDATE note SET body = 'b' WHERE id = 1")
            connection.exec_driver_sql("DELETE FROM note WHERE id = 2")
    elif path == "orm flush":
        session.get(Note, 1).body = "b"
        session.delete(session.get(Note, 2))
        session.commit()
    else:
        session.execute(sa.update(table).where(table.c.id == 1).values(body="b"))
        session.execute(sa.delete(table).where(table.c.id == 2))
        session.commit()

    assert written(engine) == ([(1, "b", 1)], [(1, "a", 0, False), (2, "x", 0, True)])
