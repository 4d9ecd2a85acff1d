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
from . import keys, optimistic

#: Key in ``Session.info``: how many ``lock()`` blocks are open on the session.
DEPTH_KEY = "chrononaut_lock_depth"
#: Key in ``Session.info``: (transaction, advisory keys it took through ``lock()``).
HELD_KEY = "chrononaut_held_keys"

_LOCK_NOT_AVAILABLE = "55P03"
_DEADLOCK_DETECTED = "40P01"


def _pgcode(error: sa.exc.DBAPIError) -> str | None:
    return getattr(error.orig, "pgcode", None)


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


def holders_key(table: str, identity: tuple[Any, ...]) -> int:
    """The advisory key ``lock(shared=True)`` holders also hold, in shared mode.

    The flush guard probes it to find shared holders without being slowed by
    (or slowing) other writers; see :mod:`chrononaut.locking.guard`.
    """
    return keys.advisory_key(f"{table}#shared", identity)


class _Savepoint:
    """A savepoint of ``connection``, rolled back (undoing its locks) or released."""

    def __init__(self, connection: sa.Connection, name: str) -> None:
        self.connection, self.name = connection, name
        connection.exec_driver_sql(f"SAVEPOINT {name}")

    def release(self) -> None:
        self.connection.exec_driver_sql(f"RELEASE SAVEPOINT {self.name}")

    def undo(self) -> None:
        self.connection.exec_driver_sql(
            f"ROLLBACK TO SAVEPOINT {self.name}; RELEASE SAVEPOINT {self.name}"
        )


def _translate(error: sa.exc.DBAPIError, described: str, timeout: float | None) -> Exception:
    """The chrononaut error for a lock wait PostgreSQL ended, or ``error`` itself."""
    code = _pgcode(error)
    if code == _LOCK_NOT_AVAILABLE and timeout is not None:
        return LockTimeoutError(
            f"Timed out after {timeout}s waiting for the lock on {described}.", record=described
        )
    if code == _LOCK_NOT_AVAILABLE:
        return RecordLockedError(
            f"{described} is being written by another transaction.", record=described
        )
    if code == _DEADLOCK_DETECTED:
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
) -> None:
    """Take ``locks`` ((key, description, shared)) in key order, waiting or not."""
    for key, described, shared in sorted(locks):
        suffix = "_shared" if shared else ""
        if nowait:
            if not _execute(connection, f"SELECT pg_try_advisory_xact_lock{suffix}(:k)", k=key):
                raise RecordLockedError(
                    f"{described} is locked by another transaction.", record=described
                )
            continue
        try:
            _execute(connection, f"SELECT pg_advisory_xact_lock{suffix}(:k)", k=key)
        except sa.exc.OperationalError as error:
            raise _translate(error, described, timeout) from error


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


def acquire(
    connection: sa.Connection,
    advisory_keys: list[int],
    describe: dict[int, str],
    nowait: bool = False,
    timeout: float | None = None,
    shared: bool = False,
) -> None:
    """Take the advisory locks on ``advisory_keys`` in ascending order.

    With ``nowait`` or ``timeout``, a failure releases what this call took and
    leaves the caller's transaction usable.
    """
    locks = [(key, describe[key], shared) for key in set(advisory_keys)]
    if not nowait and timeout is None:
        _take(connection, locks, nowait, timeout)
        return
    savepoint = _Savepoint(connection, "chrononaut_lock")
    try:
        with _bounded(connection, timeout):
            _take(connection, locks, nowait, timeout)
    except BaseException:
        savepoint.undo()
        raise
    savepoint.release()


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


def _has_writer(session: Session, cls: type[Any]) -> Any:
    """Whether the ``xmax`` of ``cls``'s base table row is set: a writer (or locker) of the
    row, committed, rolled back or in progress."""
    mapper = sa.inspect(cls)
    table = mapper.base_mapper.local_table
    quoted = session.get_bind(mapper=mapper).dialect.identifier_preparer.format_table(table)
    return sa.literal_column(f"{quoted}.xmax::text <> '0'", sa.Boolean)


def _refresh(
    session: Session, records: list[Any], identities: dict[int, tuple[Any, ...]], lock: Any = None
) -> bool:
    """Reload ``records`` (one SELECT per class); True if a row has a writer (``xmax``)."""
    by_class: dict[type[Any], list[Any]] = {}
    for obj in records:
        by_class.setdefault(type(obj), []).append(obj)
    written = False
    for cls, objs in by_class.items():
        mapper = sa.inspect(cls)
        pk = [mapper.get_property_by_column(c).class_attribute for c in mapper.primary_key]
        wanted = [identities[id(o)] for o in objs]
        where = pk[0].in_([w[0] for w in wanted]) if len(pk) == 1 else sa.tuple_(*pk).in_(wanted)
        stmt = (
            sa.select(cls, _has_writer(session, cls))
            .where(where)
            .execution_options(populate_existing=True)
        )
        if lock is not None:
            stmt = stmt.with_for_update(**lock)
        found = {}
        for obj, has_writer in session.execute(stmt, execution_options={"autoflush": False}):
            found[id(obj)] = obj
            written = written or bool(has_writer)
        for obj in objs:
            if id(obj) not in found:
                identity = identities[id(obj)]
                raise optimistic.conflict_for(session, cls, identity, obj.version)
    return written


def _lock_and_refresh(
    session: Session,
    records: list[Any],
    identities: dict[int, tuple[Any, ...]],
    locks: list[tuple[int, str, bool]],
    nowait: bool,
    timeout: float | None,
) -> None:
    connection = session.connection(bind_arguments={"mapper": sa.inspect(type(records[0]))})
    with _bounded(connection, timeout):
        _take(connection, locks, nowait, timeout)
        if not _refresh(session, records, identities):
            return
        # A writer that passed the flush guard before this lock was taken has not
        # committed yet: wait for it with a row lock, held only in a savepoint, and
        # read again.
        barrier = _Savepoint(connection, "chrononaut_barrier")
        try:
            _refresh(session, records, identities, lock={"read": True, "nowait": nowait})
        except sa.exc.OperationalError as error:
            raise _translate(
                error, keys.describe(records[0], identities[id(records[0])]), timeout
            ) from error
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
    if timeout is not None and (not isinstance(timeout, int | float) or timeout <= 0):
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
    if nowait and timeout is not None:
        raise ValueError("pass nowait=True or timeout=..., not both")
    session = sa.inspect(records[0]).session
    if session is None:
        raise ValueError(f"{records[0]!r} is not attached to a session")
    identities: dict[int, tuple[Any, ...]] = {}
    locks: list[tuple[int, str, bool]] = []
    for obj in records:
        identity = _check_lockable(session, obj)
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
