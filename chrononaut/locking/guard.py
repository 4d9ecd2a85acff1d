"""The lock-aware flush guard.

Before a flush writes an UPDATE or DELETE of a versioned record, one query
asks PostgreSQL whether another transaction holds the record's advisory lock
(``pg_locks``) or another actor holds an unexpired lease on it
(``chrononaut_leases``). If so, the flush raises
:class:`~chrononaut.RecordLockedError` and writes nothing. The session's own
locks never block it. With ``CHRONONAUT_LOCK_WAIT`` > 0 the flush instead waits
up to that long for other transactions' locks.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from ..exceptions import RecordLockedError
from ..settings import settings_for
from . import advisory, keys, leases, optimistic

_LOCKS_SQL = (
    "SELECT 'lock' AS kind, classid::bigint AS hi, objid::bigint AS lo, NULL::text AS name, "
    "NULL::text AS record_key, NULL::text AS owner, NULL::timestamptz AS expires_at "
    "FROM pg_locks WHERE locktype = 'advisory' AND objsubid = 1 AND granted "
    "AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
    "AND pid IS DISTINCT FROM pg_backend_pid() "
    "AND (classid::bigint, objid::bigint) IN "
    "(SELECT * FROM unnest(CAST(:hi AS bigint[]), CAST(:lo AS bigint[])))"
)
_LEASES_SQL = (
    "SELECT 'lease', NULL, NULL, table_name, record_key, owner, expires_at "
    f"FROM {leases.TABLE_NAME} WHERE (table_name, record_key) IN "
    "(SELECT * FROM unnest(CAST(:names AS text[]), CAST(:keys AS text[]))) "
    "AND expires_at > statement_timestamp() AND owner IS DISTINCT FROM :actor"
)


class _Target:
    __slots__ = ("described", "identity", "key", "obj", "record_key", "table")

    def __init__(self, obj: Any) -> None:
        self.obj = obj
        self.identity = tuple(sa.inspect(obj).identity)
        self.table = keys.table_name(type(obj))
        self.key = keys.advisory_key(self.table, self.identity)
        self.record_key = keys.record_key(self.identity)
        self.described = keys.describe(obj, self.identity)


def _writes(session: Session) -> list[Any]:
    """Versioned persistent objects this flush will UPDATE or DELETE."""
    out = []
    for obj in session.dirty:
        if getattr(type(obj), "__chrononaut__", None) is not None and session.is_modified(
            obj, include_collections=False
        ):
            out.append(obj)
    for obj in session.deleted:
        if getattr(type(obj), "__chrononaut__", None) is not None:
            out.append(obj)
    return out


def _expected_version(obj: Any) -> int:
    state = sa.inspect(obj)
    return state.committed_state.get("version", state.dict.get("version"))


def _refuse(rows: list[Any], targets: list[_Target]) -> None:
    """Raise for the first lock or lease found, if any."""
    for kind, hi, lo, name, record_key, owner, expires_at in rows:
        if kind == "lock":
            target = next(t for t in targets if keys.split_key(t.key) == (hi, lo))
            raise RecordLockedError(
                f"{target.described} is locked by another transaction (lock()); not writing it.",
                record=target.described,
            )
        target = next(t for t in targets if (t.table, t.record_key) == (name, record_key))
        raise RecordLockedError(
            f"{target.described} is being edited by {owner} until "
            f"{expires_at:%Y-%m-%d %H:%M:%S %Z}; not writing it.",
            record=target.described,
            owner=owner,
            expires_at=expires_at,
        )


def _check(session: Session, targets: list[_Target], actor: str | None, lock_wait: float) -> None:
    """One query per leases table (one in practice) checks locks and leases together."""
    groups: dict[sa.Table, list[_Target]] = defaultdict(list)
    for target in targets:
        metadata = sa.inspect(type(target.obj)).local_table.metadata
        groups[leases.leases_table(metadata)].append(target)
    for group in groups.values():
        connection = session.connection(bind_arguments={"mapper": sa.inspect(type(group[0].obj))})
        params: dict[str, Any] = {
            "names": [t.table for t in group],
            "keys": [t.record_key for t in group],
            "actor": actor,
        }
        if lock_wait > 0:
            described = {t.key: t.described for t in group}
            advisory.acquire(connection, list(described), described, timeout=lock_wait)
            sql = _LEASES_SQL
        else:
            splits = [keys.split_key(t.key) for t in group]
            params["hi"] = [hi for hi, _ in splits]
            params["lo"] = [lo for _, lo in splits]
            sql = f"{_LOCKS_SQL} UNION ALL {_LEASES_SQL}"
        _refuse(connection.execute(sa.text(sql), params).all(), group)


def before_flush(session: Session, flush_context: Any, instances: Any) -> None:
    """Refuse to write records other transactions lock or other actors lease."""
    writes = _writes(session)
    optimistic.remember_expected_versions(
        session, [(type(o), keys.identity_of(o), _expected_version(o)) for o in writes]
    )
    if not writes:
        return
    settings = settings_for(session)
    _check(
        session, [_Target(obj) for obj in writes], leases.acting_owner(session), settings.lock_wait
    )
