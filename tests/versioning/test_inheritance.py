"""Joined-table inheritance: a history table per subclass table, polymorphic history."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
import sqlalchemy as sa
from freezegun import freeze_time
from sqlalchemy.orm import Mapped, mapped_column

from chrononaut import ConfigurationError, Versioned


def history_rows(session, table, *columns):
    """(column values...) of every row of a history table, by id then version."""
    cols = [table.c[name] for name in columns]
    stmt = sa.select(*cols).order_by(table.c.id, table.c.version)
    return [tuple(row) for row in session.execute(stmt)]


def test_joined_subclass_history_table_joins_parent_history_by_key_and_version(Base, engine):
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
    catalog = sa.inspect(engine)

    assert set(catalog.get_table_names()) == {
        "employee",
        "engineer",
        "employee_history",
        "engineer_history",
        "chrononaut_leases",
        "chrononaut_creations",
    }
    assert {c["name"] for c in catalog.get_columns("engineer_history")} == {
        "id",
        "language",
        "version",
    }
    assert "version" not in {c["name"] for c in catalog.get_columns("engineer")}
    pk = catalog.get_pk_constraint("engineer_history")["constrained_columns"]
    assert sorted(pk) == ["id", "version"]
    [fk] = catalog.get_foreign_keys("engineer_history")
    assert fk["referred_table"] == "employee_history"
    pairs = dict(zip(fk["constrained_columns"], fk["referred_columns"], strict=True))
    assert pairs == {"id": "id", "version": "version"}

    EmployeeHistory = Employee.__history_mapper__.class_
    EngineerHistory = Engineer.__history_mapper__.class_
    assert EngineerHistory.__name__ == "EngineerHistory"
    assert issubclass(EngineerHistory, EmployeeHistory)
    assert Engineer.__history_mapper__.local_table.name == "engineer_history"


def test_joined_update_of_parent_column_writes_one_version_in_both_history_tables(
    Base, engine, session
):
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
    grace = Engineer(name="Grace", language="COBOL")
    session.add(grace)
    session.commit()

    grace.name = "Grace Hopper"
    session.commit()

    tables = Base.metadata.tables
    parent_rows = history_rows(session, tables["employee_history"], "id", "version", "name")
    child_rows = history_rows(session, tables["engineer_history"], "id", "version", "language")
    assert parent_rows == [(grace.id, 0, "Grace")]
    assert child_rows == [(grace.id, 0, "COBOL")]
    assert grace.version == 1


def test_joined_update_of_child_column_writes_one_version_in_both_history_tables(
    Base, engine, session
):
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
    grace = Engineer(name="Grace", language="COBOL")
    session.add(grace)
    session.commit()

    grace.language = "FLOW-MATIC"
    session.commit()
    grace.name, grace.language = "Grace Hopper", "A-0"  # both tables, one change
    session.commit()

    tables = Base.metadata.tables
    parent_rows = history_rows(session, tables["employee_history"], "version", "name")
    child_rows = history_rows(session, tables["engineer_history"], "version", "language")
    assert parent_rows == [(0, "Grace"), (1, "Grace")]
    assert child_rows == [(0, "COBOL"), (1, "FLOW-MATIC")]
    assert grace.version == 2


def test_joined_base_history_query_returns_subclass_history_objects(Base, engine, session):
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
    ann, grace = Employee(name="Ann"), Engineer(name="Grace", language="COBOL")
    session.add_all([ann, grace])
    session.commit()
    grace_id = grace.id
    ann.name, grace.name = "Ann Smith", "Grace Hopper"
    session.commit()
    session.expunge_all()  # load the history fresh, not from the identity map

    EmployeeHistory = Employee.__history_mapper__.class_
    EngineerHistory = Engineer.__history_mapper__.class_
    found = session.scalars(sa.select(EmployeeHistory).order_by(EmployeeHistory.id)).all()

    assert [type(h) for h in found] == [EmployeeHistory, EngineerHistory]
    assert (found[0].name, found[0].type) == ("Ann", "employee")
    assert (found[1].name, found[1].type, found[1].language) == ("Grace", "engineer", "COBOL")
    only_engineers = session.scalars(sa.select(EngineerHistory)).all()
    assert [(h.id, h.language) for h in only_engineers] == [(grace_id, "COBOL")]


@freeze_time("2024-03-01 10:00:00")
def test_joined_subclass_versions_diff_and_version_at(Base, engine, session):
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
    grace = Engineer(name="Grace", language="COBOL")
    session.add(grace)
    session.commit()
    with freeze_time("2024-03-01 11:00:00"):
        grace.language = "FLOW-MATIC"
        session.commit()
    with freeze_time("2024-03-01 12:00:00"):
        grace.name = "Grace Hopper"
        session.commit()

    versions = grace.versions()
    EngineerHistory = Engineer.__history_mapper__.class_
    assert [type(v) for v in versions] == [EngineerHistory, EngineerHistory]
    assert [(v.version, v.name, v.language) for v in versions] == [
        (0, "Grace", "COBOL"),
        (1, "Grace", "FLOW-MATIC"),
    ]
    assert grace.diff(versions[0]) == {
        "name": ("Grace", "Grace Hopper"),
        "language": ("COBOL", "FLOW-MATIC"),
    }
    assert grace.diff(versions[0], to=versions[1]) == {"language": ("COBOL", "FLOW-MATIC")}
    at_half_past_ten = grace.version_at(datetime(2024, 3, 1, 10, 30, tzinfo=timezone.utc))
    assert (at_half_past_ten.version, at_half_past_ten.language) == (0, "COBOL")
    assert grace.version_at(datetime(2024, 3, 1, 12, 30, tzinfo=timezone.utc)) is grace
    later = grace.versions(after=datetime(2024, 3, 1, 11, 30, tzinfo=timezone.utc))
    assert [v.version for v in later] == [1]
    assert grace.previous_version().version == 1


def test_joined_subclass_deletion_writes_last_state_to_both_history_tables(Base, engine, session):
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
    grace = Engineer(name="Grace", language="COBOL")
    session.add(grace)
    session.commit()
    grace_id = grace.id
    grace.language = "FLOW-MATIC"
    session.commit()

    session.delete(grace)
    session.commit()
    session.expunge_all()

    tables = Base.metadata.tables
    parent_rows = history_rows(session, tables["employee_history"], "version", "name")
    child_rows = history_rows(session, tables["engineer_history"], "version", "language")
    assert parent_rows == [(0, "Grace"), (1, "Grace")]
    assert child_rows == [(0, "COBOL"), (1, "FLOW-MATIC")]
    EmployeeHistory = Employee.__history_mapper__.class_
    found = session.scalars(
        sa.select(EmployeeHistory)
        .where(EmployeeHistory.id == grace_id)
        .order_by(EmployeeHistory.version)
    ).all()
    assert [type(h).__name__ for h in found] == ["EngineerHistory", "EngineerHistory"]
    assert [h.is_deletion for h in found] == [False, True]
    assert found[-1].language == "FLOW-MATIC"
    assert session.get(Employee, grace_id) is None


def test_joined_inheritance_with_classic_columns(db):
    class Employee(db.Model, Versioned):
        id = db.Column(db.Integer, primary_key=True)
        name = db.Column(db.String(80), nullable=False)
        type = db.Column(db.String(20), nullable=False)
        __mapper_args__ = {"polymorphic_on": type, "polymorphic_identity": "employee"}

    class Engineer(Employee):  # Flask-SQLAlchemy names the table "engineer"
        id = db.Column(db.Integer, db.ForeignKey("employee.id"), primary_key=True)
        language = db.Column(db.String(40))
        __mapper_args__ = {"polymorphic_identity": "engineer"}

    db.create_all()
    [fk] = sa.inspect(db.engine).get_foreign_keys("engineer_history")
    assert (fk["referred_table"], sorted(fk["constrained_columns"])) == (
        "employee_history",
        ["id", "version"],
    )
    grace = Engineer(name="Grace", language="COBOL")
    db.session.add(grace)
    db.session.commit()
    grace.language = "FLOW-MATIC"
    db.session.commit()
    db.session.expunge_all()

    EmployeeHistory = Employee.__history_mapper__.class_
    [found] = db.session.scalars(sa.select(EmployeeHistory)).all()
    assert type(found) is Engineer.__history_mapper__.class_
    assert (found.version, found.name, found.language) == (0, "Grace", "COBOL")
    grace = db.session.get(Engineer, found.id)
    assert grace.diff(found) == {"language": ("COBOL", "FLOW-MATIC")}


def test_joined_inheritance_without_discriminator(Base, engine, session):
    class Employee(Base, Versioned):
        __tablename__ = "employee"
        id: Mapped[int] = mapped_column(primary_key=True)
        name: Mapped[str]

    class Engineer(Employee):
        __tablename__ = "engineer"
        id: Mapped[int] = mapped_column(sa.ForeignKey("employee.id"), primary_key=True)
        language: Mapped[str | None]

    Base.metadata.create_all(engine)
    assert Employee.__history_mapper__.polymorphic_on is None
    assert Engineer.__history_mapper__.polymorphic_identity is None
    grace = Engineer(name="Grace", language="COBOL")
    session.add(grace)
    session.commit()

    grace.language = "FLOW-MATIC"
    session.commit()

    [version] = grace.versions()
    assert type(version) is Engineer.__history_mapper__.class_
    assert (version.version, version.name, version.language) == (0, "Grace", "COBOL")
    assert grace.diff(version) == {"language": ("COBOL", "FLOW-MATIC")}
    session.delete(grace)
    session.commit()
    child_rows = history_rows(
        session, Base.metadata.tables["engineer_history"], "version", "language"
    )
    assert child_rows == [(0, "COBOL"), (1, "FLOW-MATIC")]


def test_three_level_joined_inheritance_writes_a_row_per_table(Base, engine, session):
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

    class Principal(Engineer):
        __tablename__ = "principal"
        id: Mapped[int] = mapped_column(sa.ForeignKey("engineer.id"), primary_key=True)
        domain: Mapped[str | None]
        __mapper_args__ = {"polymorphic_identity": "principal"}

    Base.metadata.create_all(engine)
    [fk] = sa.inspect(engine).get_foreign_keys("principal_history")
    assert fk["referred_table"] == "engineer_history"
    ada = Principal(name="Ada", language="Note G", domain="engines")
    session.add(ada)
    session.commit()

    ada.domain = "looms"
    session.commit()
    session.expunge_all()

    EmployeeHistory = Employee.__history_mapper__.class_
    [found] = session.scalars(sa.select(EmployeeHistory)).all()
    assert type(found) is Principal.__history_mapper__.class_
    assert (found.name, found.language, found.domain) == ("Ada", "Note G", "engines")
    for name in ("employee_history", "engineer_history", "principal_history"):
        assert history_rows(session, Base.metadata.tables[name], "version") == [(0,)]


def test_joined_subclass_primary_key_may_have_its_own_name(Base, engine, session):
    class Employee(Base, Versioned):
        __tablename__ = "employee"
        id: Mapped[int] = mapped_column(primary_key=True)
        name: Mapped[str]

    class Engineer(Employee):
        __tablename__ = "engineer"
        engineer_id: Mapped[int] = mapped_column(sa.ForeignKey("employee.id"), primary_key=True)
        language: Mapped[str | None]

    Base.metadata.create_all(engine)
    [fk] = sa.inspect(engine).get_foreign_keys("engineer_history")
    pairs = dict(zip(fk["constrained_columns"], fk["referred_columns"], strict=True))
    assert pairs == {"engineer_id": "id", "version": "version"}
    grace = Engineer(name="Grace", language="COBOL")
    session.add(grace)
    session.commit()

    grace.language = "FLOW-MATIC"
    session.commit()

    [version] = grace.versions()
    assert (version.engineer_id, version.language) == (grace.id, "COBOL")


def test_joined_subclass_primary_key_without_foreign_key_is_refused(Base):
    class Employee(Base, Versioned):
        __tablename__ = "employee"
        id = sa.Column(sa.Integer, primary_key=True)

    with pytest.raises(ConfigurationError) as exc_info:

        class Engineer(Employee):
            __tablename__ = "engineer"
            engineer_id = sa.Column(sa.Integer, primary_key=True)
            __mapper_args__ = {"inherit_condition": engineer_id == Employee.id}

    message = str(exc_info.value)
    assert "Engineer" in message
    assert "'engineer_id'" in message
    assert "reference its parent's primary key" in message
