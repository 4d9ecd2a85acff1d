"""``flask chrononaut`` for an app whose tables all live in one schema (``MetaData(schema=...)``).

``locks`` and ``leases break`` read and write ``app.chrononaut_leases``;
``history`` of a changed record needs guard.py's lease query to name the
schema-qualified table (the update's flush runs the guard).
"""

from __future__ import annotations

from datetime import timezone

import pytest
import sqlalchemy as sa

from chrononaut import Versioned, VersionedSQLAlchemy, acting_as

SCHEMA = "app"


@pytest.fixture
def schema_db(app):
    engine = sa.create_engine(app.config["SQLALCHEMY_DATABASE_URI"], poolclass=sa.pool.NullPool)
    with engine.begin() as connection:
        connection.exec_driver_sql(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
        connection.exec_driver_sql(f"CREATE SCHEMA {SCHEMA}")
    engine.dispose()
    db = VersionedSQLAlchemy(app, metadata=sa.MetaData(schema=SCHEMA))

    class Document(db.Model, Versioned):
        __tablename__ = "cli_schema_document"
        id = db.Column(db.Integer, primary_key=True)
        title = db.Column(db.String(80))

    with app.app_context():
        db.create_all()
        db.session.add_all([Document(id=1, title="Draft"), Document(id=2, title="Other")])
        db.session.commit()
        yield db, Document
        db.session.remove()
        for engine in db.engines.values():
            engine.dispose()


def run(app, *args: str):
    return app.test_cli_runner().invoke(args=["chrononaut", *args])


def utc(moment) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def test_locks_lists_the_leases_of_the_schema(app, schema_db):
    db, Document = schema_db
    with acting_as("alice"):
        lease = db.session.get(Document, 1).acquire_lease()
        db.session.commit()
    result = run(app, "locks")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[:2] == [
        "Leases:",
        f"  Document(id=1)  owner alice  until {utc(lease.expires_at)}  "
        f"(since {utc(lease.acquired_at)})",
    ]


def test_leases_break_removes_the_lease_from_the_schema(app, schema_db):
    db, Document = schema_db
    with acting_as("alice"):
        lease = db.session.get(Document, 1).acquire_lease()
        db.session.commit()
    result = run(app, "leases", "break", "Document", "1")
    assert result.exit_code == 0, result.output
    assert result.output == (
        f"Broke alice's lease on Document(id=1) (it ran until {utc(lease.expires_at)}).\n"
    )
    rows = db.session.execute(sa.text(f"SELECT count(*) FROM {SCHEMA}.chrononaut_leases"))
    assert rows.scalar_one() == 0
    assert "  none" in run(app, "locks").output


def test_history_of_a_record_changed_in_the_schema(app, schema_db):
    db, Document = schema_db
    with acting_as("bob"):
        db.session.get(Document, 2).title = "Renamed"
        db.session.commit()
    result = run(app, "history", "Document", "2")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0] == "Document(id=2): version 1, 1 earlier version(s)"
    assert "    title: 'Other' -> 'Renamed'" in result.output
