"""What the database guard covers and what it does not, as the README states it."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from chrononaut import Versioned

from .test_database_guard import add_doc, history, raw, stored


@pytest.fixture
def Doc(Base, engine):
    class Shelf(Base):
        __tablename__ = "shelf"
        id: Mapped[int] = mapped_column(primary_key=True)

    class Doc(Base, Versioned):
        __tablename__ = "doc"
        __chrononaut_database_guard__ = True
        id: Mapped[int] = mapped_column(primary_key=True)
        title: Mapped[str] = mapped_column(sa.String(80))
        shelf_id: Mapped[int | None] = mapped_column(
            sa.ForeignKey("shelf.id", ondelete="CASCADE", onupdate="CASCADE")
        )

    Base.metadata.create_all(engine)
    raw(engine, "INSERT INTO shelf (id) VALUES (1)")
    return Doc


def test_upsert_and_merge_are_versioned(engine, session, Doc):
    add_doc(session, Doc)

    raw(
        engine,
        "INSERT INTO doc (id, title) VALUES (1, 'upserted') "
        "ON CONFLICT (id) DO UPDATE SET title = EXCLUDED.title",
    )
    raw(
        engine,
        "MERGE INTO doc USING (VALUES (1, 'merged')) AS v (id, title) ON doc.id = v.id "
        "WHEN MATCHED THEN UPDATE SET title = v.title",
    )

    assert stored(engine) == ("merged", 2)
    assert [r[:3] for r in history(engine, "title")] == [(1, 0, "draft"), (1, 1, "upserted")]


def test_foreign_key_cascades_are_versioned(engine, session, Doc):
    add_doc(session, Doc, 1, shelf_id=1)

    raw(engine, "UPDATE shelf SET id = 2")  # ON UPDATE CASCADE
    raw(engine, "DELETE FROM shelf")  # ON DELETE CASCADE

    rows = history(engine, "shelf_id")
    assert [(r[1], r[2], r[3].get("deleted", False)) for r in rows] == [
        (0, 1, False),
        (1, 2, True),
    ]


def test_truncate_is_not_covered(engine, session, Doc):
    add_doc(session, Doc)

    raw(engine, "TRUNCATE doc")

    assert history(engine) == []


def test_writes_as_a_replica_are_not_covered(engine, session, Doc):
    add_doc(session, Doc)

    with engine.begin() as connection:
        connection.exec_driver_sql("SET LOCAL session_replication_role = replica")
        connection.exec_driver_sql("UPDATE doc SET title = 'replicated'")

    assert stored(engine) == ("replicated", 0)
    assert history(engine) == []


def test_orm_delete_after_set_constraints_all_immediate_fails_instead_of_writing_twice(
    engine, session, Doc
):
    doc = add_doc(session, Doc)

    session.execute(sa.text("SET CONSTRAINTS ALL IMMEDIATE"))
    session.delete(doc)
    with pytest.raises(sa.exc.IntegrityError):
        session.flush()
    session.rollback()

    assert stored(engine) == ("draft", 0)
    assert history(engine) == []


def test_raw_insert_reusing_a_deleted_key_collides_on_its_first_raw_update(engine, session, Doc):
    add_doc(session, Doc)
    raw(engine, "DELETE FROM doc WHERE id = 1")
    raw(engine, "INSERT INTO doc (id, title) VALUES (1, 'again')")  # version 0 again

    with pytest.raises(sa.exc.IntegrityError):
        raw(engine, "UPDATE doc SET title = 'edited' WHERE id = 1")

    assert stored(engine) == ("again", 0)


def test_untracked_only_orm_write_with_a_tracked_onupdate_is_recorded_as_database(
    Base, engine, session
):
    class Page(Base, Versioned):
        __tablename__ = "page"
        __chrononaut_database_guard__ = True
        __chrononaut_untracked__ = ["views"]
        id: Mapped[int] = mapped_column(primary_key=True)
        views: Mapped[int] = mapped_column(default=0)
        touched: Mapped[int] = mapped_column(default=0, onupdate=sa.text("page.touched + 1"))

    Base.metadata.create_all(engine)
    page = Page(id=1)
    session.add(page)
    session.commit()

    page.views = 1
    session.commit()

    with engine.connect() as connection:
        rows = connection.exec_driver_sql(
            "SELECT version, touched, change_info->>'source' FROM page_history"
        ).all()
    assert [tuple(r) for r in rows] == [(0, 0, "database")]
    assert page.version == 1  # reloaded after the commit
