"""The database guard's switches, what create_all/drop_all emit, and what it refuses."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

import chrononaut
from chrononaut import ConfigurationError, Versioned
from chrononaut.versioning.database_guard_sql import function_names, guard_ddl


def triggers(engine, table: str, schema: str = "public") -> set[str]:
    with engine.connect() as connection:
        return set(
            connection.exec_driver_sql(
                "SELECT t.tgname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
                "JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE c.relname = %s AND n.nspname = %s AND NOT t.tgisinternal",
                (table, schema),
            ).scalars()
        )


def guard_functions(engine) -> set[str]:
    with engine.connect() as connection:
        return set(
            connection.exec_driver_sql(
                "SELECT proname FROM pg_proc WHERE proname LIKE '%%chrononaut_guard%%'"
            ).scalars()
        )


GUARD = {"chrononaut_guard_update", "chrononaut_guard_delete"}


def versions_after_raw_update(engine, sql: str) -> list[tuple[Any, ...]]:
    with engine.begin() as connection:
        connection.exec_driver_sql(sql)
    with engine.connect() as connection:
        return [tuple(r) for r in connection.exec_driver_sql("SELECT id, version FROM note")]


def test_guard_is_off_by_default_and_create_all_adds_no_trigger(engine, Base):
    class Note(Base, Versioned):
        __tablename__ = "note"
        id: Mapped[int] = mapped_column(primary_key=True)
        text: Mapped[str]

    Base.metadata.create_all(engine)
    with engine.begin() as connection:
        connection.exec_driver_sql("INSERT INTO note (id, text) VALUES (1, 'a')")

    assert triggers(engine, "note") == set()
    assert versions_after_raw_update(engine, "UPDATE note SET text = 'b'") == [(1, 0)]


def test_create_all_adds_the_guard_and_drop_all_removes_its_functions(engine, Base):
    class Note(Base, Versioned):
        __tablename__ = "note"
        __chrononaut_database_guard__ = True
        id: Mapped[int] = mapped_column(primary_key=True)
        text: Mapped[str]

    Base.metadata.create_all(engine)
    assert triggers(engine, "note") == GUARD
    assert guard_functions(engine) == {
        "note_chrononaut_guard_update",
        "note_chrononaut_guard_delete",
    }

    Base.metadata.drop_all(engine)
    assert guard_functions(engine) == set()


@pytest.mark.parametrize("value", ["yes", 1, [True]])
def test_option_that_is_not_a_bool_is_refused_at_class_definition(Base, value):
    with pytest.raises(ConfigurationError) as exc_info:

        class Note(Base, Versioned):
            __tablename__ = "note"
            __chrononaut_database_guard__ = value
            id: Mapped[int] = mapped_column(primary_key=True)

    assert str(exc_info.value) == (
        f"Note.__chrononaut_database_guard__ must be True or False, got {value!r}; "
        "set it to True to guard the table against writes outside the ORM."
    )


def test_enable_database_guard_guards_the_metadata_unless_a_model_opts_out(engine, Base):
    class Note(Base, Versioned):
        __tablename__ = "note"
        id: Mapped[int] = mapped_column(primary_key=True)
        text: Mapped[str]

    class Draft(Base, Versioned):
        __tablename__ = "draft"
        __chrononaut_database_guard__ = False
        id: Mapped[int] = mapped_column(primary_key=True)

    chrononaut.enable_database_guard(Base.metadata)  # after the models: read at DDL time
    Base.metadata.create_all(engine)

    assert triggers(engine, "note") == GUARD
    assert triggers(engine, "draft") == set()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("Base",),
            "enable_database_guard() takes a MetaData (such as Base.metadata or db.metadata), "
            "got 'Base'",
        ),
        (
            (sa.MetaData(), "on"),
            "enable_database_guard() takes enabled=True or False, got 'on'",
        ),
    ],
)
def test_enable_database_guard_refuses_other_arguments(args, message):
    with pytest.raises(TypeError) as exc_info:
        chrononaut.enable_database_guard(*args)
    assert str(exc_info.value) == message


def test_flask_config_guards_every_versioned_model(app, clean_database):
    app.config["CHRONONAUT_DATABASE_GUARD"] = True
    db = chrononaut.VersionedSQLAlchemy(app)

    class Note(db.Model, Versioned):
        __tablename__ = "note"
        id = db.Column(db.Integer, primary_key=True)
        text = db.Column(db.Text)

    with app.app_context():
        db.create_all()
        db.session.add(Note(id=1, text="a"))
        db.session.commit()
        assert triggers(db.engine, "note") == GUARD
        assert versions_after_raw_update(db.engine, "UPDATE note SET text = 'b'") == [(1, 1)]
        db.session.remove()
        db.engine.dispose()


def test_flask_config_that_is_not_a_bool_is_refused_at_init_app(app):
    app.config["CHRONONAUT_DATABASE_GUARD"] = "maybe"
    with pytest.raises(TypeError) as exc_info:
        chrononaut.VersionedSQLAlchemy(app)
    assert str(exc_info.value) == (
        "CHRONONAUT_DATABASE_GUARD must be True or False (or one of the strings true/false, "
        "yes/no, on/off, 1/0), got 'maybe'."
    )


def test_joined_inheritance_under_a_guarded_base_is_refused_at_class_definition(Base):
    class Animal(Base, Versioned):
        __tablename__ = "animal"
        __chrononaut_database_guard__ = True
        id: Mapped[int] = mapped_column(primary_key=True)
        kind: Mapped[str]
        __mapper_args__ = {"polymorphic_on": "kind", "polymorphic_identity": "animal"}

    with pytest.raises(ConfigurationError) as exc_info:

        class Dog(Animal):
            __tablename__ = "dog"
            id: Mapped[int] = mapped_column(sa.ForeignKey("animal.id"), primary_key=True)
            __mapper_args__ = {"polymorphic_identity": "dog"}

    assert str(exc_info.value) == (
        "Dog: the database guard (__chrononaut_database_guard__ or CHRONONAUT_DATABASE_GUARD, "
        "on for Animal) does not support joined-table inheritance: a raw UPDATE of Dog's own "
        "table cannot bump the version kept in Animal's table without being mistaken for "
        "chrononaut's own writes. Set Animal.__chrononaut_database_guard__ = False to leave "
        "this hierarchy unguarded."
    )


def _joined(Base, guard: bool | None) -> None:
    class Animal(Base, Versioned):
        __tablename__ = "animal"
        id: Mapped[int] = mapped_column(primary_key=True)
        kind: Mapped[str]
        __mapper_args__ = {"polymorphic_on": "kind", "polymorphic_identity": "animal"}

    if guard is not None:
        Animal.__chrononaut_database_guard__ = guard

    class Dog(Animal):
        __tablename__ = "dog"
        id: Mapped[int] = mapped_column(sa.ForeignKey("animal.id"), primary_key=True)
        __mapper_args__ = {"polymorphic_identity": "dog"}


def test_metadata_guard_with_joined_inheritance_refuses_create_all_before_any_table(engine, Base):
    _joined(Base, guard=None)
    chrononaut.enable_database_guard(Base.metadata)

    with pytest.raises(ConfigurationError) as exc_info:
        Base.metadata.create_all(engine)

    assert "Dog: the database guard" in str(exc_info.value)
    assert sa.inspect(engine).get_table_names() == []


def test_metadata_guard_leaves_a_joined_hierarchy_that_opts_out_unguarded(engine, Base):
    _joined(Base, guard=False)
    chrononaut.enable_database_guard(Base.metadata)

    Base.metadata.create_all(engine)

    assert triggers(engine, "animal") == triggers(engine, "dog") == set()


def test_single_table_subclass_may_not_set_the_option_apart_from_its_base(Base):
    class Animal(Base, Versioned):
        __tablename__ = "animal"
        __chrononaut_database_guard__ = True
        id: Mapped[int] = mapped_column(primary_key=True)
        kind: Mapped[str]
        __mapper_args__ = {"polymorphic_on": "kind", "polymorphic_identity": "animal"}

    with pytest.raises(ConfigurationError) as exc_info:

        class Cat(Animal):
            __chrononaut_database_guard__ = False
            __mapper_args__ = {"polymorphic_identity": "cat"}

    assert str(exc_info.value) == (
        "Cat sets __chrononaut_database_guard__ = False but shares table 'animal' with Animal "
        "(single-table inheritance); the guard is per table: set it on Animal only."
    )


def test_single_table_inheritance_records_each_kind_with_its_own_columns(engine, Base, session):
    class Animal(Base, Versioned):
        __tablename__ = "animal"
        __chrononaut_database_guard__ = True
        id: Mapped[int] = mapped_column(primary_key=True)
        kind: Mapped[str]
        name: Mapped[str]
        __mapper_args__ = {"polymorphic_on": "kind", "polymorphic_identity": "animal"}

    class Cat(Animal):
        __chrononaut_hidden__ = ["name"]  # cats' names are private
        lives: Mapped[int | None]
        __mapper_args__ = {"polymorphic_identity": "cat"}

    class Dog(Animal):
        __chrononaut_untracked__ = ["tricks"]
        tricks: Mapped[int | None]
        __mapper_args__ = {"polymorphic_identity": "dog"}

    Base.metadata.create_all(engine)
    session.add_all(
        [
            Animal(id=1, name="generic"),
            Cat(id=2, name="Tom", lives=9),
            Dog(id=3, name="Rex", tricks=1),
        ]
    )
    session.commit()

    with engine.begin() as connection:
        connection.exec_driver_sql("UPDATE animal SET name = name || '!'")  # all three
        connection.exec_driver_sql("UPDATE animal SET lives = 8 WHERE id = 2")
        connection.exec_driver_sql("UPDATE animal SET tricks = 2 WHERE id = 3")  # untracked

    history = Animal.__history_mapper__.class_
    rows = session.scalars(sa.select(history).order_by(history.id, history.version)).all()
    assert [(type(r).__name__, r.id, r.version) for r in rows] == [
        ("AnimalHistory", 1, 0),
        ("CatHistory", 2, 0),
        ("CatHistory", 2, 1),
        ("DogHistory", 3, 0),
    ]
    assert rows[0].name == "generic"
    assert [r.lives for r in rows[1:3]] == [9, 9]
    assert rows[1].change_info["hidden_cols_changed"] == ["name"]
    assert "hidden_cols_changed" not in rows[2].change_info
    with engine.connect() as connection:
        names = connection.exec_driver_sql(
            "SELECT name FROM animal_history WHERE id = 2"
        ).scalars()
        assert list(names) == [None, None]  # hidden for cats, withheld from history
    assert rows[3].name == "Rex"
    assert [session.get(Animal, i).version for i in (1, 2, 3)] == [1, 2, 1]


def test_single_table_subclasses_recording_alike_share_one_branch(Base):
    class Animal(Base, Versioned):
        __tablename__ = "animal"
        __chrononaut_database_guard__ = True
        id: Mapped[int] = mapped_column(primary_key=True)
        kind: Mapped[str]
        __mapper_args__ = {"polymorphic_on": "kind", "polymorphic_identity": "animal"}

    class Cat(Animal):
        __mapper_args__ = {"polymorphic_identity": "cat"}

    ddl = guard_ddl(Cat)
    assert ddl.table_name == "animal"
    assert "ELSIF" not in ddl.update_body and "IF OLD.kind" not in ddl.update_body


def test_table_in_another_schema_gets_its_guard_in_that_schema(engine, Base):
    with engine.begin() as connection:
        connection.exec_driver_sql("DROP SCHEMA IF EXISTS ledger CASCADE")
        connection.exec_driver_sql("CREATE SCHEMA ledger")

    class Entry(Base, Versioned):
        __tablename__ = "entry"
        __table_args__ = {"schema": "ledger"}
        __chrononaut_database_guard__ = True
        id: Mapped[int] = mapped_column(primary_key=True)
        amount: Mapped[int]

    try:
        Base.metadata.create_all(engine)
        with engine.begin() as connection:
            connection.exec_driver_sql("INSERT INTO ledger.entry (id, amount) VALUES (1, 5)")
            connection.exec_driver_sql("UPDATE ledger.entry SET amount = 6")
            connection.exec_driver_sql("DELETE FROM ledger.entry")
        with engine.connect() as connection:
            rows = connection.exec_driver_sql(
                "SELECT amount, version, change_info->>'deleted' FROM ledger.entry_history "
                "ORDER BY version"
            ).all()
        assert [tuple(r) for r in rows] == [(5, 0, None), (6, 1, "true")]
        assert triggers(engine, "entry", schema="ledger") == GUARD
        assert function_names("entry", "ledger") == (
            "ledger.entry_chrononaut_guard_update",
            "ledger.entry_chrononaut_guard_delete",
        )
    finally:
        with engine.begin() as connection:
            connection.exec_driver_sql("DROP SCHEMA ledger CASCADE")


def test_long_table_names_get_function_names_postgresql_keeps_whole(engine):
    class Base(DeclarativeBase):
        pass

    name = "a_table_name_long_enough_to_overflow_postgresql_identifiers_x"

    class Long(Base, Versioned):
        __tablename__ = name
        __chrononaut_tablename__ = "long_history"
        __chrononaut_database_guard__ = True
        id: Mapped[int] = mapped_column(primary_key=True)
        text: Mapped[str]

    update_fn, delete_fn = function_names(name)
    assert len(update_fn) <= 63 and len(delete_fn) <= 63
    assert update_fn != delete_fn
    Base.metadata.create_all(engine)
    with engine.begin() as connection:
        connection.exec_driver_sql(f"INSERT INTO {name} (id, text) VALUES (1, 'a')")
        connection.exec_driver_sql(f"UPDATE {name} SET text = 'b'")
        assert connection.exec_driver_sql("SELECT count(*) FROM long_history").scalar() == 1
