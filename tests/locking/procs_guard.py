"""Models and worker processes for the flush-guard and lease tests.

Children are started with the "spawn" context, so everything they run lives
here at module level; each child builds its own engine from the URL it is
given. Steps are ordered with events, barriers, queues and the database's own
lock state (``pg_locks``), never with sleeps.
"""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, sessionmaker

import chrononaut
from chrononaut import RecordLockedError, Versioned
from chrononaut.locking import keys

CTX = multiprocessing.get_context("spawn")
#: Longest a child waits for the parent's next signal before giving up.
CHILD_WAIT = 15.0
#: Longest the parent waits for a child's signal or exit.
PARENT_WAIT = 10.0


class Base(DeclarativeBase):
    pass


# Table names are unique to these tests: advisory locks of other databases on
# the same server show up in pg_locks too.
class GuardItem(Base, Versioned):
    __tablename__ = "guard_item"
    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(sa.String(80))


class GuardPair(Base, Versioned):
    __tablename__ = "guard_pair"
    region: Mapped[str] = mapped_column(sa.String(8), primary_key=True)
    number: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(sa.String(80))


class LeaseItem(Base, Versioned):
    __tablename__ = "lease_item"
    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(sa.String(80))


class LeasePair(Base, Versioned):
    __tablename__ = "lease_pair"
    region: Mapped[str] = mapped_column(sa.String(8), primary_key=True)
    number: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(sa.String(80))


class FlaskBase(DeclarativeBase):
    pass


class FlaskPage(FlaskBase, Versioned):
    """Plain-SQLAlchemy twin of the Flask tests' ``Page`` (same table, same lock key)."""

    __tablename__ = "flask_lease_page"
    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(sa.String(80))


MODELS: dict[str, type[Any]] = {
    cls.__name__: cls for cls in (GuardItem, GuardPair, LeaseItem, LeasePair, FlaskPage)
}


class _RollBack(Exception):
    """Raised inside a ``lock()`` block to leave it by rolling back."""


def advisory_parts(table: str, identity: tuple[Any, ...]) -> tuple[int, int]:
    """(classid, objid) under which pg_locks shows the record's advisory lock."""
    return keys.split_key(keys.advisory_key(table, identity))


WAITERS_SQL = (
    "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
    "AND classid::bigint = :hi AND objid::bigint = :lo AND objsubid = 1 "
    "AND database = (SELECT oid FROM pg_database WHERE datname = current_database()))"
)


@contextmanager
def _session(url: str) -> Iterator[Any]:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    factory = sessionmaker(engine)
    chrononaut.listen(factory)
    try:
        with factory() as session:
            yield session
    finally:
        engine.dispose()


def _wait(event: Any) -> None:
    if not event.wait(CHILD_WAIT):
        raise TimeoutError("the parent never signalled")


# --- advisory-lock holders ------------------------------------------------------


def hold_lock(
    url: str,
    model: str,
    ident: tuple[Any, ...],
    locked: Any,
    release: Any,
    title: str | None = None,
    shared: bool = False,
    commit: bool = True,
) -> None:
    """``lock()`` the record (optionally change its title), signal, wait, then leave."""
    with chrononaut.acting_as("holder"), _session(url) as session:
        record = session.get(MODELS[model], ident)
        try:
            with record.lock(shared=shared):
                if title is not None:
                    record.title = title
                    session.flush()
                locked.set()
                _wait(release)
                if not commit:
                    raise _RollBack
        except _RollBack:
            pass


def hold_lock_until_waiter(
    url: str, model: str, ident: tuple[Any, ...], locked: Any, report: Any, title: str | None
) -> None:
    """``lock()`` the record and commit as soon as another backend waits for the lock."""
    cls = MODELS[model]
    hi, lo = advisory_parts(keys.table_name(cls), ident)
    with chrononaut.acting_as("holder"), _session(url) as session:
        record = session.get(cls, ident)
        with record.lock():
            if title is not None:
                record.title = title
                session.flush()
            locked.set()
            deadline = time.monotonic() + CHILD_WAIT
            seen = False
            while not seen and time.monotonic() < deadline:
                seen = session.execute(sa.text(WAITERS_SQL), {"hi": hi, "lo": lo}).scalar()
                time.sleep(0.02)
            report.put(seen)


def hold_raw_advisory_lock(url: str, key: int, locked: Any, release: Any) -> None:
    """Hold ``pg_advisory_xact_lock(key)`` in whatever database ``url`` names."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.begin() as connection:
            connection.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": key})
            locked.set()
            _wait(release)
    finally:
        engine.dispose()


# --- lease holders and contenders ------------------------------------------------


def hold_lease(
    url: str,
    model: str,
    ident: tuple[Any, ...],
    owner: str,
    acquired: Any,
    finish: Any,
    commit: bool,
) -> None:
    """Acquire the lease, signal, wait, then commit or roll back."""
    with _session(url) as session:
        record = session.get(MODELS[model], ident)
        record.acquire_lease(owner=owner)
        acquired.set()
        _wait(finish)
        if commit:
            session.commit()
        else:
            session.rollback()


def _try_acquire(session: Any, record: Any, owner: str, report: Any) -> None:
    try:
        lease = record.acquire_lease(owner=owner)
    except RecordLockedError as error:
        session.rollback()
        report.put(("locked", owner, error.owner, error.expires_at, str(error)))
        return
    session.commit()
    report.put(("acquired", owner, lease.owner, lease.expires_at, None))


def acquire_lease_reporting_pid(
    url: str, model: str, ident: tuple[Any, ...], owner: str, report: Any
) -> None:
    """Report (backend pid, the lease this process sees), then try to acquire the lease."""
    with _session(url) as session:
        record = session.get(MODELS[model], ident)
        pid = session.execute(sa.text("SELECT pg_backend_pid()")).scalar()
        report.put((pid, record.lease))
        _try_acquire(session, record, owner, report)


def race_for_lease(
    url: str, model: str, ident: tuple[Any, ...], owner: str, barrier: Any, report: Any
) -> None:
    """Wait for every racer, then try to acquire the lease at once."""
    with _session(url) as session:
        record = session.get(MODELS[model], ident)
        barrier.wait(CHILD_WAIT)
        _try_acquire(session, record, owner, report)


# --- parent-side helpers ------------------------------------------------------------


@contextmanager
def child(target: Callable[..., Any], *args: Any, signals: tuple[Any, ...] = ()) -> Iterator[Any]:
    """Run ``target(*args)`` in a spawned process; on exit set ``signals`` and reap it.

    Setting the signals (release events) first lets a child finish even when
    the test failed half-way; a child that still hangs is terminated.
    """
    process = CTX.Process(target=target, args=args)
    process.start()
    try:
        yield process
    finally:
        for signal in signals:
            signal.set()
        process.join(PARENT_WAIT)
        if process.is_alive():
            process.terminate()
            process.join(5)


def joined_ok(process: Any) -> bool:
    """Wait for ``process`` and tell whether it exited cleanly."""
    process.join(PARENT_WAIT)
    return process.exitcode == 0


def wait_until(predicate: Callable[[], bool], timeout: float = PARENT_WAIT) -> bool:
    """Poll ``predicate`` (a database state) until it holds or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def backend_waits_for_lock(engine: sa.Engine, pid: int) -> bool:
    """Whether backend ``pid`` is blocked on a lock (any kind) right now."""
    with engine.connect() as connection:
        return bool(
            connection.execute(
                sa.text("SELECT EXISTS (SELECT 1 FROM pg_locks WHERE pid = :p AND NOT granted)"),
                {"p": pid},
            ).scalar()
        )
