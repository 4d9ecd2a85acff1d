"""The guard's two ways of checking locks: trying them, and reading the lock table.

Each session here has its own connection, so its own PostgreSQL backend and
transaction: lock conflicts between them are real.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from chrononaut import RecordLockedError, Versioned, acting_as
from chrononaut.locking import guard


@pytest.fixture
def Item(Base, engine):
    class Item(Base, Versioned):
        __tablename__ = "item"
        id: Mapped[int] = mapped_column(primary_key=True)
        title: Mapped[str]

    Base.metadata.create_all(engine)
    return Item


def _seed(session_factory, Item, count):
    with session_factory() as session:
        session.add_all(Item(id=i, title="draft") for i in range(1, count + 1))
        session.commit()


def test_a_written_record_stays_locked_until_the_write_commits(session_factory, Item):
    _seed(session_factory, Item, 1)
    with session_factory() as writer, session_factory() as locker:
        writer.get(Item, 1).title = "written"
        writer.flush()  # the guard took the record's lock
        with pytest.raises(RecordLockedError), locker.get(Item, 1).lock(nowait=True):
            pass
        writer.commit()
        with locker.get(Item, 1).lock(nowait=True):
            assert locker.get(Item, 1).title == "written"  # refreshed after the lock


def test_large_flushes_read_the_lock_table_and_take_no_locks(session_factory, Item):
    count = guard.TRY_LOCK_LIMIT + 10
    _seed(session_factory, Item, count)
    with (
        session_factory() as holder,
        session_factory() as writer,
        holder.get(Item, count).lock(shared=True),
    ):
        for item in writer.scalars(sa.select(Item)):
            item.title = "bulk"
        with pytest.raises(RecordLockedError) as exc_info:
            writer.flush()
        assert exc_info.value.record == f"Item(id={count})"
        writer.rollback()
        for item in writer.scalars(sa.select(Item).where(Item.id < count)):
            item.title = "bulk"
        writer.flush()
        held = writer.execute(
            sa.text(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                "AND pid = pg_backend_pid()"
            )
        ).scalar()
        assert held == 0  # the lock table was read, no lock taken
        writer.commit()
    with session_factory() as check:
        titles = check.scalars(sa.select(Item.title).order_by(Item.id)).all()
    assert titles == ["bulk"] * (count - 1) + ["draft"]


def test_untracked_only_writes_pass_the_guard(Base, engine, session_factory):
    class Counter(Base, Versioned):
        __tablename__ = "counter"
        __chrononaut_untracked__ = ["views"]
        id: Mapped[int] = mapped_column(primary_key=True)
        title: Mapped[str]
        views: Mapped[int] = mapped_column(default=0)

    Base.metadata.create_all(engine)
    with session_factory() as setup:
        setup.add(Counter(id=1, title="t"))
        setup.commit()
        with acting_as("alice"):
            setup.get(Counter, 1).acquire_lease()
            setup.commit()
    with session_factory() as holder, session_factory() as viewer:
        with holder.get(Counter, 1).lock():
            counter = viewer.get(Counter, 1)
            counter.views = Counter.views + 1  # untracked: outside concurrency control
            viewer.commit()
            counter.title = "tracked"  # tracked: the lock and the lease both refuse it
            with pytest.raises(RecordLockedError):
                viewer.commit()
            viewer.rollback()
        assert viewer.get(Counter, 1).views == 1
        assert viewer.get(Counter, 1).version == 0
