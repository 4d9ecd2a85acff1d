"""Single-table inheritance, and hidden/untracked options declared on subclasses.

Joined-table inheritance itself is in test_inheritance.py.
"""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
import sqlalchemy as sa
from freezegun import freeze_time
from sqlalchemy.orm import Mapped, mapped_column

from chrononaut import HiddenAttributeError, UntrackedAttributeError, Versioned


def history_columns(engine, table_name):
    return {c["name"] for c in sa.inspect(engine).get_columns(table_name)}


def test_single_table_subclass_shares_parent_history_table(db):
    class Employee(db.Model, Versioned):
        id = db.Column(db.Integer, primary_key=True)
        name = db.Column(db.String(80), nullable=False)
        type = db.Column(db.String(20), nullable=False)
        __mapper_args__ = {"polymorphic_on": type, "polymorphic_identity": "employee"}

    class Manager(Employee):  # no primary key: Flask-SQLAlchemy maps it single-table
        manager_data = db.Column(db.String(80))
        __mapper_args__ = {"polymorphic_identity": "manager"}

    db.create_all()

    assert set(sa.inspect(db.engine).get_table_names()) == {
        "employee",
        "employee_history",
        "chrononaut_leases",
        "chrononaut_creations",
    }
    assert "manager_data" in history_columns(db.engine, "employee_history")
    assert Manager.__history_mapper__.local_table is Employee.__history_mapper__.local_table
    ManagerHistory = Manager.__history_mapper__.class_
    assert ManagerHistory.__name__ == "ManagerHistory"
    assert issubclass(ManagerHistory, Employee.__history_mapper__.class_)


def test_single_table_history_query_is_polymorphic(db):
    class Employee(db.Model, Versioned):
        id = db.Column(db.Integer, primary_key=True)
        name = db.Column(db.String(80), nullable=False)
        type = db.Column(db.String(20), nullable=False)
        __mapper_args__ = {"polymorphic_on": type, "polymorphic_identity": "employee"}

    class Manager(Employee):
        manager_data = db.Column(db.String(80))
        __mapper_args__ = {"polymorphic_identity": "manager"}

    db.create_all()
    ann, mia = Employee(name="Ann"), Manager(name="Mia", manager_data="team A")
    db.session.add_all([ann, mia])
    db.session.commit()
    ann.name, mia.manager_data = "Ann Smith", "team B"
    db.session.commit()
    db.session.expunge_all()

    EmployeeHistory = Employee.__history_mapper__.class_
    ManagerHistory = Manager.__history_mapper__.class_
    found = db.session.scalars(sa.select(EmployeeHistory).order_by(EmployeeHistory.id)).all()

    assert [type(h) for h in found] == [EmployeeHistory, ManagerHistory]
    assert (found[0].name, found[0].type) == ("Ann", "employee")
    assert (found[1].name, found[1].type, found[1].manager_data) == ("Mia", "manager", "team A")
    only_managers = db.session.scalars(sa.select(ManagerHistory)).all()
    assert [h.name for h in only_managers] == ["Mia"]
    stored = db.session.execute(
        sa.text("SELECT name, manager_data FROM employee_history ORDER BY id")
    ).all()
    assert [tuple(r) for r in stored] == [("Ann", None), ("Mia", "team A")]


def test_single_table_update_of_subclass_column_writes_one_version(Base, engine, session):
    class Employee(Base, Versioned):
        __tablename__ = "employee"
        id: Mapped[int] = mapped_column(primary_key=True)
        name: Mapped[str]
        type: Mapped[str] = mapped_column(sa.String(20))
        __mapper_args__ = {"polymorphic_on": "type", "polymorphic_identity": "employee"}

    class Manager(Employee):
        manager_data: Mapped[str | None]
        __mapper_args__ = {"polymorphic_identity": "manager"}

    Base.metadata.create_all(engine)
    mia = Manager(name="Mia", manager_data="team A")
    session.add(mia)
    session.commit()

    mia.manager_data = "team B"
    session.commit()
    mia.name, mia.manager_data = "Mia Wong", "team C"
    session.commit()

    versions = mia.versions()
    assert [type(v).__name__ for v in versions] == ["ManagerHistory", "ManagerHistory"]
    assert [(v.version, v.name, v.manager_data) for v in versions] == [
        (0, "Mia", "team A"),
        (1, "Mia", "team B"),
    ]
    assert mia.version == 2


def test_single_table_siblings_keep_their_own_columns(Base, engine, session):
    class Employee(Base, Versioned):
        __tablename__ = "employee"
        id: Mapped[int] = mapped_column(primary_key=True)
        name: Mapped[str]
        type: Mapped[str] = mapped_column(sa.String(20))
        __mapper_args__ = {"polymorphic_on": "type", "polymorphic_identity": "employee"}

    class Manager(Employee):
        manager_data: Mapped[str | None]
        __mapper_args__ = {"polymorphic_identity": "manager"}

    class Engineer(Employee):
        language: Mapped[str | None]
        __mapper_args__ = {"polymorphic_identity": "engineer"}

    Base.metadata.create_all(engine)
    assert {"manager_data", "language"} <= history_columns(engine, "employee_history")
    mia, grace = Manager(name="Mia", manager_data="team A"), Engineer(name="Grace", language="C")
    session.add_all([mia, grace])
    session.commit()
    mia.manager_data, grace.language = "team B", "Rust"
    session.commit()
    session.expunge_all()

    EmployeeHistory = Employee.__history_mapper__.class_
    found = session.scalars(sa.select(EmployeeHistory).order_by(EmployeeHistory.id)).all()
    assert [type(h).__name__ for h in found] == ["ManagerHistory", "EngineerHistory"]
    assert (found[0].manager_data, found[1].language) == ("team A", "C")
    stored = session.execute(
        sa.text("SELECT manager_data, language FROM employee_history ORDER BY id")
    ).all()
    assert [tuple(r) for r in stored] == [("team A", None), (None, "C")]


@freeze_time("2024-03-01 10:00:00")
def test_single_table_subclass_versions_diff_version_at_and_deletion(Base, engine, session):
    class Employee(Base, Versioned):
        __tablename__ = "employee"
        id: Mapped[int] = mapped_column(primary_key=True)
        name: Mapped[str]
        type: Mapped[str] = mapped_column(sa.String(20))
        __mapper_args__ = {"polymorphic_on": "type", "polymorphic_identity": "employee"}

    class Manager(Employee):
        manager_data: Mapped[str | None]
        __mapper_args__ = {"polymorphic_identity": "manager"}

    Base.metadata.create_all(engine)
    mia = Manager(name="Mia", manager_data="team A")
    session.add(mia)
    session.commit()
    with freeze_time("2024-03-01 11:00:00"):
        mia.manager_data = "team B"
        session.commit()

    [first] = mia.versions()
    assert mia.diff(first) == {"manager_data": ("team A", "team B")}
    assert mia.version_at(datetime(2024, 3, 1, 10, 30, tzinfo=timezone.utc)) is first
    assert mia.version_at(datetime(2024, 3, 1, 11, 30, tzinfo=timezone.utc)) is mia

    mia_id = mia.id
    with freeze_time("2024-03-01 12:00:00"):
        session.delete(mia)
        session.commit()
    session.expunge_all()
    EmployeeHistory = Employee.__history_mapper__.class_
    found = session.scalars(
        sa.select(EmployeeHistory)
        .where(EmployeeHistory.id == mia_id)
        .order_by(EmployeeHistory.version)
    ).all()
    assert [type(h).__name__ for h in found] == ["ManagerHistory", "ManagerHistory"]
    assert [(h.version, h.manager_data, h.is_deletion) for h in found] == [
        (0, "team A", False),
        (1, "team B", True),
    ]


def test_single_table_hidden_and_untracked_declared_on_subclass(Base, engine, session):
    class Employee(Base, Versioned):
        __tablename__ = "employee"
        id: Mapped[int] = mapped_column(primary_key=True)
        name: Mapped[str]
        type: Mapped[str] = mapped_column(sa.String(20))
        __mapper_args__ = {"polymorphic_on": "type", "polymorphic_identity": "employee"}

    class Manager(Employee):
        __chrononaut_hidden__ = ["bonus"]
        __chrononaut_untracked__ = ["parking_spot"]
        bonus: Mapped[int | None]
        parking_spot: Mapped[str | None]
        __mapper_args__ = {"polymorphic_identity": "manager"}

    Base.metadata.create_all(engine)
    columns = history_columns(engine, "employee_history")
    assert "bonus" not in columns
    assert "parking_spot" not in columns
    mia = Manager(name="Mia", bonus=100, parking_spot="P1")
    session.add(mia)
    session.commit()

    mia.parking_spot = "P2"
    session.commit()
    assert (mia.versions(), mia.version) == ([], 0)

    mia.bonus = 200
    session.commit()
    [version] = mia.versions()
    assert version.change_info["hidden_cols_changed"] == ["bonus"]
    assert mia.diff(version, include_hidden=True) == {"bonus": (None, 200)}
    with pytest.raises(HiddenAttributeError) as exc_info:
        version.bonus  # noqa: B018
    assert "Manager.bonus is hidden" in str(exc_info.value)
    with pytest.raises(UntrackedAttributeError) as exc_info:
        version.parking_spot  # noqa: B018
    assert "Manager.parking_spot is untracked" in str(exc_info.value)


def test_joined_hidden_and_untracked_declared_on_subclass(Base, engine, session):
    class Employee(Base, Versioned):
        __tablename__ = "employee"
        id: Mapped[int] = mapped_column(primary_key=True)
        name: Mapped[str]

    class Engineer(Employee):
        __tablename__ = "engineer"
        __chrononaut_hidden__ = ["salary"]
        __chrononaut_untracked__ = ["desk"]
        id: Mapped[int] = mapped_column(sa.ForeignKey("employee.id"), primary_key=True)
        salary: Mapped[int | None]
        desk: Mapped[str | None]

    Base.metadata.create_all(engine)
    assert history_columns(engine, "engineer_history") == {"id", "version"}
    grace = Engineer(name="Grace", salary=100, desk="B1")
    session.add(grace)
    session.commit()

    grace.desk = "B2"
    session.commit()
    assert (grace.versions(), grace.version) == ([], 0)

    grace.salary = 200
    session.commit()
    [version] = grace.versions()
    assert version.change_info["hidden_cols_changed"] == ["salary"]
    with pytest.raises(HiddenAttributeError) as exc_info:
        version.salary  # noqa: B018
    assert "Engineer.salary is hidden" in str(exc_info.value)
    with pytest.raises(UntrackedAttributeError) as exc_info:
        version.desk  # noqa: B018
    assert "Engineer.desk is untracked" in str(exc_info.value)


def test_single_table_subclass_keeps_parent_hidden_column_hidden(Base, engine, session):
    class Employee(Base, Versioned):
        __tablename__ = "employee"
        __chrononaut_hidden__ = ["password"]
        id: Mapped[int] = mapped_column(primary_key=True)
        password: Mapped[str | None]
        type: Mapped[str] = mapped_column(sa.String(20))
        __mapper_args__ = {"polymorphic_on": "type", "polymorphic_identity": "employee"}

    class Manager(Employee):
        __chrononaut_hidden__ = ["bonus"]  # its own list, on top of the parent's
        bonus: Mapped[int | None]
        __mapper_args__ = {"polymorphic_identity": "manager"}

    Base.metadata.create_all(engine)
    mia = Manager(password="s3cret", bonus=100)
    session.add(mia)
    session.commit()

    mia.password = "n3w"
    session.commit()

    assert "password" not in history_columns(engine, "employee_history")
    [version] = mia.versions()
    assert version.change_info.get("hidden_cols_changed") == ["password"]
    with pytest.raises(HiddenAttributeError) as exc_info:
        version.password  # noqa: B018
    assert "password is hidden" in str(exc_info.value)


def test_single_table_subclass_keeps_parent_untracked_column_untracked(Base, engine, session):
    class Employee(Base, Versioned):
        __tablename__ = "employee"
        __chrononaut_untracked__ = ["login_count"]
        id: Mapped[int] = mapped_column(primary_key=True)
        login_count: Mapped[int] = mapped_column(default=0)
        type: Mapped[str] = mapped_column(sa.String(20))
        __mapper_args__ = {"polymorphic_on": "type", "polymorphic_identity": "employee"}

    class Manager(Employee):
        __chrononaut_untracked__ = ["parking_spot"]  # its own list, on top of the parent's
        parking_spot: Mapped[str | None]
        __mapper_args__ = {"polymorphic_identity": "manager"}

    Base.metadata.create_all(engine)
    mia = Manager()
    session.add(mia)
    session.commit()

    mia.login_count = 1
    session.commit()

    assert "login_count" not in history_columns(engine, "employee_history")
    assert (mia.versions(), mia.version) == ([], 0)


def test_joined_subclass_keeps_parent_hidden_column_hidden(Base, engine, session):
    class Employee(Base, Versioned):
        __tablename__ = "employee"
        __chrononaut_hidden__ = ["password"]
        id: Mapped[int] = mapped_column(primary_key=True)
        password: Mapped[str | None]

    class Engineer(Employee):
        __tablename__ = "engineer"
        __chrononaut_hidden__ = ["salary"]  # its own list, on top of the parent's
        id: Mapped[int] = mapped_column(sa.ForeignKey("employee.id"), primary_key=True)
        salary: Mapped[int | None]

    Base.metadata.create_all(engine)
    grace = Engineer(password="s3cret", salary=100)
    session.add(grace)
    session.commit()

    grace.password = "n3w"
    session.commit()

    [version] = grace.versions()
    assert version.change_info.get("hidden_cols_changed") == ["password"]
    assert grace.diff(version, include_hidden=True) == {"password": (None, "n3w")}
