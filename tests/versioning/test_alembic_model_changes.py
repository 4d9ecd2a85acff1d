"""Alembic autogenerate follows changes to versioned models into their history tables."""

from __future__ import annotations

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.operations import Operations, ops
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from chrononaut import Versioned

from .test_alembic import _flat, _run_rendered, _summary, _upgrade_ops


def test_adding_column_to_model_autogenerates_it_on_history_table_too(engine, session, Base):
    class Account(Base, Versioned):
        __tablename__ = "account"
        id: Mapped[int] = mapped_column(primary_key=True)
        name: Mapped[str] = mapped_column(sa.String(80))

    Base.metadata.create_all(engine)
    session.add(Account(id=1, name="Ada"))
    session.commit()
    session.get(Account, 1).name = "Ada L."
    session.commit()
    session.close()

    class NextBase(DeclarativeBase):
        pass

    class NextAccount(NextBase, Versioned):
        __tablename__ = "account"
        id: Mapped[int] = mapped_column(primary_key=True)
        name: Mapped[str] = mapped_column(sa.String(80))
        nickname: Mapped[str] = mapped_column(sa.String(40), index=True, server_default="-")

    with engine.begin() as connection:
        upgrade_ops = _upgrade_ops(connection, NextBase.metadata)
        assert _summary(upgrade_ops) == {
            ("add_column", "account", "nickname"),
            ("create_index", "account", "ix_account_nickname"),
            ("add_column", "account_history", "nickname"),
            ("create_index", "account_history", "ix_account_history_nickname"),
        }
        history_add = next(
            op
            for op in _flat(upgrade_ops)
            if isinstance(op, ops.AddColumnOp) and op.table_name == "account_history"
        )
        assert history_add.column.nullable
        assert history_add.column.server_default is None
        _run_rendered(connection, upgrade_ops)

    account = session.get(NextAccount, 1)
    assert (account.nickname, account.version) == ("-", 1)
    account.nickname = "countess"
    session.commit()
    assert [(h.version, h.name, h.nickname) for h in account.versions()] == [
        (0, "Ada", None),
        (1, "Ada L.", "-"),
    ]


def test_renaming_history_table_autogenerates_drop_and_create(engine, Base):
    class Account(Base, Versioned):
        __tablename__ = "account"
        id: Mapped[int] = mapped_column(primary_key=True)
        name: Mapped[str] = mapped_column(sa.String(80))

    Base.metadata.create_all(engine)

    class NextBase(DeclarativeBase):
        pass

    class NextAccount(NextBase, Versioned):
        __tablename__ = "account"
        __chrononaut_tablename__ = "account_audit"
        id: Mapped[int] = mapped_column(primary_key=True)
        name: Mapped[str] = mapped_column(sa.String(80))

    with engine.connect() as connection:
        upgrade_ops = _upgrade_ops(connection, NextBase.metadata)

    assert _summary(upgrade_ops) == {
        ("drop_table", "account_history"),
        ("create_table", "account_audit"),
        ("drop_index", "account_history", "ix_account_history_changed"),
        ("drop_index", "account_history", "ix_account_history_transaction_id"),
        ("create_index", "account_audit", "ix_account_audit_changed"),
        ("create_index", "account_audit", "ix_account_audit_transaction_id"),
    }


def test_removing_column_from_model_autogenerates_drop_on_history_table_too(engine, Base):
    class Account(Base, Versioned):
        __tablename__ = "account"
        id: Mapped[int] = mapped_column(primary_key=True)
        name: Mapped[str] = mapped_column(sa.String(80))
        nickname: Mapped[str | None] = mapped_column(sa.String(40))

    Base.metadata.create_all(engine)

    class NextBase(DeclarativeBase):
        pass

    class NextAccount(NextBase, Versioned):
        __tablename__ = "account"
        id: Mapped[int] = mapped_column(primary_key=True)
        name: Mapped[str] = mapped_column(sa.String(80))

    with engine.connect() as connection:
        upgrade_ops = _upgrade_ops(connection, NextBase.metadata)

    assert _summary(upgrade_ops) == {
        ("DropColumnOp",),
    }
    dropped = {
        (op.table_name, op.column_name)
        for op in _flat(upgrade_ops)
        if isinstance(op, ops.DropColumnOp)
    }
    assert dropped == {("account", "nickname"), ("account_history", "nickname")}


def test_hand_edited_history_rename_keeps_rows_once_indexes_follow(engine, session, Base):
    class Account(Base, Versioned):
        __tablename__ = "account"
        id: Mapped[int] = mapped_column(primary_key=True)
        name: Mapped[str] = mapped_column(sa.String(80), index=True)

    Base.metadata.create_all(engine)
    session.add(Account(id=1, name="Ada"))
    session.commit()
    session.get(Account, 1).name = "Ada L."
    session.commit()
    session.close()

    class NextBase(DeclarativeBase):
        pass

    class NextAccount(NextBase, Versioned):
        __tablename__ = "account"
        __chrononaut_tablename__ = "account_audit"
        id: Mapped[int] = mapped_column(primary_key=True)
        name: Mapped[str] = mapped_column(sa.String(80), index=True)

    with engine.begin() as connection:
        op = Operations(MigrationContext.configure(connection))
        op.rename_table("account_history", "account_audit")
        after_table_rename = _summary(_upgrade_ops(connection, NextBase.metadata))
        for suffix in ("name", "changed", "transaction_id"):
            op.execute(
                f"ALTER INDEX ix_account_history_{suffix} RENAME TO ix_account_audit_{suffix}"
            )
        diff = compare_metadata(MigrationContext.configure(connection), NextBase.metadata)

    assert after_table_rename == {
        ("drop_index", "account_audit", "ix_account_history_name"),
        ("create_index", "account_audit", "ix_account_audit_name"),
        ("drop_index", "account_audit", "ix_account_history_changed"),
        ("create_index", "account_audit", "ix_account_audit_changed"),
        ("drop_index", "account_audit", "ix_account_history_transaction_id"),
        ("create_index", "account_audit", "ix_account_audit_transaction_id"),
    }
    assert diff == []
    account = session.get(NextAccount, 1)
    assert [(h.version, h.name) for h in account.versions()] == [(0, "Ada")]
