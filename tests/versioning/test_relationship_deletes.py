"""Deletes the ORM makes through relationships are versioned like any other write.

A child removed under ``cascade="all, delete-orphan"`` is deleted by the flush:
its last row is a deletion row. Children a deleted parent detaches (their
foreign key set to NULL, no delete cascade) are changed: a history row of their
prior state and a version bump, so the ORM's UPDATE is conditioned on it.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from chrononaut import Versioned


def _rows(session, model, *columns):
    table = model.__history_mapper__.local_table
    stmt = sa.select(table.c.id, table.c.version, *(table.c[c] for c in columns))
    return [tuple(r) for r in session.execute(stmt.order_by(table.c.id, table.c.version))]


def _current(session, model, *columns):
    table = model.__table__
    stmt = sa.select(table.c.id, table.c.version, *(table.c[c] for c in columns))
    return [tuple(r) for r in session.execute(stmt.order_by(table.c.id))]


@pytest.fixture
def orphan_models(Base, engine):
    class Doc(Base, Versioned):
        __tablename__ = "doc"
        id: Mapped[int] = mapped_column(primary_key=True)
        lines: Mapped[list[Line]] = relationship(cascade="all, delete-orphan")

    class Line(Base, Versioned):
        __tablename__ = "line"
        id: Mapped[int] = mapped_column(primary_key=True)
        doc_id: Mapped[int | None] = mapped_column(sa.ForeignKey("doc.id"))
        text: Mapped[str]

    class Note(Base, Versioned):
        __tablename__ = "note"
        id: Mapped[int] = mapped_column(primary_key=True)
        doc_id: Mapped[int | None] = mapped_column(sa.ForeignKey("doc.id"))
        text: Mapped[str]
        doc: Mapped[Doc | None] = relationship(
            backref=sa.orm.backref("notes", cascade="all, delete-orphan")
        )

    Base.metadata.create_all(engine)
    return Doc, Line, Note


@pytest.mark.parametrize("backref", [False, True])
def test_removing_a_delete_orphan_child_writes_a_deletion_row(session, orphan_models, backref):
    Doc, Line, Note = orphan_models
    child_cls = Note if backref else Line
    collection = "notes" if backref else "lines"
    doc = Doc(id=1)
    getattr(doc, collection).extend([child_cls(id=1, text="a"), child_cls(id=2, text="b")])
    session.add(doc)
    session.commit()

    child = session.get(child_cls, 1)
    getattr(doc, collection).remove(child)
    session.commit()

    assert _rows(session, child_cls, "doc_id", "text") == [(1, 0, 1, "a")]
    [row] = session.scalars(sa.select(child_cls.__history_mapper__.class_)).all()
    assert row.is_deletion is True
    assert row.change_info["deleted"] is True
    assert _current(session, child_cls, "text") == [(2, 0, "b")]


def test_orphan_moved_to_another_parent_is_a_change_not_a_deletion(session, orphan_models):
    Doc, Line, _ = orphan_models
    first, second = Doc(id=1, lines=[Line(id=1, text="a")]), Doc(id=2)
    session.add_all([first, second])
    session.commit()

    line = first.lines[0]
    assert second.lines == []  # loaded now: a lazy load after remove() would autoflush it
    first.lines.remove(line)
    second.lines.append(line)
    session.commit()

    history = session.scalars(sa.select(Line.__history_mapper__.class_)).all()
    assert not [row for row in history if row.is_deletion]
    assert [(line.id, line.doc_id) for line in session.scalars(sa.select(Line))] == [(1, 2)]


@pytest.fixture
def detach_models(Base, engine):
    class Box(Base, Versioned):
        __tablename__ = "box"
        id: Mapped[int] = mapped_column(primary_key=True)
        items: Mapped[list[Item]] = relationship()

    class Item(Base, Versioned):
        __tablename__ = "item"
        id: Mapped[int] = mapped_column(primary_key=True)
        box_id: Mapped[int | None] = mapped_column(sa.ForeignKey("box.id"))
        name: Mapped[str]

    Base.metadata.create_all(engine)
    return Box, Item


@pytest.mark.parametrize("loaded", [False, True])
def test_deleting_a_parent_versions_the_children_it_detaches(session, detach_models, loaded):
    Box, Item = detach_models
    session.add(Box(id=1, items=[Item(id=1, name="a"), Item(id=2, name="b")]))
    session.add(Item(id=3, name="c"))
    session.commit()

    box = session.get(Box, 1)
    if loaded:
        assert len(box.items) == 2
    session.delete(box)
    session.commit()

    assert _rows(session, Item, "box_id", "name") == [(1, 0, 1, "a"), (2, 0, 1, "b")]
    assert _current(session, Item, "box_id") == [(1, 1, None), (2, 1, None), (3, 0, None)]
    assert [v.is_deletion for v in session.get(Item, 1).versions()] == [False]
    assert _rows(session, Box) == [(1, 0)]


def test_detached_child_also_changed_writes_one_row(session, detach_models):
    Box, Item = detach_models
    session.add(Box(id=1, items=[Item(id=1, name="a")]))
    session.commit()

    box = session.get(Box, 1)
    box.items[0].name = "renamed"
    session.delete(box)
    session.commit()

    assert _rows(session, Item, "box_id", "name") == [(1, 0, 1, "a")]
    assert _current(session, Item, "box_id", "name") == [(1, 1, None, "renamed")]


def test_detaching_a_stale_child_raises_conflict(session_factory, detach_models):
    from chrononaut import ConflictError

    Box, Item = detach_models
    with session_factory() as setup:
        setup.add(Box(id=1, items=[Item(id=1, name="a")]))
        setup.commit()
    with session_factory() as mine, session_factory() as theirs:
        box = mine.get(Box, 1)
        assert len(box.items) == 1
        theirs.get(Item, 1).name = "theirs"
        theirs.commit()
        mine.delete(box)
        with pytest.raises(ConflictError):
            mine.commit()
        mine.rollback()
    with session_factory() as check:
        assert _current(check, Item, "box_id", "name") == [(1, 1, 1, "theirs")]


def test_moving_a_child_between_parents_without_backref_versions_the_child(session, detach_models):
    Box, Item = detach_models
    session.add_all([Box(id=1, items=[Item(id=1, name="a")]), Box(id=2)])
    session.commit()

    one, two = session.get(Box, 1), session.get(Box, 2)
    item, _ = one.items[0], two.items  # loaded: no autoflush between the two steps
    one.items.remove(item)
    two.items.append(item)
    session.commit()

    assert _rows(session, Item, "box_id") == [(1, 0, 1)]
    assert _current(session, Item, "box_id") == [(1, 1, 2)]


def test_removing_a_child_from_a_collection_without_backref_versions_the_child(
    session, detach_models
):
    Box, Item = detach_models
    session.add(Box(id=1, items=[Item(id=1, name="a"), Item(id=2, name="b")]))
    session.commit()

    box = session.get(Box, 1)
    box.items.remove(session.get(Item, 2))
    session.commit()

    assert _rows(session, Item, "box_id") == [(2, 0, 1)]
    assert _current(session, Item, "box_id") == [(1, 0, 1), (2, 1, None)]


def test_moving_a_stale_child_raises_conflict(session_factory, detach_models):
    from chrononaut import ConflictError

    Box, Item = detach_models
    with session_factory() as setup:
        setup.add_all([Box(id=1, items=[Item(id=1, name="a")]), Box(id=2)])
        setup.commit()
    with session_factory() as session, session_factory() as other:
        one, two = session.get(Box, 1), session.get(Box, 2)
        item, _ = one.items[0], two.items
        other.get(Item, 1).name = "changed meanwhile"
        other.commit()
        one.items.remove(item)
        two.items.append(item)
        with pytest.raises(ConflictError):
            session.commit()
