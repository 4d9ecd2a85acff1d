"""Bulk statements chrononaut refuses, and bulk statements under inheritance.

Refused statements raise :class:`ChrononautException` before anything is written,
so no record changes without its history.
"""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from chrononaut import ChrononautException, Versioned


def history(session, model, *keys: str) -> list[tuple[Any, ...]]:
    """``(id, version, *keys)`` of every history row of ``model``, in order."""
    hist = model.__history_mapper__.class_
    columns = [hist.id, hist.version, *(getattr(hist, k) for k in keys)]
    return [tuple(r) for r in session.execute(sa.select(*columns).order_by(hist.id, hist.version))]


def current(session, model, *keys: str) -> list[tuple[Any, ...]]:
    """``(id, version, *keys)`` of every row of ``model`` as stored, in order."""
    table = model.__table__
    columns = [table.c.id, table.c.version, *(table.c[k] for k in keys)]
    return [tuple(r) for r in session.execute(sa.select(*columns).order_by(table.c.id))]


def test_bulk_statements_with_returning_return_the_affected_rows(Base, engine, session):
    class Item(Base, Versioned):
        __tablename__ = "item"
        id: Mapped[int] = mapped_column(primary_key=True)
        name: Mapped[str]

    Base.metadata.create_all(engine)
    session.add_all([Item(id=1, name="a"), Item(id=2, name="b"), Item(id=3, name="c")])
    session.commit()

    updated = session.execute(
        sa.update(Item).where(Item.id < 3).values(name="z").returning(Item.id, Item.version)
    ).all()
    deleted = session.scalars(sa.delete(Item).where(Item.id == 3).returning(Item.name)).all()
    session.commit()

    assert sorted(tuple(r) for r in updated) == [(1, 1), (2, 1)]
    assert deleted == ["c"]
    assert history(session, Item, "name") == [(1, 0, "a"), (2, 0, "b"), (3, 0, "c")]


@pytest.mark.parametrize("form", ["values", "column_key", "query", "query_expression"])
def test_bulk_update_setting_version_explicitly_raises(db, form):
    class Item(db.Model, Versioned):
        __tablename__ = "item"
        id = db.Column(db.Integer, primary_key=True)
        name = db.Column(db.String(50), nullable=False)

    db.create_all()
    db.session.add(Item(id=1, name="a"))
    db.session.commit()

    with pytest.raises(ChrononautException) as exc_info:
        if form == "values":
            db.session.execute(sa.update(Item).values(name="b", version=5))
        elif form == "column_key":
            db.session.execute(sa.update(Item).values({Item.__table__.c.version: 5}))
        elif form == "query":
            Item.query.filter_by(id=1).update({"version": 5, "name": "b"})
        else:
            Item.query.filter_by(id=1).update({Item.version: Item.version + 10})
    db.session.rollback()

    assert str(exc_info.value) == ("Bulk UPDATE of Item sets 'version', which chrononaut manages.")
    assert current(db.session, Item, "name") == [(1, 0, "a")]
    assert history(db.session, Item) == []


def test_bulk_update_by_primary_key_raises(Base, engine, session):
    class Item(Base, Versioned):
        __tablename__ = "item"
        id: Mapped[int] = mapped_column(primary_key=True)
        name: Mapped[str]

    Base.metadata.create_all(engine)
    session.add_all([Item(id=1, name="a"), Item(id=2, name="b")])
    session.commit()

    with pytest.raises(ChrononautException) as exc_info:
        session.execute(sa.update(Item), [{"id": 1, "name": "a2"}, {"id": 2, "name": "b2"}])
    session.commit()

    message = str(exc_info.value)
    assert message.startswith("ORM bulk UPDATE by primary key of Item")
    assert "would skip history" in message
    assert current(session, Item, "name") == [(1, 0, "a"), (2, 0, "b")]
    assert history(session, Item) == []


def test_bulk_update_mappings_does_not_skip_history(Base, engine, session):
    class Item(Base, Versioned):
        __tablename__ = "item"
        id: Mapped[int] = mapped_column(primary_key=True)
        name: Mapped[str]

    Base.metadata.create_all(engine)
    session.add(Item(id=1, name="a"))
    session.commit()

    # Either refused like update(Item) with parameter dicts, or versioned: never a gap.
    try:
        session.bulk_update_mappings(Item, [{"id": 1, "name": "a2", "version": 0}])
        session.commit()
    except ChrononautException:
        session.rollback()
        assert current(session, Item, "name") == [(1, 0, "a")]
    else:
        assert current(session, Item, "name") == [(1, 1, "a2")]
        assert history(session, Item, "name") == [(1, 0, "a")]


@pytest.mark.parametrize("form", ["update", "delete", "query_update", "query_delete"])
def test_bulk_statement_on_joined_inheritance_subclass_raises(Base, engine, session, form):
    class Employee(Base, Versioned):
        __tablename__ = "employee"
        id: Mapped[int] = mapped_column(primary_key=True)
        name: Mapped[str]
        kind: Mapped[str]
        __mapper_args__ = {"polymorphic_on": "kind", "polymorphic_identity": "employee"}

    class Manager(Employee):
        __tablename__ = "manager"
        id: Mapped[int] = mapped_column(sa.ForeignKey("employee.id"), primary_key=True)
        budget: Mapped[int]
        __mapper_args__ = {"polymorphic_identity": "manager"}

    Base.metadata.create_all(engine)
    session.add(Manager(id=1, name="a", budget=10))
    session.commit()

    with pytest.raises(ChrononautException) as exc_info:
        if form == "update":
            session.execute(sa.update(Manager).where(Manager.id == 1).values(budget=20))
        elif form == "delete":
            session.execute(sa.delete(Manager).where(Manager.id == 1))
        elif form == "query_update":
            session.query(Manager).filter(Manager.id == 1).update({"budget": 20})
        else:
            session.query(Manager).filter(Manager.id == 1).delete()
    session.rollback()

    assert str(exc_info.value).startswith(
        "Bulk statements on Manager would skip the history of its joined-table subclasses"
    )
    manager = session.get(Manager, 1)
    assert (manager.version, manager.budget) == (0, 10)
    assert manager.versions() == []


def test_bulk_update_of_joined_inheritance_parent_leaves_no_gap_in_subclass_history(
    Base, engine, session
):
    class Employee(Base, Versioned):
        __tablename__ = "employee"
        id: Mapped[int] = mapped_column(primary_key=True)
        name: Mapped[str]
        kind: Mapped[str]
        __mapper_args__ = {"polymorphic_on": "kind", "polymorphic_identity": "employee"}

    class Manager(Employee):
        __tablename__ = "manager"
        id: Mapped[int] = mapped_column(sa.ForeignKey("employee.id"), primary_key=True)
        budget: Mapped[int]
        __mapper_args__ = {"polymorphic_identity": "manager"}

    Base.metadata.create_all(engine)
    session.add_all([Employee(id=1, name="e"), Manager(id=2, name="m", budget=10)])
    session.commit()

    # Refusing is fine; what must not happen is a manager whose version moved
    # on while its history misses the version it replaced.
    try:
        session.execute(sa.update(Employee).values(name="renamed"))
        session.commit()
    except ChrononautException:
        session.rollback()
        assert current(session, Employee, "name") == [(1, 0, "e"), (2, 0, "m")]
    else:
        manager = session.get(Manager, 2)
        assert manager.version == 1
        assert [(v.version, v.name, v.budget) for v in manager.versions()] == [(0, "m", 10)]


def test_single_table_subclass_bulk_update_touches_only_subclass_rows(Base, engine, session):
    class Employee(Base, Versioned):
        __tablename__ = "employee"
        id: Mapped[int] = mapped_column(primary_key=True)
        name: Mapped[str]
        kind: Mapped[str]
        __mapper_args__ = {"polymorphic_on": "kind", "polymorphic_identity": "employee"}

    class Engineer(Employee):
        language: Mapped[str | None]
        __mapper_args__ = {"polymorphic_identity": "engineer"}

    Base.metadata.create_all(engine)
    session.add_all([Employee(id=1, name="a"), Engineer(id=2, name="b", language="py")])
    session.add(Engineer(id=3, name="c", language="c"))
    session.commit()

    session.execute(sa.update(Engineer).values(name="renamed"))
    session.query(Engineer).filter(Engineer.language == "c").update({"language": "rust"})
    session.commit()

    assert history(session, Employee, "name") == [(2, 0, "b"), (3, 0, "c"), (3, 1, "renamed")]
    assert current(session, Employee, "name") == [
        (1, 0, "a"),
        (2, 1, "renamed"),
        (3, 2, "renamed"),
    ]
    old = session.get(Engineer, 3).versions()
    assert [(type(v).__name__, v.language) for v in old] == [
        ("EngineerHistory", "c"),
        ("EngineerHistory", "c"),
    ]


def test_single_table_subclass_bulk_delete_touches_only_subclass_rows(Base, engine, session):
    class Employee(Base, Versioned):
        __tablename__ = "employee"
        id: Mapped[int] = mapped_column(primary_key=True)
        name: Mapped[str]
        kind: Mapped[str]
        __mapper_args__ = {"polymorphic_on": "kind", "polymorphic_identity": "employee"}

    class Engineer(Employee):
        language: Mapped[str | None]
        __mapper_args__ = {"polymorphic_identity": "engineer"}

    Base.metadata.create_all(engine)
    session.add_all([Employee(id=1, name="a"), Engineer(id=2, name="b", language="py")])
    session.commit()

    session.execute(sa.delete(Engineer))
    session.commit()

    hist = Employee.__history_mapper__.class_
    [row] = session.scalars(sa.select(hist)).all()
    assert (type(row).__name__, row.id, row.language, row.is_deletion) == (
        "EngineerHistory",
        2,
        "py",
        True,
    )
    assert current(session, Employee) == [(1, 0)]
