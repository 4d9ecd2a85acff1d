"""An application whose tables all live in one schema: ``MetaData(schema="app")``.

The leases table follows its MetaData into ``app``, and every statement that
names it (lease SQL, the flush guard, the CLI) names ``app.chrononaut_leases``;
the search_path stays the default, so an unqualified name would miss it. The
guard tests need guard.py's lease query to name the table with
``leases.qualified_name``; so does every versioned UPDATE or DELETE, whose
flush runs the guard.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from chrononaut import RecordLockedError, Versioned, acting_as
from chrononaut.locking import keys, leases

from .procs_advisory import CTX, WAIT, children
from .procs_schema import SCHEMA, Memo, hold_memo_lock


class Quoted(DeclarativeBase):
    metadata = sa.MetaData(schema="My App")


class Note(Quoted, Versioned):
    """In a schema whose name needs quoting."""

    __tablename__ = "schema_note"
    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str | None]


def recreate_schemas(engine: sa.Engine) -> None:
    with engine.begin() as connection:
        for name in (SCHEMA, "My App"):
            connection.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
            connection.exec_driver_sql(f'CREATE SCHEMA "{name}"')


@pytest.fixture
def url(engine, clean_database):
    recreate_schemas(engine)
    Memo.metadata.create_all(engine)
    Quoted.metadata.create_all(engine)
    return clean_database


@pytest.fixture
def memo(url, session):
    session.add(Memo(id=1, title="draft"))
    session.commit()
    return session.get(Memo, 1)


def lease_rows(engine, schema=SCHEMA):
    with engine.connect() as connection:
        rows = connection.execute(
            sa.text(f'SELECT table_name, record_key, owner FROM "{schema}".chrononaut_leases')
        )
        return [tuple(row) for row in rows]


def memo_rows(engine):
    with engine.connect() as connection:
        current = connection.execute(sa.text("SELECT id, title, version FROM app.schema_memo"))
        history = connection.execute(
            sa.text("SELECT id, title, version FROM app.schema_memo_history ORDER BY version")
        )
        return [tuple(row) for row in current], [tuple(row) for row in history]


def test_the_leases_table_lives_in_the_metadatas_schema(url, engine):
    table = leases.leases_table(Memo.metadata)
    assert table.fullname == "app.chrononaut_leases"
    assert leases.find_leases_table(Memo.metadata) is table
    assert leases.qualified_name(table) == "app.chrononaut_leases"
    assert leases.qualified_name(leases.leases_table(Quoted.metadata)) == (
        '"My App".chrononaut_leases'
    )
    inspector = sa.inspect(engine)
    assert inspector.has_table("chrononaut_leases", schema=SCHEMA)
    assert inspector.has_table("chrononaut_leases", schema="My App")
    assert not inspector.has_table("chrononaut_leases")  # nothing in public
    assert keys.table_name(Memo) == "app.schema_memo"


def test_leases_are_acquired_renewed_released_and_broken_in_the_schema(memo, session, engine):
    with acting_as("alice"):
        first = memo.acquire_lease(ttl=timedelta(minutes=5))
        session.commit()
        renewed = memo.acquire_lease(ttl=timedelta(minutes=10))
        session.commit()
    assert renewed.acquired_at == first.acquired_at
    assert renewed.expires_at > first.expires_at
    assert memo.lease == renewed
    assert lease_rows(engine) == [("app.schema_memo", "[1]", "alice")]
    with acting_as("bob"):
        with pytest.raises(RecordLockedError) as exc_info:
            memo.acquire_lease()
        assert exc_info.value.owner == "alice"
        session.rollback()
        with pytest.raises(RecordLockedError):
            memo.release_lease()
        session.rollback()
        assert memo.acquire_lease(force=True).owner == "bob"
        session.commit()
    assert lease_rows(engine) == [("app.schema_memo", "[1]", "bob")]
    with acting_as("bob"):
        memo.release_lease()
        session.commit()
    assert memo.lease is None
    assert lease_rows(engine) == []


def test_a_lease_in_a_schema_needing_quotes(url, session, engine):
    note = Note(id=1, title="n")
    session.add(note)
    session.commit()
    with acting_as("alice"):
        note.acquire_lease()
        session.commit()
    assert lease_rows(engine, "My App") == [("My App.schema_note", "[1]", "alice")]
    with acting_as("alice"):
        note.release_lease()
        session.commit()
    assert lease_rows(engine, "My App") == []


def test_lock_works_in_the_schema(memo, session, engine):
    with memo.lock(nowait=True):
        assert memo.title == "draft"


# --- the guard's lease query (needs guard.py to use leases.qualified_name) ------------------


def test_versioned_updates_and_deletes_write_history_in_the_schema(memo, session, engine):
    with acting_as("alice"):
        memo.title = "final"
        session.commit()
        session.delete(memo)
        session.commit()
    current, history = memo_rows(engine)
    assert current == []
    assert history == [(1, "draft", 0), (1, "final", 1)]


def test_the_guard_refuses_a_write_to_a_leased_record_in_the_schema(memo, session, engine):
    with acting_as("alice"):
        memo.acquire_lease()
        session.commit()
    with acting_as("bob"):
        memo.title = "bob's"
        with pytest.raises(RecordLockedError) as exc_info:
            session.commit()
        assert (exc_info.value.record, exc_info.value.owner) == ("Memo(id=1)", "alice")
        session.rollback()
    with acting_as("alice"):
        memo.title = "alice's"
        session.commit()
    assert memo_rows(engine)[0] == [(1, "alice's", 1)]


def test_the_guard_refuses_a_write_to_a_record_locked_in_the_schema(url, memo, session, engine):
    acquired, release, result = CTX.Event(), CTX.Event(), CTX.Queue()
    with children((hold_memo_lock, (url, 1, acquired, release, result))):
        assert acquired.wait(WAIT)
        memo.title = "under the lock"
        with pytest.raises(RecordLockedError) as exc_info:
            session.commit()
        assert exc_info.value.record == "Memo(id=1)"
        session.rollback()
        release.set()
        assert result.get(timeout=WAIT) == {"event": "committed"}
    assert memo_rows(engine)[0] == [(1, "draft", 0)]
