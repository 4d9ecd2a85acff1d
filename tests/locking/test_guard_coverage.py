"""What the flush guard covers: many records, long-lived sessions, suppressed history.

Each session has its own connection, so its own PostgreSQL backend and
transaction: lock conflicts between them are real.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from chrononaut import RecordLockedError, Versioned, acting_as, suppress_versioning

#: More records than the guard's old per-transaction try-lock budget (256) allowed.
MANY = 300


@pytest.fixture
def Item(Base, engine, session_factory):
    class Item(Base, Versioned):
        __tablename__ = "item"
        id: Mapped[int] = mapped_column(primary_key=True)
        title: Mapped[str]

    Base.metadata.create_all(engine)
    with session_factory() as session:
        session.add_all(Item(id=i, title="draft") for i in range(1, MANY + 1))
        session.commit()
    return Item


def write_in_flushes(session, Item, ids, title, per_flush=16):
    items = {item.id: item for item in session.scalars(sa.select(Item).where(Item.id.in_(ids)))}
    for start in range(0, len(ids), per_flush):
        for item_id in ids[start : start + per_flush]:
            items[item_id].title = title
        session.flush()


def titles(session_factory, Item):
    with session_factory() as session:
        return dict(session.execute(sa.select(Item.id, Item.title)).all())


def test_a_transaction_writing_more_records_than_its_lock_budget_can_write_them_again(
    session_factory, Item
):
    with session_factory() as session:
        write_in_flushes(session, Item, list(range(1, MANY + 1)), "first")
        # Record 1 was written (and guarded) early in this transaction; writing it
        # again, past the budget, must not take the transaction's own guard for a lock.
        write_in_flushes(session, Item, [1, MANY], "second")
        session.commit()
    stored = titles(session_factory, Item)
    assert (stored[1], stored[2], stored[MANY]) == ("second", "first", "second")


def test_each_new_transaction_of_a_long_lived_session_guards_its_writes_again(
    session_factory, Item
):
    with session_factory() as writer, session_factory() as locker:
        for round_ in range(3):  # 600 records written over three transactions
            write_in_flushes(writer, Item, list(range(1, 201)), f"round {round_}")
            writer.commit()
        write_in_flushes(writer, Item, [MANY], "written")  # flushed, not committed
        with (
            pytest.raises(RecordLockedError) as exc_info,
            locker.get(Item, MANY).lock(nowait=True),
        ):
            pass
        assert exc_info.value.record == f"Item(id={MANY})"
        locker.rollback()
        writer.commit()
        with locker.get(Item, MANY).lock(nowait=True):
            assert locker.get(Item, MANY).title == "written"


def test_writes_under_suppress_versioning_are_refused_for_a_record_another_transaction_locked(
    session_factory, Item
):
    with session_factory() as holder, session_factory() as writer, holder.get(Item, 1).lock():
        item = writer.get(Item, 1)
        with suppress_versioning():
            item.title = "unversioned"
            with pytest.raises(RecordLockedError) as exc_info:
                writer.flush()
        assert exc_info.value.record == "Item(id=1)"
        assert "locked by another transaction" in str(exc_info.value)
        writer.rollback()
    assert titles(session_factory, Item)[1] == "draft"


@pytest.mark.parametrize("write", ["update", "delete"])
def test_writes_under_suppress_versioning_are_refused_for_a_record_another_actor_leased(
    session_factory, Item, write
):
    with session_factory() as session:
        with acting_as("alice"):
            lease = session.get(Item, 1).acquire_lease()
            session.commit()
        with acting_as("bob"), suppress_versioning():
            item = session.get(Item, 1)
            if write == "update":
                item.title = "unversioned"
            else:
                session.delete(item)
            with pytest.raises(RecordLockedError) as exc_info:
                session.flush()
        assert (exc_info.value.record, exc_info.value.owner, exc_info.value.expires_at) == (
            "Item(id=1)",
            "alice",
            lease.expires_at,
        )
        session.rollback()
    assert titles(session_factory, Item)[1] == "draft"


def test_a_lock_taken_in_an_earlier_transaction_does_not_exempt_a_later_write(
    session_factory, Item
):
    with session_factory() as writer, session_factory() as holder:
        with writer.get(Item, 1).lock():  # the writer held it, then committed
            pass
        with holder.get(Item, 1).lock():
            writer.get(Item, 1).title = "later"
            with pytest.raises(RecordLockedError) as exc_info:
                writer.flush()
            assert exc_info.value.record == "Item(id=1)"
            writer.rollback()
    assert titles(session_factory, Item)[1] == "draft"
