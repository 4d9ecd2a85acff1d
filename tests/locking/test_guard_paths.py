"""The guard on uncommitted writes, large flushes and untracked-only writes.

Each session here has its own connection, so its own PostgreSQL backend and
transaction: lock conflicts between them are real.
"""

from __future__ import annotations

import time

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, sessionmaker

import chrononaut
from chrononaut import LockTimeoutError, RecordLockedError, Settings, Versioned, acting_as


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
        writer.flush()  # an uncommitted write: lock() must not read around it
        with (
            pytest.raises(RecordLockedError) as exc_info,
            locker.get(Item, 1).lock(nowait=True),
        ):
            pass
        assert type(exc_info.value) is RecordLockedError
        assert exc_info.value.record == "Item(id=1)"
        assert (exc_info.value.owner, exc_info.value.expires_at) == (None, None)
        writer.commit()
        with locker.get(Item, 1).lock(nowait=True):
            assert locker.get(Item, 1).title == "written"  # refreshed after the lock


@pytest.mark.parametrize("shared", [False, True], ids=["exclusive", "shared"])
def test_large_flushes_hold_one_lock_and_meet_a_lock_holder(session_factory, Item, shared):
    count = 300  # past guard.PROBE_LIMIT: the guard reads the lock table
    _seed(session_factory, Item, count)
    with (
        session_factory() as holder,
        session_factory() as writer,
        holder.get(Item, count).lock(shared=shared),
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
                "SELECT mode, count(*) FROM pg_locks WHERE locktype = 'advisory' "
                "AND pid = pg_backend_pid() GROUP BY mode"
            )
        ).all()
        # The probes hold nothing past their statement; one shared lock marks the
        # table as written, whatever the number of records.
        assert [tuple(row) for row in held] == [("ShareLock", 1)]
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
            lease = setup.get(Counter, 1).acquire_lease()
            setup.commit()
    with session_factory() as holder, session_factory() as viewer:
        counter = viewer.get(Counter, 1)
        with holder.get(Counter, 1).lock():
            counter.views = Counter.views + 1  # untracked: outside concurrency control
            viewer.commit()
            with acting_as("alice"):  # alice's own lease lets her by: only the lock refuses
                counter.title = "tracked"
                with pytest.raises(RecordLockedError) as locked:
                    viewer.commit()
            viewer.rollback()
        counter.views = Counter.views + 1  # the lock is gone, alice's lease is not
        viewer.commit()
        counter.title = "tracked"  # by nobody: alice's lease refuses it
        with pytest.raises(RecordLockedError) as leased:
            viewer.commit()
        viewer.rollback()
        assert viewer.get(Counter, 1).views == 2
        assert viewer.get(Counter, 1).version == 0

    assert type(locked.value) is RecordLockedError
    assert locked.value.record == "Counter(id=1)"
    assert (locked.value.owner, locked.value.expires_at) == (None, None)
    assert str(locked.value) == (
        "Counter(id=1) is locked by another transaction (lock()); not writing it."
    )
    assert type(leased.value) is RecordLockedError
    assert leased.value.record == "Counter(id=1)"
    assert (leased.value.owner, leased.value.expires_at) == ("alice", lease.expires_at)
    assert str(leased.value) == (
        f"Counter(id=1) is being edited by alice until "
        f"{leased.value.expires_at:%Y-%m-%d %H:%M:%S %Z}; not writing it."
    )


def test_with_lock_wait_untracked_only_writes_neither_wait_nor_time_out(Base, engine):
    class Counter(Base, Versioned):
        __tablename__ = "counter"
        __chrononaut_untracked__ = ["views"]
        id: Mapped[int] = mapped_column(primary_key=True)
        title: Mapped[str]
        views: Mapped[int] = mapped_column(default=0)

    Base.metadata.create_all(engine)
    waiting = sessionmaker(engine)
    chrononaut.listen(waiting, settings=Settings(lock_wait=2))
    with waiting() as setup:
        setup.add(Counter(id=1, title="t"))
        setup.commit()
    with waiting() as holder, waiting() as viewer, holder.get(Counter, 1).lock():
        counter = viewer.get(Counter, 1)
        counter.views = 1
        started = time.monotonic()
        viewer.commit()  # the guard never checks untracked-only writes
        assert time.monotonic() - started < 1.5
        counter.title = "tracked"
        with pytest.raises(LockTimeoutError):  # a tracked change waits, then times out
            viewer.commit()
        viewer.rollback()
    with waiting() as check:
        assert (check.get(Counter, 1).views, check.get(Counter, 1).version) == (1, 0)


def test_a_probe_meeting_another_writers_probe_is_not_taken_for_a_shared_lock(
    session_factory, Item, engine
):
    # A writer probes a record's shared-holders key with a try-lock it releases at
    # once; here another connection holds that key exclusively, as a writer probing
    # the same record at the same instant would. Only a shared lock() holder refuses.
    from chrononaut.locking import advisory, keys

    _seed(session_factory, Item, 1)
    holder_key = advisory.holders_key(keys.table_name(Item), (1,))
    with engine.connect() as prober, session_factory() as writer:
        prober.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": holder_key})
        writer.get(Item, 1).title = "written"
        writer.commit()  # not refused: nobody holds the record under lock()
        prober.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": holder_key})
        prober.commit()
    with session_factory() as check:
        assert check.get(Item, 1).title == "written"
