"""Upgrading a database made before changesets and creation events, with Alembic."""

from __future__ import annotations

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.operations import Operations, ops
from sqlalchemy.orm import Mapped, mapped_column, sessionmaker

import chrononaut
from chrononaut import Versioned
from tests.versioning.test_alembic import _flat, _upgrade_ops

OLD_SCHEMA = [
    "DROP TABLE chrononaut_creations",
    "DROP INDEX ix_account_history_changed",
    "DROP INDEX ix_account_history_transaction_id",
    "ALTER TABLE account_history DROP COLUMN transaction_id",
]


def test_autogenerate_adds_the_column_indexes_and_creations_table(engine, Base):
    class Account(Base, Versioned):
        __tablename__ = "account"
        id: Mapped[int] = mapped_column(primary_key=True)
        name: Mapped[str]

    Base.metadata.create_all(engine)
    factory = sessionmaker(engine)
    chrononaut.listen(factory)
    with factory() as session:
        session.add(Account(id=1, name="a"))
        session.commit()
        session.get(Account, 1).name = "b"
        session.commit()
    with engine.begin() as connection:
        for statement in OLD_SCHEMA:  # as an earlier release created it
            connection.exec_driver_sql(statement)

    with engine.begin() as connection:
        upgrade_ops = _upgrade_ops(connection, Base.metadata)
        summary = {
            (type(op).__name__, getattr(op, "table_name", None), getattr(op, "index_name", None))
            for op in _flat(upgrade_ops)
        }
        assert summary == {
            ("CreateTableOp", "chrononaut_creations", None),
            ("CreateIndexOp", "chrononaut_creations", "ix_chrononaut_creations_record"),
            ("CreateIndexOp", "chrononaut_creations", "ix_chrononaut_creations_span"),
            ("CreateIndexOp", "chrononaut_creations", "ix_chrononaut_creations_changed"),
            ("CreateIndexOp", "chrononaut_creations", "ix_chrononaut_creations_transaction_id"),
            ("AddColumnOp", "account_history", None),
            ("CreateIndexOp", "account_history", "ix_account_history_changed"),
            ("CreateIndexOp", "account_history", "ix_account_history_transaction_id"),
        }
        operations = Operations(MigrationContext.configure(connection))
        for op in _flat(upgrade_ops):
            if isinstance(op, ops.AddColumnOp):
                # docs/migrations.md: add it without its default, then set the default,
                # or every existing row would get the migration's transaction id.
                default = op.column.server_default
                op.column.server_default = None
                operations.invoke(op)
                operations.alter_column(op.table_name, op.column.name, server_default=default.arg)
            else:
                operations.invoke(op)
        assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []

    with factory() as session:
        session.get(Account, 1).name = "c"
        session.commit()
        rows = session.execute(
            sa.text("SELECT version, transaction_id FROM account_history ORDER BY version")
        ).all()
        assert rows[0] == (0, None)  # written before the upgrade: no changeset known
        assert rows[1][1] is not None
        feed = chrononaut.activity(session, models=[Account])
        assert [(e.operation, e.version) for e in feed] == [("update", 2), ("update", 1)]
        assert feed[1].transaction_id is None
        assert feed[0].columns == ("name",) and feed[1].columns == ("name",)
