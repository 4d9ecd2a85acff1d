"""Bulk statements on a base class with joined-table subclasses are versioned.

Each matched row's prior state goes to the base history table and, for a
subclass row, to its subclass's own history tables, in the same transaction
(one INSERT ... SELECT per table), so ``versions()`` of a subclass record has
no gap.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from chrononaut import Versioned


@pytest.fixture
def models(Base, engine, session):
    class Employee(Base, Versioned):
        __tablename__ = "employee"
        id: Mapped[int] = mapped_column(primary_key=True)
        name: Mapped[str]
        kind: Mapped[str]
        __mapper_args__ = {"polymorphic_on": "kind", "polymorphic_identity": "employee"}

    class Manager(Employee):
        __tablename__ = "manager"
        id: Mapped[int] = mapped_column(
            sa.ForeignKey("employee.id", ondelete="CASCADE"), primary_key=True
        )
        budget: Mapped[int]
        __mapper_args__ = {"polymorphic_identity": "manager"}

    class Director(Manager):
        __tablename__ = "director"
        id: Mapped[int] = mapped_column(
            sa.ForeignKey("manager.id", ondelete="CASCADE"), primary_key=True
        )
        region: Mapped[str]
        __mapper_args__ = {"polymorphic_identity": "director"}

    Base.metadata.create_all(engine)
    session.add_all(
        [
            Employee(id=1, name="e"),
            Manager(id=2, name="m", budget=10),
            Director(id=3, name="d", budget=20, region="eu"),
        ]
    )
    session.commit()
    return Employee, Manager, Director


@pytest.mark.parametrize("form", ["update", "query_update"])
def test_bulk_update_of_the_base_writes_every_history_table(session, models, form):
    Employee = models[0]
    if form == "update":
        session.execute(sa.update(Employee).where(Employee.id > 0).values(name="renamed"))
    else:
        session.query(Employee).filter(Employee.id > 0).update({"name": "renamed"})
    session.commit()

    employee, manager, director = (
        session.get(c, i) for c, i in zip(models, (1, 2, 3), strict=True)
    )
    assert [e.version for e in (employee, manager, director)] == [1, 1, 1]
    assert [(v.version, v.name) for v in employee.versions()] == [(0, "e")]
    assert [(v.version, v.name, v.budget) for v in manager.versions()] == [(0, "m", 10)]
    assert [(type(v).__name__, v.name, v.budget, v.region) for v in director.versions()] == [
        ("DirectorHistory", "d", 20, "eu")
    ]
    later = director.versions()[0]
    assert later.change_info.get("deleted") is None

    director.region = "us"
    session.commit()
    assert [(v.version, v.region) for v in director.versions()] == [(0, "eu"), (1, "eu")]


def test_bulk_delete_of_the_base_writes_deletion_rows_in_every_history_table(session, models):
    Employee, Manager, Director = models
    session.execute(sa.delete(Employee).where(Employee.id >= 2))
    session.commit()

    director_history = Director.__history_mapper__.class_
    [row] = session.scalars(sa.select(director_history)).all()
    assert (row.id, row.version, row.name, row.budget, row.region) == (3, 0, "d", 20, "eu")
    assert row.is_deletion is True
    manager_rows = session.scalars(
        sa.select(Manager.__history_mapper__.class_).order_by(sa.text("id"))
    ).all()
    assert [(r.id, r.budget, r.is_deletion) for r in manager_rows] == [
        (2, 10, True),
        (3, 20, True),
    ]
    assert session.scalars(sa.select(Employee.id)).all() == [1]


def test_bulk_update_of_a_base_without_discriminator_keeps_a_subclass_hidden_column_out(
    Base, engine, session
):
    class Account(Base, Versioned):
        __tablename__ = "account"
        id: Mapped[int] = mapped_column(primary_key=True)
        name: Mapped[str]
        secret: Mapped[str | None]

    class Vault(Account):
        __tablename__ = "vault"
        __chrononaut_hidden__ = ["secret"]
        id: Mapped[int] = mapped_column(sa.ForeignKey("account.id"), primary_key=True)
        level: Mapped[int]

    Base.metadata.create_all(engine)
    session.add_all(
        [Account(id=1, name="a", secret="s1"), Vault(id=2, name="v", secret="s2", level=1)]
    )
    session.commit()
    session.execute(sa.update(Account).values(name="renamed", secret="new"))
    session.commit()

    history = Account.__chrononaut__.history_table
    rows = session.execute(sa.select(history.c.id, history.c.secret, history.c.change_info))
    by_id = {row.id: row for row in rows}
    assert by_id[1].secret == "s1"
    assert by_id[2].secret is None  # Vault hides it: never stored
    assert by_id[2].change_info["hidden_cols_changed"] == ["secret"]
    assert "hidden_cols_changed" not in by_id[1].change_info
