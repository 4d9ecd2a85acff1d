"""The lock-aware flush guard.

A flush that writes (UPDATEs or DELETEs) versioned records checks, in the same
statement that inserts the flush's history rows, that no other transaction
holds one of those records under ``lock()`` and no other actor holds an
unexpired lease on one. If one does, the flush raises
:class:`~chrononaut.RecordLockedError`; like any failed flush it rolls back the
transaction, so nothing is written. The session's own locks never block it,
and the check needs no round trip of its own.

How locks are checked: the flush *tries* each written record's advisory lock
(``pg_try_advisory_xact_lock``, which never waits). It fails exactly when
another transaction holds that lock, shared or exclusive. Writers of one record
never trip over each other here: their UPDATEs already queued on the row lock,
which, like the advisory lock, is held until commit. Once taken, the lock makes
a later ``lock()`` of the record wait until this write commits, so the waiter
refreshes to the committed data. To bound the lock table, a transaction takes
at most ``TRY_LOCK_LIMIT`` such locks; past that, and for larger flushes, the
check reads ``pg_lock_status()`` instead, which takes no lock.

With ``CHRONONAUT_LOCK_WAIT`` > 0, the flush instead takes the records'
advisory locks before writing, waiting up to that long for their holders to
commit, and holds them until it commits.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapper, Session

from ..exceptions import RecordLockedError
from ..settings import settings_for
from . import advisory, keys, leases

#: Guard locks one transaction may take before the guard switches to reading the lock table.
TRY_LOCK_LIMIT = 256
_TAKEN_KEY = "chrononaut_guard_locks"

_TRY_LOCKS_SQL = (
    "SELECT 'lock' AS kind, k AS lock_key, NULL::text AS name, NULL::text AS record_key, "
    "NULL::text AS owner, NULL::timestamptz AS expires_at "
    "FROM unnest(CAST(:chrononaut_lock_keys AS bigint[])) AS k "
    "WHERE NOT pg_try_advisory_xact_lock(k)"
)
_LOCKS_SQL = (
    "SELECT 'lock' AS kind, ((l.classid::bigint << 32) | l.objid::bigint) AS lock_key, "
    "NULL::text AS name, NULL::text AS record_key, NULL::text AS owner, "
    "NULL::timestamptz AS expires_at "
    "FROM pg_lock_status() AS l "
    "WHERE l.locktype = 'advisory' AND l.objsubid = 1 AND l.granted "
    "AND l.database = :chrononaut_database AND l.pid <> pg_backend_pid() "
    "AND ((l.classid::bigint << 32) | l.objid::bigint) = ANY(:chrononaut_lock_keys)"
)
_LEASES_SQL = (
    "SELECT 'lease', NULL::bigint, table_name, record_key, owner, expires_at "
    f"FROM {leases.TABLE_NAME} "
    "WHERE table_name = ANY(:chrononaut_names) AND record_key = ANY(:chrononaut_keys) "
    "AND expires_at > statement_timestamp() AND owner IS DISTINCT FROM :chrononaut_actor"
)
_COLUMNS = (
    sa.column("kind", sa.Text),
    sa.column("lock_key", sa.BigInteger),
    sa.column("name", sa.Text),
    sa.column("record_key", sa.Text),
    sa.column("owner", sa.Text),
    sa.column("expires_at", sa.DateTime(timezone=True)),
)


class Target:
    """A versioned record a flush writes, with its lock and lease keys."""

    __slots__ = ("identity", "key", "mapper", "record_key", "table")

    def __init__(self, obj: Any) -> None:
        state = sa.inspect(obj)
        self.mapper = state.mapper
        self.identity = tuple(state.identity)
        self.table = state.mapper.base_mapper.local_table.fullname
        self.record_key = keys.record_key(self.identity)
        self.key = keys.advisory_key(self.table, self.identity)

    @property
    def described(self) -> str:
        return keys.describe(self.mapper.class_, self.identity)


@functools.lru_cache(maxsize=8)
def _query(sql: str) -> Any:
    """The parsed query for ``sql`` (parsing text costs more than binding it)."""
    return sa.text(sql).columns(*_COLUMNS)


def _database_oid(connection: sa.Connection) -> int:
    """This connection's database oid, asked once per DBAPI connection."""
    oid: Any = connection.info.get("chrononaut_database_oid")
    if oid is None:
        oid = connection.exec_driver_sql(
            "SELECT oid FROM pg_database WHERE datname = current_database()"
        ).scalar()
        connection.info["chrononaut_database_oid"] = oid
    return int(oid)


def _take_try_locks(session: Session, count: int) -> bool:
    """Whether this flush may try ``count`` more locks in the session's transaction."""
    transaction = session.get_transaction()
    owner, taken = session.info.get(_TAKEN_KEY, (None, 0))
    if owner is not transaction:
        taken = 0
    if taken + count > TRY_LOCK_LIMIT:
        return False
    session.info[_TAKEN_KEY] = (transaction, taken + count)
    return True


def _refuse(rows: list[Any], targets: list[Target]) -> None:
    """Raise for the first lock or lease found, if any."""
    for kind, lock_key, name, record_key, owner, expires_at in rows:
        if kind == "lock":
            target = next((t for t in targets if t.key == lock_key), None)
            if target is None:
                continue
            raise RecordLockedError(
                f"{target.described} is locked by another transaction (lock()); not writing it.",
                record=target.described,
            )
        target = next((t for t in targets if (t.table, t.record_key) == (name, record_key)), None)
        if target is None:
            continue  # the = ANY() filters matched another pair of names and keys
        raise RecordLockedError(
            f"{target.described} is being edited by {owner} until "
            f"{expires_at:%Y-%m-%d %H:%M:%S %Z}; not writing it.",
            record=target.described,
            owner=owner,
            expires_at=expires_at,
        )


class GuardRun:
    """The guard's queries for one flush's written records, and the judgement of their rows."""

    def __init__(self, session: Session, objects: list[Any]) -> None:
        self.targets = [Target(obj) for obj in objects]
        self.queries = _queries(session, self.targets)

    def verdict(self, rows: list[Any]) -> None:
        _refuse(rows, self.targets)


def _queries(
    session: Session, targets: list[Target]
) -> list[tuple[Mapper[Any], Any, dict[str, Any]]]:
    """One query per leases table (one in practice): (mapper to bind it, query, params).

    The query objects are constants, so SQLAlchemy compiles each once.
    """
    lock_wait = settings_for(session).lock_wait
    actor = leases.acting_owner(session)
    groups: dict[sa.Table, list[Target]] = defaultdict(list)
    for target in targets:
        groups[leases.leases_table(target.mapper.local_table.metadata)].append(target)
    out = []
    for group in groups.values():
        params: dict[str, Any] = {
            "chrononaut_names": sorted({t.table for t in group}),
            "chrononaut_keys": sorted({t.record_key for t in group}),
            "chrononaut_actor": actor,
        }
        sql = _LEASES_SQL
        if lock_wait == 0:
            lock_keys = sorted({t.key for t in group})
            params["chrononaut_lock_keys"] = lock_keys
            if _take_try_locks(session, len(lock_keys)):
                sql = f"{_TRY_LOCKS_SQL} UNION ALL {sql}"
            else:
                connection = session.connection(bind_arguments={"mapper": group[0].mapper})
                params["chrononaut_database"] = _database_oid(connection)
                sql = f"{_LOCKS_SQL} UNION ALL {sql}"
        out.append((group[0].mapper, _query(sql), params))
    return out


class FlushGuard:
    """What the versioning recorder calls to check a flush's writes (see module doc)."""

    def prepare(self, session: Session, objects: list[Any]) -> GuardRun:
        return GuardRun(session, objects)


GUARD = FlushGuard()


def before_flush(session: Session, flush_context: Any, instances: Any) -> None:
    """With ``lock_wait`` > 0: take the written records' locks, waiting for their holders."""
    lock_wait = settings_for(session).lock_wait
    if lock_wait == 0:
        return
    targets = [Target(obj) for obj in _writes(session)]
    if not targets:
        return
    described = {t.key: t.described for t in targets}
    connection = session.connection(bind_arguments={"mapper": targets[0].mapper})
    advisory.acquire(connection, list(described), described, timeout=lock_wait)


def _writes(session: Session) -> list[Any]:
    """Versioned persistent objects this flush will UPDATE or DELETE."""
    out = [
        obj
        for obj in session.dirty
        if getattr(type(obj), "__chrononaut__", None) is not None
        and session.is_modified(obj, include_collections=False)
    ]
    out += [obj for obj in session.deleted if getattr(type(obj), "__chrononaut__", None)]
    return out
