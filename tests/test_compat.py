"""The private SQLAlchemy names in chrononaut/_compat.py, checked on the installed SQLAlchemy.

A SQLAlchemy release series that chrononaut was not checked against fails
here first, by name: review every access in ``_compat.py`` against it, then add
it to ``TESTED_SERIES``. The package itself reaches no private SQLAlchemy name
outside that module.
"""

from __future__ import annotations

import re
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from chrononaut import _compat

PACKAGE = Path(__file__).resolve().parents[1] / "chrononaut"


def test_the_installed_sqlalchemy_series_is_one_chrononaut_was_checked_against():
    series = _compat.sqlalchemy_series()
    assert series in _compat.TESTED_SERIES, (
        f"SQLAlchemy {sa.__version__} is of series {series!r}, which chrononaut was not "
        f"checked against ({', '.join(_compat.TESTED_SERIES)}): review every private access "
        "in chrononaut/_compat.py against it, then add it to TESTED_SERIES."
    )


def test_sqlalchemy_series_of_version_strings():
    assert _compat.sqlalchemy_series("2.1.9") == "2.1"
    assert _compat.sqlalchemy_series("2.0.0b4") == "2.0"
    assert _compat.sqlalchemy_series("2.2.0") not in _compat.TESTED_SERIES


def test_copy_column_copies_name_type_and_flags():
    table = sa.Table("t", sa.MetaData(), sa.Column("title", sa.String(40), nullable=False))
    copy = _compat.copy_column(table.c.title)
    assert copy is not table.c.title and copy.table is None
    assert (copy.name, copy.type.length, copy.nullable) == ("title", 40, False)


def test_update_value_keys_reads_values_and_ordered_values():
    table = sa.table("t", sa.column("a"), sa.column("b"))
    assert _compat.update_value_keys(sa.update(table).values(a=1, b=2)) == ["a", "b"]
    ordered = sa.update(table).ordered_values((table.c.b, 2), (table.c.a, 1))
    assert [getattr(k, "key", k) for k in _compat.update_value_keys(ordered)] == ["b", "a"]
    assert _compat.update_value_keys(sa.update(table)) == []


def test_attribute_helpers_and_is_orphan_on_a_mapped_class():
    class Base(DeclarativeBase):
        pass

    class Parent(Base):
        __tablename__ = "parent"
        id: Mapped[int] = mapped_column(primary_key=True)
        children: Mapped[list[Child]] = relationship(cascade="all, delete-orphan")

    class Child(Base):
        __tablename__ = "child"
        id: Mapped[int] = mapped_column(primary_key=True)
        parent_id: Mapped[int | None] = mapped_column(sa.ForeignKey("parent.id"))
        name: Mapped[str | None]

    child = Child(id=1, name="a")
    parent = Parent(id=1, children=[child])
    state = sa.inspect(child)
    assert _compat.attribute_is_equal(state, "name", "a", "a")
    assert not _compat.attribute_is_equal(state, "name", "a", "b")
    assert _compat.attribute_impl(state, "name").key == "name"
    mapper = sa.inspect(Child)
    assert not _compat.is_orphan(mapper, state)
    parent.children.remove(child)
    assert _compat.is_orphan(mapper, state)


PRIVATE = re.compile(r"\b(?:mapper|column|statement|state|table|prop|impl)\._[a-z]\w*")


def test_no_private_sqlalchemy_names_outside_compat():
    found = [
        f"{path.relative_to(PACKAGE)}:{number}: {line.strip()}"
        for path in sorted(PACKAGE.rglob("*.py"))
        if path.name != "_compat.py"
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if PRIVATE.search(line) or "._props" in line or ".manager[" in line
    ]
    assert found == []


def test_insert_statement_readers():
    class Base(DeclarativeBase):
        pass

    class Item(Base):
        __tablename__ = "item"
        id: Mapped[int] = mapped_column(primary_key=True)

    table = Item.__table__
    assert _compat.is_orm_statement(sa.insert(Item))
    assert not _compat.is_orm_statement(sa.insert(table))
    assert _compat.has_multi_values(sa.insert(table).values([{"id": 1}, {"id": 2}]))
    assert not _compat.has_multi_values(sa.insert(table).values(id=1))
    assert _compat.returning_count(sa.insert(table)) == 0
    assert _compat.returning_count(sa.insert(table).returning(table.c.id, table.c.id)) == 2
