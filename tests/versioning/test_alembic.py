"""Alembic autogenerate, run against the real database, sees chrononaut's schema.

Each test compares a versioned MetaData with the live database the way
``alembic revision --autogenerate`` (and ``flask db migrate``) do, then applies
the generated operations and checks that the versioned model works.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import alembic
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata, produce_migrations, render_python_code
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.operations import Operations, ops
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Mapped, mapped_column

from chrononaut import Versioned

LEASES_TABLE = "chrononaut_leases"
CREATIONS_TABLE = "chrononaut_creations"
#: Tables every versioned MetaData gets, left out of the summaries (tested on their own).
SHARED_TABLES = {LEASES_TABLE, CREATIONS_TABLE}


def feed_indexes(history: str) -> set[tuple[str, ...]]:
    """The activity feed's indexes of a base history table, as :func:`_summary` shows them."""
    return {
        ("create_index", history, f"ix_{history}_changed"),
        ("create_index", history, f"ix_{history}_transaction_id"),
    }


#: A minimal ``env.py``: the test passes its connection and MetaData in ``config.attributes``.
ENV_PY = """
from alembic import context

config = context.config
context.configure(
    connection=config.attributes["connection"],
    target_metadata=config.attributes["metadata"],
)
with context.begin_transaction():
    context.run_migrations()
"""


def _upgrade_ops(connection: sa.Connection, metadata: sa.MetaData) -> ops.UpgradeOps:
    """What autogenerate would write into a new revision's ``upgrade()``."""
    context = MigrationContext.configure(connection)
    return produce_migrations(context, metadata).upgrade_ops


def _flat(upgrade_ops: ops.UpgradeOps) -> Iterator[ops.MigrateOperation]:
    for op in upgrade_ops.ops:
        if isinstance(op, ops.ModifyTableOps):
            yield from op.ops
        else:
            yield op


def _summary(upgrade_ops: ops.UpgradeOps) -> set[tuple[str, ...]]:
    """The operations as comparable tuples, e.g. ``("add_column", "account", "version")``.

    The record-locking table, which every versioned MetaData also gets, is left
    out: the locking tests cover it.
    """
    out: set[tuple[str, ...]] = set()
    for op in _flat(upgrade_ops):
        if getattr(op, "table_name", None) in SHARED_TABLES:
            continue
        if isinstance(op, ops.CreateTableOp):
            out.add(("create_table", op.table_name))
        elif isinstance(op, ops.DropTableOp):
            out.add(("drop_table", op.table_name))
        elif isinstance(op, ops.AddColumnOp):
            out.add(("add_column", op.table_name, op.column.name))
        elif isinstance(op, ops.CreateIndexOp):
            out.add(("create_index", op.table_name, op.index_name))
        elif isinstance(op, ops.DropIndexOp):
            out.add(("drop_index", op.table_name, op.index_name))
        else:
            out.add((type(op).__name__,))
    return out


def _tables(engine: sa.Engine) -> set[str]:
    return set(sa.inspect(engine).get_table_names()) - SHARED_TABLES


def _created_tables(upgrade_ops: ops.UpgradeOps) -> dict[str, sa.Table]:
    return {
        op.table_name: op.to_table()
        for op in _flat(upgrade_ops)
        if isinstance(op, ops.CreateTableOp)
    }


def _run_rendered(connection: sa.Connection, script_ops: ops.UpgradeOps | ops.DowngradeOps) -> str:
    """Render the ops as a revision script body, execute it, return the code.

    The namespace holds what a generated revision script imports.
    """
    context = MigrationContext.configure(connection)
    code = render_python_code(script_ops, migration_context=context)
    namespace: dict[str, Any] = {"op": Operations(context), "sa": sa, "postgresql": postgresql}
    exec("def upgrade():\n" + code, namespace)
    namespace["upgrade"]()
    return code


def _invoke(connection: sa.Connection, upgrade_ops: ops.UpgradeOps) -> None:
    """Apply the ops directly through :class:`alembic.operations.Operations`."""
    operations = Operations(MigrationContext.configure(connection))
    for op in _flat(upgrade_ops):
        operations.invoke(op)


def test_autogenerate_on_empty_database_creates_model_and_history_tables(db):
    class User(db.Model, Versioned):
        __tablename__ = "appuser"
        __chrononaut_untracked__ = ["login_count"]
        __chrononaut_hidden__ = ["password"]

        id = db.Column(db.Integer, primary_key=True)
        name = db.Column(db.String(80))
        email = db.Column(db.String(255), unique=True)
        password = db.Column(db.Text())
        login_count = db.Column(db.Integer())

    with db.engine.connect() as connection:
        upgrade_ops = _upgrade_ops(connection, db.metadata)

    assert _summary(upgrade_ops) == {
        ("create_table", "appuser"),
        ("create_table", "appuser_history"),
        ("create_index", "appuser_history", "ix_appuser_history_email"),
        *feed_indexes("appuser_history"),
    }
    tables = _created_tables(upgrade_ops)
    model, history = tables["appuser"], tables["appuser_history"]
    assert not model.c.version.nullable
    assert model.c.version.server_default.arg.text == "0"
    assert [c.name for c in history.primary_key] == ["id", "version"]
    assert set(history.c.keys()) == {
        *("id", "name", "email", "version", "changed", "change_info", "transaction_id")
    }
    pg = postgresql.dialect()
    assert history.c.changed.type.compile(dialect=pg) == "TIMESTAMP WITH TIME ZONE"
    assert not history.c.changed.nullable
    assert history.c.change_info.type.compile(dialect=pg) == "JSONB"
    assert not history.c.change_info.nullable
    assert not any(isinstance(c, sa.UniqueConstraint) for c in history.constraints)


def test_autogenerate_creates_joined_history_tables_for_mapped_column_models(engine, Base):
    class Animal(Base, Versioned):
        __tablename__ = "animal"
        id: Mapped[int] = mapped_column(primary_key=True)
        kind: Mapped[str] = mapped_column(sa.String(20))
        name: Mapped[str] = mapped_column(sa.String(80))
        __mapper_args__ = {"polymorphic_on": "kind", "polymorphic_identity": "animal"}

    class Dog(Animal):
        __tablename__ = "dog"
        id: Mapped[int] = mapped_column(sa.ForeignKey("animal.id"), primary_key=True)
        breed: Mapped[str | None] = mapped_column(sa.String(40))
        __mapper_args__ = {"polymorphic_identity": "dog"}

    with engine.connect() as connection:
        upgrade_ops = _upgrade_ops(connection, Base.metadata)

    assert _summary(upgrade_ops) == {
        ("create_table", "animal"),
        ("create_table", "animal_history"),
        ("create_table", "dog"),
        ("create_table", "dog_history"),
        *feed_indexes("animal_history"),  # the base's: a subclass's history has no changed
    }
    dog_history = _created_tables(upgrade_ops)["dog_history"]
    assert [c.name for c in dog_history.primary_key] == ["id", "version"]
    (fk,) = dog_history.foreign_key_constraints
    assert [e.target_fullname for e in fk.elements] == [
        "animal_history.id",
        "animal_history.version",
    ]
    assert fk.ondelete == "CASCADE"


def test_making_existing_table_versioned_autogenerates_version_column_and_history_table(db):
    with db.engine.begin() as connection:
        connection.exec_driver_sql(
            "CREATE TABLE account (id serial PRIMARY KEY, name varchar(80) NOT NULL)"
        )

    class Account(db.Model, Versioned):
        __tablename__ = "account"
        id = db.Column(db.Integer, primary_key=True)
        name = db.Column(db.String(80), nullable=False)

    with db.engine.connect() as connection:
        upgrade_ops = _upgrade_ops(connection, db.metadata)
        code = render_python_code(
            upgrade_ops, migration_context=MigrationContext.configure(connection)
        )

    assert _summary(upgrade_ops) == {
        ("add_column", "account", "version"),
        ("create_table", "account_history"),
        *feed_indexes("account_history"),
    }
    (add_version,) = [op for op in _flat(upgrade_ops) if isinstance(op, ops.AddColumnOp)]
    assert not add_version.column.nullable
    assert add_version.column.server_default.arg.text == "0"
    assert (
        "op.add_column('account', sa.Column('version', sa.Integer(), "
        "server_default=sa.text('0'), nullable=False))"
    ) in code
    history = _created_tables(upgrade_ops)["account_history"]
    assert [c.name for c in history.primary_key] == ["id", "version"]
    assert {"changed", "change_info"} <= set(history.c.keys())


def test_rendered_migration_versions_existing_rows_and_new_changes(db):
    with db.engine.begin() as connection:
        connection.exec_driver_sql(
            "CREATE TABLE account (id serial PRIMARY KEY, name varchar(80) NOT NULL)"
        )
        connection.exec_driver_sql("INSERT INTO account (name) VALUES ('before migration')")

    class Account(db.Model, Versioned):
        __tablename__ = "account"
        id = db.Column(db.Integer, primary_key=True)
        name = db.Column(db.String(80), nullable=False)

    with db.engine.begin() as connection:
        _run_rendered(connection, _upgrade_ops(connection, db.metadata))

    old = Account.query.one()
    assert old.version == 0
    old.name = "after migration"
    db.session.add(Account(name="new"))
    db.session.commit()

    assert old.version == 1
    (prior,) = old.versions()
    assert (prior.name, prior.version) == ("before migration", 0)
    assert prior.change_info == {"user_id": None, "remote_addr": None}
    new = Account.query.filter_by(name="new").one()
    assert new.version == 0
    assert new.versions() == []


def test_invoked_migration_versions_existing_mapped_column_model(engine, session, Base):
    plain = sa.MetaData()
    sa.Table(
        "note",
        plain,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("body", sa.Text, nullable=False),
    )
    plain.create_all(engine)
    with engine.begin() as connection:
        connection.execute(plain.tables["note"].insert(), [{"body": "v0"}])

    class Note(Base, Versioned):
        __tablename__ = "note"
        id: Mapped[int] = mapped_column(primary_key=True)
        body: Mapped[str] = mapped_column(sa.Text)

    with engine.begin() as connection:
        _invoke(connection, _upgrade_ops(connection, Base.metadata))

    note = session.scalars(sa.select(Note)).one()
    note.body = "v1"
    session.commit()
    note.body = "v2"
    session.commit()

    assert note.version == 2
    assert [(h.version, h.body) for h in note.versions()] == [(0, "v0"), (1, "v1")]


def test_second_autogenerate_after_versioning_existing_table_finds_nothing(db):
    with db.engine.begin() as connection:
        connection.exec_driver_sql(
            "CREATE TABLE account (id serial PRIMARY KEY, name varchar(80) NOT NULL)"
        )

    class Account(db.Model, Versioned):
        __tablename__ = "account"
        id = db.Column(db.Integer, primary_key=True)
        name = db.Column(db.String(80), nullable=False)

    with db.engine.begin() as connection:
        _run_rendered(connection, _upgrade_ops(connection, db.metadata))
    with db.engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), db.metadata)

    assert diff == []


def test_second_autogenerate_after_upgrade_finds_nothing_to_migrate(engine, Base):
    class User(Base, Versioned):
        __tablename__ = "appuser"
        __chrononaut_tablename__ = "appuser_audit"
        __chrononaut_untracked__ = ["login_count"]
        __chrononaut_hidden__ = ["password"]
        __chrononaut_disable_indices__ = ["name"]
        id: Mapped[int] = mapped_column(primary_key=True)
        name: Mapped[str] = mapped_column(sa.String(80), index=True)
        email: Mapped[str] = mapped_column(sa.String(255), unique=True)
        password: Mapped[str | None] = mapped_column(sa.Text, comment="hash only")
        login_count: Mapped[int] = mapped_column(default=0)

    class Animal(Base, Versioned):
        __tablename__ = "animal"
        id: Mapped[int] = mapped_column(primary_key=True)
        kind: Mapped[str] = mapped_column(sa.String(20))
        __mapper_args__ = {"polymorphic_on": "kind", "polymorphic_identity": "animal"}

    class Dog(Animal):
        __tablename__ = "dog"
        id: Mapped[int] = mapped_column(sa.ForeignKey("animal.id"), primary_key=True)
        breed: Mapped[str | None] = mapped_column(sa.String(40), index=True)
        __mapper_args__ = {"polymorphic_identity": "dog"}

    class Cat(Animal):
        lives: Mapped[int | None] = mapped_column()
        __mapper_args__ = {"polymorphic_identity": "cat"}

    with engine.begin() as connection:
        _run_rendered(connection, _upgrade_ops(connection, Base.metadata))
    with engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)

    assert diff == []
    assert _tables(engine) == {
        "appuser",
        "appuser_audit",
        "animal",
        "animal_history",
        "dog",
        "dog_history",
    }


def test_generated_downgrade_drops_history_table_and_version_column(db):
    with db.engine.begin() as connection:
        connection.exec_driver_sql(
            "CREATE TABLE account (id serial PRIMARY KEY, name varchar(80) NOT NULL)"
        )

    class Account(db.Model, Versioned):
        __tablename__ = "account"
        id = db.Column(db.Integer, primary_key=True)
        name = db.Column(db.String(80), nullable=False)

    with db.engine.begin() as connection:
        script = produce_migrations(MigrationContext.configure(connection), db.metadata)
        _run_rendered(connection, script.upgrade_ops)
        _run_rendered(connection, script.downgrade_ops)

    assert _tables(db.engine) == {"account"}
    assert [c["name"] for c in sa.inspect(db.engine).get_columns("account")] == ["id", "name"]


def test_alembic_revision_autogenerate_writes_a_script_that_upgrades(engine, Base, tmp_path):
    class Account(Base, Versioned):
        __tablename__ = "account"
        id: Mapped[int] = mapped_column(primary_key=True)
        name: Mapped[str] = mapped_column(sa.String(80))

    templates = Path(alembic.__file__).parent / "templates" / "generic"
    (tmp_path / "versions").mkdir()
    shutil.copy(templates / "script.py.mako", tmp_path)
    (tmp_path / "env.py").write_text(ENV_PY)
    config = Config()
    config.set_main_option("script_location", str(tmp_path))
    config.attributes["metadata"] = Base.metadata

    with engine.begin() as connection:
        config.attributes["connection"] = connection
        script = command.revision(config, message="version accounts", autogenerate=True)
        command.upgrade(config, "head")
        command.check(config)  # raises AutogenerateDiffsDetected if anything is left

    source = Path(script.path).read_text()
    assert "op.create_table('account_history'" in source
    assert _tables(engine) == {
        "account",
        "account_history",
        "alembic_version",
    }
