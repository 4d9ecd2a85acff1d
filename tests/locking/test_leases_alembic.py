"""The leases table comes with the models: create_all and Alembic autogenerate."""

from __future__ import annotations

import sqlalchemy as sa
from alembic.autogenerate import produce_migrations
from alembic.migration import MigrationContext
from alembic.operations import ops
from sqlalchemy.orm import Mapped, mapped_column

from chrononaut import Versioned


def test_autogenerate_creates_the_leases_table_once_for_all_models(Base, engine):
    class Page(Base, Versioned):
        __tablename__ = "page"
        id: Mapped[int] = mapped_column(primary_key=True)

    class Note(Base, Versioned):
        __tablename__ = "note"
        id: Mapped[str] = mapped_column(primary_key=True)

    with engine.connect() as connection:
        migration = produce_migrations(MigrationContext.configure(connection), Base.metadata)
    created = {
        op.table_name: op.to_table()
        for op in migration.upgrade_ops.ops
        if isinstance(op, ops.CreateTableOp)
    }

    assert set(created) == {
        *("page", "page_history", "note", "note_history"),
        "chrononaut_leases",
        "chrononaut_creations",  # creation events: tests/versioning/test_creations.py
    }
    leases = created["chrononaut_leases"]
    assert [c.name for c in leases.primary_key.columns] == ["table_name", "record_key"]
    assert {c.name: c.nullable for c in leases.columns} == {
        "table_name": False,
        "record_key": False,
        "owner": False,
        "acquired_at": False,
        "expires_at": False,
    }
    assert isinstance(leases.c.expires_at.type, sa.DateTime)
    assert leases.c.expires_at.type.timezone is True
