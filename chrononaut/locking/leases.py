"""Edit leases: locks that outlive a request, stored in ``chrononaut_leases``.

One row per leased record, keyed by the base table's name and the exact
record key (see :mod:`chrononaut.locking.keys`). Leases are taken and renewed
with one ``INSERT ... ON CONFLICT`` on the database clock, in the session's
transaction: like any write, they take effect when the session commits.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from ..actor import current_user_id
from ..context import PENDING_TOP_INFO_KEY
from ..exceptions import RecordLockedError
from ..settings import activate, deactivate, settings_for
from . import keys

TABLE_NAME = "chrononaut_leases"


DEFAULT_TTL = timedelta(minutes=15)

#: Key in ``Session.info``: states whose lease break awaits the transaction's outcome.
BREAKS_KEY = "chrononaut_lease_breaks"


@dataclass(frozen=True)
class Lease:
    """A held edit lease: who holds it, since when and until when (UTC)."""

    owner: str
    acquired_at: datetime
    expires_at: datetime


def leases_table(metadata: sa.MetaData) -> sa.Table:
    """The ``chrononaut_leases`` table of ``metadata``, created on first use."""
    existing = metadata.tables.get(TABLE_NAME)
    if existing is not None:
        return existing
    return sa.Table(
        TABLE_NAME,
        metadata,
        sa.Column("table_name", sa.Text, primary_key=True),
        sa.Column("record_key", sa.Text, primary_key=True),
        sa.Column("owner", sa.Text, nullable=False),
        sa.Column("acquired_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        comment="Edit leases held on records, written by chrononaut",
    )


def _table_for(cls: type[Any]) -> sa.Table:
    return leases_table(sa.inspect(cls).local_table.metadata)


def _context(obj: Any) -> tuple[Session, sa.Table, str, str, str]:
    state = sa.inspect(obj)
    if state.session is None:
        raise ValueError(f"{obj!r} is not attached to a session")
    identity = keys.identity_of(obj)
    return (
        state.session,
        _table_for(type(obj)),
        keys.table_name(type(obj)),
        keys.record_key(identity),
        keys.describe(obj, identity),
    )


def acting_owner(session: Session, owner: Any = None) -> str | None:
    """``owner`` as text, or the acting user of ``session`` (None for nobody)."""
    if owner is None:
        token = activate(settings_for(session))
        try:
            owner = current_user_id()
        finally:
            deactivate(token)
    return None if owner is None else str(owner)


def _connection(session: Session, obj: Any) -> sa.Connection:
    return session.connection(bind_arguments={"mapper": sa.inspect(type(obj))})


def current_lease(obj: Any) -> Lease | None:
    """The unexpired lease on ``obj``, or None."""
    session, table, name, key, _ = _context(obj)
    row = (
        _connection(session, obj)
        .execute(
            sa.select(table.c.owner, table.c.acquired_at, table.c.expires_at).where(
                table.c.table_name == name,
                table.c.record_key == key,
                table.c.expires_at > sa.func.statement_timestamp(),
            )
        )
        .first()
    )
    return Lease(*row) if row is not None else None


def _held_by_other(obj: Any, described: str, lease: Lease) -> RecordLockedError:
    return RecordLockedError(
        f"{described} is being edited by {lease.owner} until "
        f"{lease.expires_at:%Y-%m-%d %H:%M:%S %Z}.",
        record=described,
        owner=lease.owner,
        expires_at=lease.expires_at,
    )


def acquire_lease(
    obj: Any, ttl: timedelta = DEFAULT_TTL, owner: Any = None, force: bool = False
) -> Lease:
    """Take or renew the edit lease on ``obj`` for ``ttl``.

    Raises :class:`RecordLockedError` while another owner holds an unexpired
    lease, unless ``force=True``, which breaks it; the break is recorded in
    the change_info of the record's next version (``lease_broken``).
    """
    if not isinstance(ttl, timedelta) or ttl <= timedelta(0):
        raise ValueError(f"ttl must be a positive timedelta, got {ttl!r}")
    session, table, name, key, described = _context(obj)
    who = acting_owner(session, owner)
    if who is None:
        raise ValueError(
            f"No owner for the lease on {described}: nobody is logged in; pass owner=... "
            "or use chrononaut.acting_as(...)."
        )
    stmt = sa.text(
        f"""
        WITH previous AS (
            SELECT owner, expires_at FROM {TABLE_NAME}
            WHERE table_name = :name AND record_key = :key
              AND expires_at > statement_timestamp()
        )
        INSERT INTO {TABLE_NAME} AS lease (table_name, record_key, owner, acquired_at, expires_at)
        VALUES (:name, :key, :owner, statement_timestamp(), statement_timestamp() + :ttl)
        ON CONFLICT (table_name, record_key) DO UPDATE SET
            owner = excluded.owner,
            acquired_at = CASE
                WHEN lease.owner = excluded.owner AND lease.expires_at > statement_timestamp()
                THEN lease.acquired_at ELSE excluded.acquired_at END,
            expires_at = excluded.expires_at
        WHERE lease.owner = excluded.owner
           OR lease.expires_at <= statement_timestamp()
           OR :force
        RETURNING owner, acquired_at, expires_at,
            (SELECT owner FROM previous) AS previous_owner,
            (SELECT expires_at FROM previous) AS previous_expires_at
        """
    ).bindparams(sa.bindparam("ttl", type_=sa.Interval))
    if table.schema:
        raise NotImplementedError("the leases table lives in the default schema")
    row = (
        _connection(session, obj)
        .execute(stmt, {"name": name, "key": key, "owner": who, "ttl": ttl, "force": bool(force)})
        .first()
    )
    if row is None:
        held = current_lease(obj)
        if held is None:  # expired between the two statements: try once more
            return acquire_lease(obj, ttl=ttl, owner=who, force=force)
        raise _held_by_other(obj, described, held)
    if row.previous_owner is not None and row.previous_owner != who:
        state = sa.inspect(obj)
        session.info.setdefault(BREAKS_KEY, []).append(state)
        pending = state.info.setdefault(PENDING_TOP_INFO_KEY, {})
        pending["lease_broken"] = {
            "owner": row.previous_owner,
            "expires_at": row.previous_expires_at.isoformat(),
            "by": who,
        }
    return Lease(row.owner, row.acquired_at, row.expires_at)


def release_lease(obj: Any, owner: Any = None, force: bool = False) -> None:
    """Give up the lease on ``obj``; another owner's lease needs ``force=True``."""
    session, table, name, key, described = _context(obj)
    who = acting_owner(session, owner)
    connection = _connection(session, obj)
    deleted = connection.execute(
        table.delete()
        .where(
            table.c.table_name == name,
            table.c.record_key == key,
            sa.or_(
                table.c.owner == who if who is not None else sa.false(),
                table.c.expires_at <= sa.func.statement_timestamp(),
                sa.true() if force else sa.false(),
            ),
        )
        .returning(table.c.owner)
    ).first()
    if deleted is None:
        held = current_lease(obj)
        if held is not None:
            raise _held_by_other(obj, described, held)


def forget_breaks(session: Session, previous_transaction: Any = None) -> None:
    """A rollback undoes lease breaks: drop them from the records' pending change_info."""
    for state in session.info.pop(BREAKS_KEY, []):
        pending = state.info.get(PENDING_TOP_INFO_KEY)
        if pending:
            pending.pop("lease_broken", None)


def keep_breaks(session: Session) -> None:
    """After a commit the breaks happened; they stay pending for the next versions."""
    session.info.pop(BREAKS_KEY, None)
