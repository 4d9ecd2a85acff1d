"""The history table chrononaut builds for a model, checked in the real catalog.

Options that change the schema by mistake (misspellings, clashes) are in
``test_options.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from chrononaut import HistoryBase, Versioned

ARCHIVE = "chrononaut_archive"


def columns_of(engine: sa.Engine, table: str, schema: str | None = None) -> dict[str, Any]:
    return {c["name"]: c for c in sa.inspect(engine).get_columns(table, schema=schema)}


def indexes_of(engine: sa.Engine, table: str) -> set[tuple[tuple[str, ...], bool]]:
    return {
        (tuple(ix["column_names"]), ix["unique"]) for ix in sa.inspect(engine).get_indexes(table)
    }


def catalog_type(engine: sa.Engine, table: str, column: str) -> tuple[str, Any]:
    with engine.connect() as connection:
        row = connection.execute(
            sa.text(
                "SELECT data_type, datetime_precision FROM information_schema.columns "
                "WHERE table_schema = 'public' AND table_name = :t AND column_name = :c"
            ),
            {"t": table, "c": column},
        ).one()
    return row.data_type, row.datetime_precision


@pytest.fixture
def drop_archive_schema(database_url: str) -> Iterator[str]:
    """Name of a schema the test creates; dropped before and after the test."""
    engine = sa.create_engine(database_url, poolclass=sa.pool.NullPool)
    drop = f"DROP SCHEMA IF EXISTS {ARCHIVE} CASCADE"
    with engine.begin() as connection:
        connection.exec_driver_sql(drop)
    yield ARCHIVE
    with engine.begin() as connection:
        connection.exec_driver_sql(drop)
    engine.dispose()


def test_classic_model_history_table_is_created_by_create_all(db):
    class User(db.Model, Versioned):
        __tablename__ = "appuser"
        __chrononaut_hidden__ = ["password"]
        __chrononaut_untracked__ = ["login_count"]
        id = db.Column(db.Integer, primary_key=True)
        name = db.Column(db.String(80))
        password = db.Column(db.Text)
        login_count = db.Column(db.Integer)

    assert db.metadata.tables["appuser_history"] is User.__chrononaut__.history_table
    db.create_all()

    assert {"appuser", "appuser_history"} <= set(sa.inspect(db.engine).get_table_names())
    history_cls = User.__history_mapper__.class_
    assert history_cls.__name__ == "UserHistory"
    assert issubclass(history_cls, HistoryBase)
    assert User.__history_mapper__.local_table is db.metadata.tables["appuser_history"]
    assert set(columns_of(db.engine, "appuser_history")) == {
        "id",
        "name",
        "version",
        "changed",
        "change_info",
        "transaction_id",
    }


def test_mapped_model_history_table_is_created_by_create_all(Base, engine):
    class Account(Base, Versioned):
        __tablename__ = "account"
        __chrononaut_hidden__ = ["password"]
        __chrononaut_untracked__ = ["login_count"]
        id: Mapped[int] = mapped_column(primary_key=True)
        email: Mapped[str]
        password: Mapped[str]
        login_count: Mapped[int | None]

    assert Base.metadata.tables["account_history"] is Account.__chrononaut__.history_table
    Base.metadata.create_all(engine)

    assert {"account", "account_history"} <= set(sa.inspect(engine).get_table_names())
    assert Account.__history_mapper__.class_.__name__ == "AccountHistory"
    assert set(columns_of(engine, "account_history")) == {
        "id",
        "email",
        "version",
        "changed",
        "change_info",
        "transaction_id",
    }


def test_classic_model_without_tablename_gets_history_of_generated_name(db):
    class StockItem(db.Model, Versioned):
        id = db.Column(db.Integer, primary_key=True)
        label = db.Column(db.String(40))

    db.create_all()

    assert StockItem.__table__.name == "stock_item"
    assert "stock_item_history" in sa.inspect(db.engine).get_table_names()
    assert StockItem.__history_mapper__.class_.__name__ == "StockItemHistory"


def test_chrononaut_tablename_names_the_history_table(Base, engine):
    class Document(Base, Versioned):
        __tablename__ = "document"
        __chrononaut_tablename__ = "document_versions"
        id: Mapped[int] = mapped_column(primary_key=True)
        title: Mapped[str]

    Base.metadata.create_all(engine)

    tables = set(sa.inspect(engine).get_table_names())
    assert "document_versions" in tables
    assert "document_history" not in tables
    assert Document.__history_mapper__.local_table.name == "document_versions"


def test_classic_chrononaut_tablename_names_the_history_table(db):
    class Document(db.Model, Versioned):
        __tablename__ = "document"
        __chrononaut_tablename__ = "document_audit"
        id = db.Column(db.Integer, primary_key=True)
        title = db.Column(db.String(40))

    db.create_all()
    db.session.add(Document(id=1, title="draft"))
    db.session.commit()
    db.session.get(Document, 1).title = "final"
    db.session.commit()

    with db.engine.connect() as connection:
        rows = connection.exec_driver_sql("SELECT title, version FROM document_audit").all()
    assert rows == [("draft", 0)]


def test_history_table_lives_in_the_model_schema(Base, engine, session, drop_archive_schema):
    with engine.begin() as connection:
        connection.exec_driver_sql(f"CREATE SCHEMA {drop_archive_schema}")

    class Ledger(Base, Versioned):
        __tablename__ = "ledger"
        __table_args__ = {"schema": drop_archive_schema}
        id: Mapped[int] = mapped_column(primary_key=True)
        total: Mapped[int]

    history_table = Ledger.__chrononaut__.history_table
    assert history_table.schema == drop_archive_schema
    assert Base.metadata.tables[f"{drop_archive_schema}.ledger_history"] is history_table
    Base.metadata.create_all(engine)

    inspector = sa.inspect(engine)
    assert set(inspector.get_table_names(schema=drop_archive_schema)) == {
        "ledger",
        "ledger_history",
    }
    assert "ledger_history" not in inspector.get_table_names()
    session.add(Ledger(id=1, total=10))
    session.commit()
    session.get(Ledger, 1).total = 20
    session.commit()
    with engine.connect() as connection:
        rows = connection.exec_driver_sql(
            f"SELECT id, total, version FROM {drop_archive_schema}.ledger_history"
        ).all()
    assert rows == [(1, 10, 0)]


def test_classic_history_table_lives_in_the_model_schema(db, drop_archive_schema):
    with db.engine.begin() as connection:
        connection.exec_driver_sql(f"CREATE SCHEMA {drop_archive_schema}")

    class Ledger(db.Model, Versioned):
        __tablename__ = "ledger"
        __table_args__ = {"schema": drop_archive_schema}
        id = db.Column(db.Integer, primary_key=True)
        total = db.Column(db.Integer)

    db.create_all()

    assert Ledger.__chrononaut__.history_table.schema == drop_archive_schema
    assert "ledger_history" in sa.inspect(db.engine).get_table_names(schema=drop_archive_schema)


def test_history_primary_key_is_model_primary_key_plus_version(Base, engine):
    class Price(Base, Versioned):
        __tablename__ = "price"
        region: Mapped[str] = mapped_column(sa.String(8), primary_key=True)
        sku: Mapped[str] = mapped_column(sa.String(20), primary_key=True)
        cents: Mapped[int]

    Base.metadata.create_all(engine)

    pk = sa.inspect(engine).get_pk_constraint("price_history")
    assert set(pk["constrained_columns"]) == {"region", "sku", "version"}


def test_history_meta_columns_have_their_catalog_types(Base, engine):
    class Note(Base, Versioned):
        __tablename__ = "note"
        id: Mapped[int] = mapped_column(primary_key=True)
        body: Mapped[str]

    Base.metadata.create_all(engine)

    columns = columns_of(engine, "note_history")
    assert isinstance(columns["version"]["type"], sa.INTEGER)
    assert isinstance(columns["change_info"]["type"], JSONB)
    assert catalog_type(engine, "note_history", "changed") == ("timestamp with time zone", 6)
    assert catalog_type(engine, "note_history", "change_info") == ("jsonb", None)
    assert not any(columns[name]["nullable"] for name in ("version", "changed", "change_info"))


def test_classic_history_copies_drop_unique_constraints_and_defaults(db):
    class Product(db.Model, Versioned):
        __tablename__ = "product"
        __table_args__ = (sa.UniqueConstraint("vendor", "code"),)
        id = db.Column(db.Integer, primary_key=True)
        email = db.Column(db.String(80), unique=True)
        vendor = db.Column(db.String(20))
        code = db.Column(db.String(20))
        status = db.Column(db.String(10), default="new", onupdate="edited")
        created = db.Column(db.DateTime(timezone=True), server_default=sa.func.now())
        stock = db.Column(db.Integer, server_default=sa.text("5"), nullable=False)

    db.create_all()

    inspector = sa.inspect(db.engine)
    assert inspector.get_unique_constraints("product_history") == []
    assert not any(ix["unique"] for ix in inspector.get_indexes("product_history"))
    columns = columns_of(db.engine, "product_history")
    # Only the changeset id has a default: the writing transaction's id.
    defaults = {name: c["default"] for name, c in columns.items()}
    assert defaults.pop("transaction_id") == "((pg_current_xact_id())::text)::bigint"
    assert defaults == dict.fromkeys(defaults)
    history_table = db.metadata.tables["product_history"]
    assert all(c.default is None and c.onupdate is None for c in history_table.c)
    assert columns["stock"]["nullable"] is True


#: The activity feed's indexes, on every base history table (of a model keyed by ``id``).
FEED_INDEXES = {(("changed", "id", "version"), False), (("transaction_id",), False)}


def test_history_keeps_indexes_as_non_unique_copies(Base, engine):
    class Customer(Base, Versioned):
        __tablename__ = "customer"
        __table_args__ = (
            sa.Index("ix_customer_city_street", "city", "street"),
            sa.UniqueConstraint("country", "tax_id"),
        )
        id: Mapped[int] = mapped_column(primary_key=True)
        name: Mapped[str] = mapped_column(index=True)
        email: Mapped[str] = mapped_column(unique=True)
        city: Mapped[str]
        street: Mapped[str]
        country: Mapped[str]
        tax_id: Mapped[str]

    Base.metadata.create_all(engine)

    assert indexes_of(engine, "customer_history") == {
        *FEED_INDEXES,
        (("name",), False),
        (("email",), False),
        (("city", "street"), False),
        (("country", "tax_id"), False),
    }


def test_disable_indices_leaves_listed_columns_unindexed_in_history(db):
    class Customer(db.Model, Versioned):
        __tablename__ = "customer"
        __chrononaut_disable_indices__ = ["name", "email"]
        id = db.Column(db.Integer, primary_key=True)
        name = db.Column(db.String(80), index=True)
        email = db.Column(db.String(80), unique=True)
        city = db.Column(db.String(80), index=True)

    db.create_all()

    assert indexes_of(db.engine, "customer_history") == {*FEED_INDEXES, (("city",), False)}
    assert (("name",), False) in indexes_of(db.engine, "customer")


def test_model_table_gets_integer_version_column_starting_at_zero(Base, engine, session):
    class Task(Base, Versioned):
        __tablename__ = "task"
        id: Mapped[int] = mapped_column(primary_key=True)
        title: Mapped[str]
        due: Mapped[datetime | None]

    Base.metadata.create_all(engine)

    version = columns_of(engine, "task")["version"]
    assert isinstance(version["type"], sa.INTEGER)
    assert version["nullable"] is False
    task = Task(id=1, title="write tests")
    session.add(task)
    session.commit()
    assert task.version == 0
    with engine.begin() as connection:
        connection.exec_driver_sql("INSERT INTO task (id, title) VALUES (2, 'raw insert')")
        versions = connection.exec_driver_sql("SELECT id, version FROM task ORDER BY id").all()
    assert versions == [(1, 0), (2, 0)]


def test_classic_model_table_gets_version_column_zero_on_insert(db):
    class Task(db.Model, Versioned):
        __tablename__ = "task"
        id = db.Column(db.Integer, primary_key=True)
        title = db.Column(db.String(40))

    db.create_all()
    db.session.add(Task(id=1, title="write tests"))
    db.session.commit()

    assert isinstance(columns_of(db.engine, "task")["version"]["type"], sa.INTEGER)
    with db.engine.connect() as connection:
        assert connection.exec_driver_sql("SELECT version FROM task").scalar_one() == 0
