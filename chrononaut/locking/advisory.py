"""Pessimistic record locks on PostgreSQL transaction-level advisory locks.

``with record.lock():`` takes ``pg_advisory_xact_lock`` on the record's key in
the session's transaction, refreshes the record, and commits on leaving the
block. A transaction-level lock is released only by COMMIT or ROLLBACK, so it
never leaks into a pooled connection and works behind PgBouncer in
transaction pooling mode; the next waiter runs after the commit and reads the
committed data.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from ..exceptions import ChrononautException, DeadlockError, LockTimeoutError, RecordLockedError
from . import keys

#: Key in ``Session.info``: how many ``lock()`` blocks are open on the session.
DEPTH_KEY = "chrononaut_lock_depth"

_LOCK_NOT_AVAILABLE = "55P03"
_DEADLOCK_DETECTED = "40P01"


def _pgcode(error: sa.exc.DBAPIError) -> str | None:
    return getattr(error.orig, "pgcode", None)


def lock_depth(session: Session) -> int:
    return session.info.get(DEPTH_KEY, 0)


def _check_lockable(session: Session, obj: Any) -> tuple[Any, ...]:
    if getattr(type(obj), "__chrononaut__", None) is None:
        raise TypeError(f"lock() takes Versioned records, got {obj!r}")
    state = sa.inspect(obj)
    if state.session is not session:
        raise ValueError("lock() takes records of one session; merge them into it first")
    if state.pending or state.transient:
        raise ChrononautException(
            f"{type(obj).__name__} instance is not in the database yet; commit it before "
            "locking it."
        )
    if session.is_modified(obj):
        raise ChrononautException(
            f"{keys.describe(obj, keys.identity_of(obj))} has unflushed changes, which the "
            "refresh after locking would discard; lock it before changing it."
        )
    return keys.identity_of(obj)


def _execute(connection: sa.Connection, sql: str, **params: Any) -> Any:
    return connection.execute(sa.text(sql), params).scalar()


def acquire(
    connection: sa.Connection,
    advisory_keys: list[int],
    describe: dict[int, str],
    nowait: bool = False,
    timeout: float | None = None,
    shared: bool = False,
) -> None:
    """Take the advisory locks on ``advisory_keys`` in ascending order."""
    suffix = "_shared" if shared else ""
    ordered = sorted(set(advisory_keys))
    if not nowait and timeout is None:
        for key in ordered:
            try:
                _execute(connection, f"SELECT pg_advisory_xact_lock{suffix}(:k)", k=key)
            except sa.exc.OperationalError as error:
                if _pgcode(error) == _DEADLOCK_DETECTED:
                    raise DeadlockError(
                        f"Deadlock while locking {describe[key]}; PostgreSQL aborted the "
                        "transaction: roll back and retry.",
                        record=describe[key],
                    ) from error
                raise
        return
    # nowait and timeout run in a savepoint: a failure releases what this call
    # took and leaves the caller's transaction usable.
    connection.exec_driver_sql("SAVEPOINT chrononaut_lock")
    try:
        if nowait:
            for key in ordered:
                if not _execute(
                    connection, f"SELECT pg_try_advisory_xact_lock{suffix}(:k)", k=key
                ):
                    raise RecordLockedError(
                        f"{describe[key]} is locked by another transaction.", record=describe[key]
                    )
        else:
            assert timeout is not None
            previous = _execute(connection, "SELECT current_setting('lock_timeout')")
            milliseconds = max(1, round(timeout * 1000))
            _execute(
                connection, "SELECT set_config('lock_timeout', :v, true)", v=f"{milliseconds}ms"
            )
            for key in ordered:
                try:
                    _execute(connection, f"SELECT pg_advisory_xact_lock{suffix}(:k)", k=key)
                except sa.exc.OperationalError as error:
                    if _pgcode(error) == _LOCK_NOT_AVAILABLE:
                        raise LockTimeoutError(
                            f"Timed out after {timeout}s waiting for the lock on {describe[key]}.",
                            record=describe[key],
                        ) from error
                    if _pgcode(error) == _DEADLOCK_DETECTED:
                        raise DeadlockError(
                            f"Deadlock while locking {describe[key]}; roll back and retry.",
                            record=describe[key],
                        ) from error
                    raise
            _execute(connection, "SELECT set_config('lock_timeout', :v, true)", v=previous)
    except BaseException:
        connection.exec_driver_sql("ROLLBACK TO SAVEPOINT chrononaut_lock")
        connection.exec_driver_sql("RELEASE SAVEPOINT chrononaut_lock")
        raise
    connection.exec_driver_sql("RELEASE SAVEPOINT chrononaut_lock")


@contextmanager
def lock(
    *records: Any, nowait: bool = False, timeout: float | None = None, shared: bool = False
) -> Iterator[None]:
    """Lock ``records`` for the rest of the block, then commit.

    Locks are taken in a deterministic order (by key), so two callers locking
    the same set never deadlock. After locking, each record is refreshed from
    the database. Leaving the block commits the session, which releases the
    locks; an exception rolls back and propagates. Nested blocks commit only at
    the outermost one. ``nowait=True`` raises :class:`RecordLockedError` at once
    when another transaction holds a lock; ``timeout=seconds`` raises
    :class:`LockTimeoutError` after about that long; ``shared=True`` takes a
    shared lock (many shared holders, no exclusive one)::

        with chrononaut.lock(source, target):
            source.balance -= 10
            target.balance += 10
    """
    if not records:
        raise ValueError("lock() needs at least one record")
    if timeout is not None and (not isinstance(timeout, int | float) or timeout <= 0):
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
    if nowait and timeout is not None:
        raise ValueError("pass nowait=True or timeout=..., not both")
    session = sa.inspect(records[0]).session
    if session is None:
        raise ValueError(f"{records[0]!r} is not attached to a session")
    described: dict[int, str] = {}
    for obj in records:
        identity = _check_lockable(session, obj)
        key = keys.advisory_key(keys.table_name(type(obj)), identity)
        described[key] = keys.describe(obj, identity)
    connection = session.connection(bind_arguments={"mapper": sa.inspect(type(records[0]))})
    acquire(connection, list(described), described, nowait=nowait, timeout=timeout, shared=shared)
    for obj in records:
        session.refresh(obj)
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
