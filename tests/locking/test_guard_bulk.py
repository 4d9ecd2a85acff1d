"""Bulk statements obey the same guard as flushes: others' ``lock()`` and leases refuse them.

``update(Model)``, ``delete(Model)``, ``Query.update()`` and ``Query.delete()`` on
records another transaction holds under ``lock()``, or another actor has leased,
raise :class:`~chrononaut.RecordLockedError` and write nothing. Each session has
its own connection, so its own backend and transaction: the conflicts are real.
"""

from __future__ import annotations

import time

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, sessionmaker

import chrononaut
from chrononaut import LockTimeoutError, RecordLockedError, Settings, Versioned, acting_as

FORMS = ["update", "delete", "query-update", "query-delete"]


@pytest.fixture
def Item(Base, engine, session_factory):
    class Item(Base, Versioned):
        __tablename__ = "item"
        id: Mapped[int] = mapped_column(primary_key=True)
        colour: Mapped[str]

    Base.metadata.create_all(engine)
    with session_factory() as session:
        session.add_all([Item(id=1, colour="blue"), Item(id=2, colour="blue")])
        session.add(Item(id=3, colour="green"))
        session.commit()
    return Item


def run(session, Item, form, colour="blue"):
    if form == "update":
        stmt = sa.update(Item).where(Item.colour == colour).values(colour="red")
        return session.execute(stmt).rowcount
    if form == "delete":
        return session.execute(sa.delete(Item).where(Item.colour == colour)).rowcount
    query = session.query(Item).filter(Item.colour == colour)
    return query.update({"colour": "red"}) if form == "query-update" else query.delete()


def stored(engine, Item):
    """((id, colour, version) of every row, number of history rows), on a fresh connection."""
    history = Item.__history_mapper__.local_table
    with engine.connect() as connection:
        rows = connection.execute(
            sa.select(
                Item.__table__.c.id, Item.__table__.c.colour, Item.__table__.c.version
            ).order_by(Item.__table__.c.id)
        )
        count = connection.execute(sa.select(sa.func.count()).select_from(history)).scalar()
        return [tuple(r) for r in rows], count


UNTOUCHED = ([(1, "blue", 0), (2, "blue", 0), (3, "green", 0)], 0)


@pytest.mark.parametrize("shared", [False, True], ids=["exclusive", "shared"])
@pytest.mark.parametrize("form", FORMS)
def test_a_bulk_statement_on_a_record_another_transaction_locked_raises_and_writes_nothing(
    session_factory, engine, Item, form, shared
):
    with session_factory() as holder, session_factory() as writer:
        with holder.get(Item, 2).lock(shared=shared):
            with pytest.raises(RecordLockedError) as exc_info:
                run(writer, Item, form)
            assert type(exc_info.value) is RecordLockedError
            assert (exc_info.value.record, exc_info.value.owner) == ("Item(id=2)", None)
            assert "locked by another transaction" in str(exc_info.value)
            writer.rollback()
            assert stored(engine, Item) == UNTOUCHED
            if not shared:
                holder.get(Item, 2).colour = "mine"  # the holder's write never conflicts
        writer.commit()
    expected = "blue" if shared else "mine"
    assert stored(engine, Item)[0][1] == (2, expected, 0 if shared else 1)


@pytest.mark.parametrize("form", FORMS)
def test_a_bulk_statement_on_a_record_another_actor_leased_raises_and_writes_nothing(
    session_factory, engine, Item, form
):
    with session_factory() as session:
        with acting_as("alice"):
            lease = session.get(Item, 1).acquire_lease()
            session.commit()
        with acting_as("bob"), pytest.raises(RecordLockedError) as exc_info:
            run(session, Item, form)
        error = exc_info.value
        assert (error.record, error.owner, error.expires_at) == (
            "Item(id=1)",
            "alice",
            lease.expires_at,
        )
        assert "being edited by alice" in str(error)
        session.rollback()
        assert stored(engine, Item) == UNTOUCHED
        with acting_as("alice"):
            assert run(session, Item, form) == 2  # the lease holder may
            session.commit()


def test_a_bulk_statement_passes_locks_and_leases_on_records_it_does_not_match(
    session_factory, engine, Item
):
    with session_factory() as holder, session_factory() as writer:
        with acting_as("alice"):
            holder.get(Item, 3).acquire_lease()
            holder.commit()
        with holder.get(Item, 3).lock(), acting_as("bob"):
            assert run(writer, Item, "update") == 2
            writer.commit()
    assert stored(engine, Item) == ([(1, "red", 1), (2, "red", 1), (3, "green", 0)], 2)


def test_a_bulk_statement_inside_its_own_lock_block_is_not_refused(session_factory, engine, Item):
    with (
        session_factory() as session,
        chrononaut.lock(session.get(Item, 1), session.get(Item, 2)),
    ):
        assert run(session, Item, "update") == 2
    assert stored(engine, Item)[0][:2] == [(1, "red", 1), (2, "red", 1)]


def test_with_lock_wait_a_bulk_statement_waits_then_times_out(engine, Item, session_factory):
    waiting = sessionmaker(engine)
    chrononaut.listen(waiting, settings=Settings(lock_wait=0.3))
    with session_factory() as holder, waiting() as writer:
        with holder.get(Item, 2).lock():
            started = time.monotonic()
            with pytest.raises(LockTimeoutError) as exc_info:
                run(writer, Item, "update")
            assert time.monotonic() - started >= 0.25
            assert exc_info.value.record == "Item(id=2)"
            writer.rollback()
        assert run(writer, Item, "update") == 2  # the holder is gone: no wait
        writer.commit()
    assert stored(engine, Item)[1] == 2
