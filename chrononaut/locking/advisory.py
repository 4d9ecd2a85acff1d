"""Pessimistic record locks on PostgreSQL transaction-level advisory locks.

``with record.lock():`` takes ``pg_advisory_xact_lock`` on the record's key in
the session's transaction, refreshes the record, and commits on leaving the
block. A transaction-level lock is released only by COMMIT or ROLLBACK, so it
never leaks into a pooled connection and works behind PgBouncer in
transaction pooling mode; the next waiter runs after the commit and reads the
committed data.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from ..async_check import refuse_async
from ..exceptions import ChrononautException, DeadlockError, LockTimeoutError, RecordLockedError
from ..settings import check_seconds
from ..sqlstate import DEADLOCK_DETECTED, LOCK_NOT_AVAILABLE, sqlstate
from . import keys, optimistic
from .records import check_lockable

#: Key in ``Session.info``: how many ``lock()`` blocks are open on the session.
DEPTH_KEY = "chrononaut_lock_depth"
#: Key in ``Session.info``: (transaction, advisory keys it took through ``lock()``).
HELD_KEY = "chrononaut_held_keys"


def lock_depth(session: Session) -> int:
    return session.info.get(DEPTH_KEY, 0)


def held_keys(session: Session) -> frozenset[int]:
    """Advisory keys the session's current transaction took through ``lock()``.

    The flush guard does not probe them: a backend's own lock must never refuse
    its own write (PostgreSQL refuses a try-lock that would jump a waiter's
    queue, even to the holder).
    """
    transaction, keys_ = session.info.get(HELD_KEY, (None, frozenset()))
    return keys_ if transaction is session.get_transaction() else frozenset()


def _note_held(session: Session, taken: list[int]) -> None:
    session.info[HELD_KEY] = (session.get_transaction(), held_keys(session) | frozenset(taken))


def _execute(connection: sa.Connection, sql: str, **params: Any) -> Any:
    return connection.execute(sa.text(sql), params).scalar()


def holders_key(table: str, identity: tuple[Any, ...]) -> int:
    """The advisory key ``lock(shared=True)`` holders also hold, in shared mode.

    The flush guard probes it to find shared holders without being slowed by
    (or slowing) other writers; see :mod:`chrononaut.locking.guard`.
    """
    return keys.advisory_key(holders_table(table), identity)


def holders_table(table: str) -> str:
    """The name :func:`holders_key` hashes in place of ``table``."""
    return f"{table}#shared"


@functools.lru_cache(maxsize=256)
def writers_key(table: str) -> int:
    """The advisory key every guarded writer of ``table`` holds, in shared mode, until it
    commits: ``lock()`` probes it to learn whether a write it must wait for may be in
    flight (see :mod:`chrononaut.locking.guard`)."""
    return keys.advisory_key(f"{table}#writers", ())


class _Savepoint:
    """A savepoint of ``connection``, rolled back (undoing its locks) or released."""

    def __init__(self, connection: sa.Connection, name: str) -> None:
        self.connection, self.name = connection, name
        connection.exec_driver_sql(f"SAVEPOINT {name}")

    def release(self) -> None:
        self.connection.exec_driver_sql(f"RELEASE SAVEPOINT {self.name}")

    def undo(self) -> None:
        rollback, release = f"ROLLBACK TO SAVEPOINT {self.name}", f"RELEASE SAVEPOINT {self.name}"
        if self.connection.dialect.driver == "asyncpg":
            # asyncpg prepares every statement, and a prepared statement holds one command
            self.connection.exec_driver_sql(rollback)
            self.connection.exec_driver_sql(release)
        else:  # psycopg2 and psycopg send a parameterless pair in one round trip
            self.connection.exec_driver_sql(f"{rollback}; {release}")


def _translate(error: sa.exc.DBAPIError, described: str, timeout: float | None) -> Exception:
    """The chrononaut error for a lock wait PostgreSQL ended, or ``error`` itself."""
    code = sqlstate(error)
    if code == LOCK_NOT_AVAILABLE and timeout is not None:
        return LockTimeoutError(
            f"Timed out after {timeout}s waiting for the lock on {described}.", record=described
        )
    if code == LOCK_NOT_AVAILABLE:
        return RecordLockedError(
            f"{described} is being written by another transaction.", record=described
        )
    if code == DEADLOCK_DETECTED:
        return DeadlockError(
            f"Deadlock while locking {described}; PostgreSQL aborted the transaction: roll "
            "back and retry.",
            record=described,
        )
    return error


def _take(
    connection: sa.Connection,
    locks: list[tuple[int, str, bool]],
    nowait: bool,
    timeout: float | None,
    then: str | None = None,
) -> Any:
    """Take ``locks`` ((key, description, shared)) in key order, waiting or not.

    ``then``, a boolean SQL expression, is evaluated in the statement that takes
    the last lock, once that lock is granted; its value is returned.
    """
    ordered = sorted(locks)
    result = None
    for index, (key, described, shared) in enumerate(ordered):
        suffix = "_shared" if shared else ""
        after = then if then is not None and index == len(ordered) - 1 else "true"
        if nowait:
            result = _execute(
                connection,
                f"SELECT CASE WHEN pg_try_advisory_xact_lock{suffix}(:k) THEN {after} END",
                k=key,
            )
            if result is None:
                raise RecordLockedError(
                    f"{described} is locked by another transaction.", record=described
                )
            continue
        try:
            result = _execute(
                connection,
                f"SELECT CASE WHEN pg_advisory_xact_lock{suffix}(:k)::text = '' THEN {after} END",
                k=key,
            )
        except sa.exc.DBAPIError as error:  # asyncpg's lock errors are not OperationalError
            translated = _translate(error, described, timeout)
            if translated is error:
                raise
            raise translated from error
    return result


@contextmanager
def _bounded(connection: sa.Connection, timeout: float | None) -> Iterator[None]:
    """Run the block with ``lock_timeout`` = ``timeout`` (if given), then restore it."""
    if timeout is None:
        yield
        return
    previous = _execute(connection, "SELECT current_setting('lock_timeout')")
    milliseconds = max(1, round(timeout * 1000))
    _execute(connection, "SELECT set_config('lock_timeout', :v, true)", v=f"{milliseconds}ms")
    yield
    _execute(connection, "SELECT set_config('lock_timeout', :v, true)", v=previous)


def wait_for_holders(
    connection: sa.Connection,
    described: dict[int, str],
    holders: dict[int, str],
    timeout: float,
) -> None:
    """Wait up to ``timeout`` until no ``lock()`` holds the records, taking no lock.

    ``described`` maps record keys, ``holders`` their shared-holders keys, to
    descriptions. Each key is taken in the mode that waits for ``lock()``
    holders (shared for record keys, exclusive for shared-holders keys) inside
    a savepoint that is then rolled back, releasing them all.
    """
    locks = [(key, text, True) for key, text in described.items()]
    locks += [(key, text, False) for key, text in holders.items()]
    savepoint = _Savepoint(connection, "chrononaut_wait")
    try:
        with _bounded(connection, timeout):
            _take(connection, locks, False, timeout)
    finally:
        savepoint.undo()


def _writers_busy(tables: set[str]) -> str:
    """SQL: whether some other transaction may have an uncommitted write to ``tables``: a
    guarded writer holds a table's writers key (or another ``lock()`` probes it right now).
    Each probe takes a session-level lock only to release it at once."""
    probes = []
    for table in sorted(tables):
        key = writers_key(table)
        probes.append(
            f"CASE WHEN pg_try_advisory_lock({key}) THEN NOT pg_advisory_unlock({key}) "
            "ELSE true END"
        )
    return "(" + " OR ".join(probes) + ")"


def _refresh(session: Session, records: list[Any], lock: Any = None) -> None:
    """Reload ``records`` from the database (``lock``: a row-locking read)."""
    for obj in records:
        try:
            session.refresh(obj, with_for_update=lock)
        except sa.exc.InvalidRequestError:
            if sa.inspect(obj).key is None:
                raise
            identity = keys.identity_of(obj)
            raise optimistic.conflict_for(session, type(obj), identity, obj.version) from None


def _lock_and_refresh(
    session: Session,
    records: list[Any],
    identities: dict[int, tuple[Any, ...]],
    locks: list[tuple[int, str, bool]],
    nowait: bool,
    timeout: float | None,
) -> None:
    connection = session.connection(bind_arguments={"mapper": sa.inspect(type(records[0]))})
    tables = {keys.table_name(type(obj)) for obj in records}
    with _bounded(connection, timeout):
        busy = _take(connection, locks, nowait, timeout, then=_writers_busy(tables))
        if not busy:
            _refresh(session, records)
            return
        # A writer of the table is in flight: if it wrote these records (it passed
        # the flush guard before this lock was taken), wait for it with a row lock,
        # held only in a savepoint, while reading.
        barrier = _Savepoint(connection, "chrononaut_barrier")
        try:
            _refresh(session, records, lock={"read": True, "nowait": nowait})
        except sa.exc.DBAPIError as error:
            described = keys.describe(records[0], identities[id(records[0])])
            translated = _translate(error, described, timeout)
            if translated is error:
                raise
            raise translated from error
        finally:
            barrier.undo()


@contextmanager
def lock(
    *records: Any, nowait: bool = False, timeout: float | None = None, shared: bool = False
) -> Iterator[None]:
    """Lock ``records`` for the rest of the block, then commit.

    Locks are taken in a deterministic order (by key), so two callers locking
    the same set never deadlock. After locking, each record is refreshed from
    the database, after any write to it that another transaction has not
    committed yet. Leaving the block commits the session, which releases the
    locks; an exception rolls back and propagates. Nested blocks commit only at
    the outermost one. ``nowait=True`` raises :class:`RecordLockedError` at once
    when another transaction holds a lock (or has an uncommitted write of a
    record); ``timeout=seconds`` raises :class:`LockTimeoutError` after about
    that long; ``shared=True`` takes a shared lock (many shared holders, no
    exclusive one)::

        with chrononaut.lock(source, target):
            source.balance -= 10
            target.balance += 10
    """
    if not records:
        raise ValueError("lock() needs at least one record")
    refuse_async(
        records[0], "record.lock() / chrononaut.lock()", "async with chrononaut.aio.lock(...)"
    )
    if timeout is not None:
        timeout = check_seconds(timeout, "timeout")
    if not isinstance(nowait, bool) or not isinstance(shared, bool):
        raise TypeError(f"nowait and shared must be True or False, got {nowait!r}, {shared!r}")
    if nowait and timeout is not None:
        raise ValueError("pass nowait=True or timeout=..., not both")
    session = sa.inspect(records[0]).session
    identities: dict[int, tuple[Any, ...]] = {}
    locks: list[tuple[int, str, bool]] = []
    for obj in records:
        identity = check_lockable(session, obj)
        identities[id(obj)] = identity
        table, text = keys.table_name(type(obj)), keys.describe(obj, identity)
        locks.append((keys.advisory_key(table, identity), text, shared))
        if shared:
            locks.append((holders_key(table, identity), text, True))
    locks = list(dict.fromkeys(locks))
    unique = list({id(o): o for o in records}.values())
    if nowait or timeout is not None:
        connection = session.connection(bind_arguments={"mapper": sa.inspect(type(records[0]))})
        savepoint = _Savepoint(connection, "chrononaut_lock")
        try:
            _lock_and_refresh(session, unique, identities, locks, nowait, timeout)
        except BaseException:
            savepoint.undo()
            raise
        savepoint.release()
    else:
        _lock_and_refresh(session, unique, identities, locks, nowait, timeout)
    _note_held(session, [key for key, _, _ in locks])
    outermost = lock_depth(session) == 0
    session.info[DEPTH_KEY] = lock_depth(session) + 1
    try:
        yield
    except BaseException:
        session.info[DEPTH_KEY] = lock_depth(session) - 1
        if outermost:
            session.info.pop(DEPTH_KEY, None)
            session.rollback()
        raise
    session.info[DEPTH_KEY] = lock_depth(session) - 1
    if outermost:
        session.info.pop(DEPTH_KEY, None)
        try:
            session.commit()
        except BaseException:
            session.rollback()
            raise


def is_locked(obj: Any) -> bool:
    """Whether another transaction holds ``obj``'s advisory lock, shared or exclusive."""
    session = sa.inspect(obj).session
    if session is None:
        raise ValueError(f"{obj!r} is not attached to a session")
    classid, objid = keys.split_key(
        keys.advisory_key(keys.table_name(type(obj)), keys.identity_of(obj))
    )
    connection = session.connection(bind_arguments={"mapper": sa.inspect(type(obj))})
    return bool(
        _execute(
            connection,
            "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' "
            "AND classid::bigint = :c AND objid::bigint = :o AND objsubid = 1 AND granted "
            "AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
            "AND pid IS DISTINCT FROM pg_backend_pid())",
            c=classid,
            o=objid,
        )
    )


def refuse_inside_lock(session: Session, action: str) -> None:
    """Raise if ``action`` (commit or rollback) is called inside a ``lock()`` block."""
    if lock_depth(session) > 0:
        raise ChrononautException(
            f"session.{action}() inside a lock() block would release the lock before the "
            "block ends; leave the block to commit, or raise to roll back."
        )
