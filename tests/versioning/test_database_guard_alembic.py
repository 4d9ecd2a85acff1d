"""Alembic autogenerate and the migration helpers install, refresh and drop the guard.

As in ``test_alembic.py``, each test compares a MetaData with the live
database, runs what autogenerate renders, and then writes raw SQL to see the
triggers at work.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import alembic
import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata, produce_migrations
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.operations import Operations
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from chrononaut import ConfigurationError, Versioned
from chrononaut.migrations import DatabaseGuardOp, create_database_guard, drop_database_guard

from .test_alembic import ENV_PY, _flat, _run_rendered, _upgrade_ops
from .test_database_guard_options import GUARD, triggers


def _guard_ops(upgrade_ops) -> list[tuple[str, str]]:
    return [
        (op.action, op.table_name) for op in _flat(upgrade_ops) if isinstance(op, DatabaseGuardOp)
    ]


def _raw(engine, *statements: str) -> None:
    with engine.begin() as connection:
        for statement in statements:
            connection.exec_driver_sql(statement)


def _history(engine, *columns: str) -> list[tuple]:
    names = ", ".join(["version", *columns, "change_info->>'source'"])
    with engine.connect() as connection:
        rows = connection.exec_driver_sql(f"SELECT {names} FROM account_history ORDER BY version")
        return [tuple(r) for r in rows]


def _sources(engine) -> dict[str, str]:
    with engine.connect() as connection:
        rows = connection.exec_driver_sql(
            "SELECT proname, prosrc FROM pg_proc WHERE proname LIKE 'account_chrononaut_%%'"
        )
        return dict(rows.all())


def _account(base: type[DeclarativeBase], guard: bool | None = True, nickname: bool = False):
    namespace = {
        "__tablename__": "account",
        "__annotations__": {"id": Mapped[int], "name": Mapped[str]},
        "id": mapped_column(primary_key=True),
        "name": mapped_column(sa.String(80)),
    }
    if guard is not None:
        namespace["__chrononaut_database_guard__"] = guard
    if nickname:
        namespace["__annotations__"]["nickname"] = Mapped[str | None]
        namespace["nickname"] = mapped_column(sa.String(40))
    return type("Account", (base, Versioned), namespace)


def _next_base() -> type[DeclarativeBase]:
    class NextBase(DeclarativeBase):
        pass

    return NextBase


def test_autogenerate_creates_the_guard_with_a_new_table_and_then_finds_nothing(engine, Base):
    _account(Base)

    with engine.begin() as connection:
        upgrade_ops = _upgrade_ops(connection, Base.metadata)
        names = [getattr(op, "table_name", None) for op in upgrade_ops.ops]
        assert _guard_ops(upgrade_ops) == [("create", "account")]
        # after the tables it refers to
        assert names.index("account") < names.index("account_history") < len(names) - 1
        code = _run_rendered(connection, upgrade_ops)
    with engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)

    assert "# chrononaut: create the database guard of account" in code
    assert diff == []
    assert triggers(engine, "account") == GUARD
    _raw(
        engine,
        "INSERT INTO account (id, name) VALUES (1, 'Ada')",
        "UPDATE account SET name = 'Ada L.'",
    )
    assert _history(engine, "name") == [(0, "Ada", "database")]


def test_autogenerate_without_the_option_emits_no_guard(engine, Base):
    _account(Base, guard=None)

    with engine.connect() as connection:
        assert _guard_ops(_upgrade_ops(connection, Base.metadata)) == []


def test_turning_the_option_on_for_an_existing_table_autogenerates_only_the_guard(engine, Base):
    _account(Base, guard=None)
    Base.metadata.create_all(engine)
    _raw(engine, "INSERT INTO account (id, name) VALUES (1, 'Ada')")
    NextBase = _next_base()
    _account(NextBase, guard=True)

    with engine.begin() as connection:
        upgrade_ops = _upgrade_ops(connection, NextBase.metadata)
        assert [type(op).__name__ for op in upgrade_ops.ops] == ["DatabaseGuardOp"]
        assert _guard_ops(upgrade_ops) == [("create", "account")]
        _run_rendered(connection, upgrade_ops)

    _raw(engine, "UPDATE account SET name = 'Ada L.'")
    assert _history(engine, "name") == [(0, "Ada", "database")]


def test_a_new_column_autogenerates_a_replacement_and_its_downgrade_restores_the_old(engine, Base):
    _account(Base)
    Base.metadata.create_all(engine)
    before = _sources(engine)
    NextBase = _next_base()
    _account(NextBase, nickname=True)

    with engine.begin() as connection:
        script = produce_migrations(MigrationContext.configure(connection), NextBase.metadata)
        assert _guard_ops(script.upgrade_ops) == [("replace", "account")]
        _run_rendered(connection, script.upgrade_ops)
    _raw(
        engine,
        "INSERT INTO account (id, name, nickname) VALUES (1, 'Ada', 'countess')",
        "UPDATE account SET nickname = 'enchantress'",
    )
    assert _history(engine, "nickname") == [(0, "countess", "database")]
    with engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), NextBase.metadata) == []

    with engine.begin() as connection:
        assert _guard_ops(script.downgrade_ops) == [("replace", "account")]
        _run_rendered(connection, script.downgrade_ops)
    assert _sources(engine) == before
    assert triggers(engine, "account") == GUARD


def test_turning_the_option_off_autogenerates_a_drop_whose_downgrade_reinstalls(engine, Base):
    _account(Base)
    Base.metadata.create_all(engine)
    before = _sources(engine)
    NextBase = _next_base()
    _account(NextBase, guard=False)

    with engine.begin() as connection:
        script = produce_migrations(MigrationContext.configure(connection), NextBase.metadata)
        assert _guard_ops(script.upgrade_ops) == [("drop", "account")]
        _run_rendered(connection, script.upgrade_ops)
    assert triggers(engine, "account") == set()
    assert _sources(engine) == {}

    with engine.begin() as connection:
        _run_rendered(connection, script.downgrade_ops)
    assert triggers(engine, "account") == GUARD
    assert _sources(engine) == before


def test_helpers_install_and_remove_the_guard_on_an_existing_table(engine, Base):
    _account(Base, guard=True)
    with engine.begin() as connection:
        Base.metadata.create_all(connection)
        drop_database_guard(Operations(MigrationContext.configure(connection)), "account")
    assert triggers(engine, "account") == set()

    with engine.begin() as connection:
        context = MigrationContext.configure(connection, opts={"target_metadata": Base.metadata})
        create_database_guard(Operations(context), "account")
        create_database_guard(Operations(context), "account")  # again: refreshed, no error
    assert triggers(engine, "account") == GUARD
    _raw(
        engine,
        "INSERT INTO account (id, name) VALUES (1, 'Ada')",
        "UPDATE account SET name = 'Ada L.'",
        "DELETE FROM account",
    )
    assert _history(engine, "name") == [(0, "Ada", "database"), (1, "Ada L.", "database")]


def test_create_database_guard_names_what_it_could_not_find(engine, Base):
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"target_metadata": Base.metadata})
        with pytest.raises(ConfigurationError) as exc_info:
            create_database_guard(Operations(context), "nowhere")

    assert str(exc_info.value) == (
        "create_database_guard() found no versioned model with table 'nowhere' in the "
        "migration's target_metadata; pass the model class, or metadata=."
    )


def test_alembic_revision_autogenerate_writes_a_script_that_installs_the_guard(
    engine, Base, tmp_path
):
    _account(Base)
    templates = Path(alembic.__file__).parent / "templates" / "generic"
    (tmp_path / "versions").mkdir()
    shutil.copy(templates / "script.py.mako", tmp_path)
    (tmp_path / "env.py").write_text(ENV_PY)
    config = Config()
    config.set_main_option("script_location", str(tmp_path))
    config.attributes["metadata"] = Base.metadata

    with engine.begin() as connection:
        config.attributes["connection"] = connection
        script = command.revision(config, message="guard accounts", autogenerate=True)
        command.upgrade(config, "head")
        command.check(config)  # raises AutogenerateDiffsDetected if anything is left

    source = Path(script.path).read_text()
    assert "CREATE CONSTRAINT TRIGGER chrononaut_guard_delete" in source
    assert triggers(engine, "account") == GUARD


def test_names_with_percent_and_colon_survive_create_all_and_rendered_scripts(engine, Base):
    class Odd(Base, Versioned):
        __tablename__ = "odd%table"
        __chrononaut_database_guard__ = True
        id: Mapped[int] = mapped_column(primary_key=True)
        ratio: Mapped[str] = mapped_column("a:b")

    with engine.begin() as connection:
        upgrade_ops = _upgrade_ops(connection, Base.metadata)
        _run_rendered(connection, upgrade_ops)
    _raw(
        engine,
        'INSERT INTO "odd%%table" (id, "a:b") VALUES (1, \'x\')',
        'UPDATE "odd%%table" SET "a:b" = \'y\'',
    )
    Base.metadata.drop_all(engine)
    Base.metadata.create_all(engine)  # the DDL events' path
    _raw(
        engine,
        'INSERT INTO "odd%%table" (id, "a:b") VALUES (1, \'x\')',
        'UPDATE "odd%%table" SET "a:b" = \'y\'',
    )
    with engine.connect() as connection:
        rows = connection.exec_driver_sql('SELECT "a:b", version FROM "odd%%table_history"')
        assert [tuple(r) for r in rows] == [("x", 0)]


def test_drop_database_guard_cleans_up_after_a_dropped_table(engine, Base):
    _account(Base)
    Base.metadata.create_all(engine)
    _raw(engine, "DROP TABLE account")  # as autogenerate's op.drop_table would
    assert set(_sources(engine)) == {
        "account_chrononaut_guard_update",
        "account_chrononaut_guard_delete",
    }

    with engine.begin() as connection:
        drop_database_guard(Operations(MigrationContext.configure(connection)), "account")

    assert _sources(engine) == {}
