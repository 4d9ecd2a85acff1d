"""Edit leases: locks that outlive a request, stored in ``chrononaut_leases``.

One row per leased record, keyed by the base table's name and the exact
record key (see :mod:`chrononaut.locking.keys`). Leases are taken and renewed
with one ``INSERT ... ON CONFLICT`` on the database clock, in the session's
transaction: like any write, they take effect when the session commits.

The table lives in its MetaData's schema (``MetaData(schema="app")`` gives
``app.chrononaut_leases``); SQL written as text names it with
:func:`qualified_name`. Owners are non-empty strings of at most
:data:`MAX_OWNER_LENGTH` characters, or ints (stored as their decimal text),
and a lease lasts at most :data:`MAX_TTL`; anything else is refused before
the database is asked.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session

from ..actor import current_user_id
from ..context import PENDING_TOP_INFO_KEY
from ..exceptions import RecordLockedError
from ..settings import activate, deactivate, settings_for
from . import keys

TABLE_NAME = "chrononaut_leases"


DEFAULT_TTL = timedelta(minutes=15)

#: The longest lease: a century, well inside what ``timestamptz`` and ``interval`` hold.
MAX_TTL = timedelta(days=36525)

#: The longest owner, in characters.
MAX_OWNER_LENGTH = 255

#: Key in ``Session.info``: states whose lease break awaits the transaction's outcome.
BREAKS_KEY = "chrononaut_lease_breaks"

#: How many expired leases of other records each acquire removes on the way.
PURGE_ON_ACQUIRE = 20


@dataclass(frozen=True)
class Lease:
    """A held edit lease: who holds it, since when and until when (UTC)."""

    owner: str
    acquired_at: datetime
    expires_at: datetime


def _key(metadata: sa.MetaData) -> str:
    return f"{metadata.schema}.{TABLE_NAME}" if metadata.schema else TABLE_NAME


def find_leases_table(metadata: sa.MetaData) -> sa.Table | None:
    """The ``chrononaut_leases`` table of ``metadata`` (in its schema), or None."""
    return metadata.tables.get(_key(metadata))


def leases_table(metadata: sa.MetaData) -> sa.Table:
    """The ``chrononaut_leases`` table of ``metadata``, created on first use.

    It takes the MetaData's schema: with ``MetaData(schema="app")`` it is
    ``app.chrononaut_leases``.
    """
    existing = find_leases_table(metadata)
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


_PREPARER = postgresql.dialect().identifier_preparer


def qualified_name(table: sa.Table) -> str:
    """``table``'s name for SQL text: schema-qualified and quoted as PostgreSQL needs.

    ::

        qualified_name(leases_table(sa.MetaData(schema="app")))  # 'app.chrononaut_leases'
        qualified_name(leases_table(sa.MetaData(schema="My App")))  # '"My App".chrononaut_leases'
    """
    return _PREPARER.format_table(table)


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


def check_owner(owner: Any, what: str = "owner") -> str:
    """``owner`` as stored in the leases table, or :class:`TypeError`/:class:`ValueError`.

    A ``str`` (not empty, not only whitespace, no NUL character, at most
    :data:`MAX_OWNER_LENGTH` characters) is kept as it is; an ``int`` is
    stored as its decimal text (``42`` -> ``"42"``). ``what`` names the value
    in the message::

        check_owner(42)  # '42'
    """
    if isinstance(owner, bool) or not isinstance(owner, str | int):
        raise TypeError(
            f"{what} must be a str or an int (a user id), got {owner!r} ({type(owner).__name__})."
        )
    text = owner if isinstance(owner, str) else str(int(owner))
    if not text.strip():
        raise ValueError(f"{what} must name someone, got {owner!r}; pass a user id.")
    if "\x00" in text:
        raise ValueError(
            f"{what} {owner!r} contains a NUL character, which PostgreSQL text cannot hold."
        )
    if len(text) > MAX_OWNER_LENGTH:
        raise ValueError(
            f"{what} is {len(text)} characters long, over the limit of {MAX_OWNER_LENGTH}, "
            f"got {text[:40]!r}...; pass a shorter user id."
        )
    return text


def check_ttl(ttl: Any) -> timedelta:
    """``ttl`` if it is a positive :class:`~datetime.timedelta` of at most :data:`MAX_TTL`."""
    if not isinstance(ttl, timedelta):
        raise TypeError(f"ttl must be a timedelta, got {ttl!r} ({type(ttl).__name__}).")
    if not timedelta(0) < ttl <= MAX_TTL:
        raise ValueError(
            f"ttl must be a positive timedelta of at most {MAX_TTL.days} days (MAX_TTL), "
            f"got {ttl!r}."
        )
    return ttl


def _check_force(force: Any) -> bool:
    if not isinstance(force, bool):
        raise TypeError(f"force must be True or False, got {force!r}.")
    return force


def acting_owner(session: Session, owner: Any = None) -> str | None:
    """``owner`` as text, or the acting user of ``session`` (None for nobody).

    Both go through :func:`check_owner`: an acting user id that no lease
    could name (an object, an empty string) raises instead of being stored
    as its ``repr``.
    """
    if owner is not None:
        return check_owner(owner)
    token = activate(settings_for(session))
    try:
        acting = current_user_id()
    finally:
        deactivate(token)
    return None if acting is None else check_owner(acting, "the acting user id")


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


@functools.lru_cache(maxsize=16)
def _acquire_statement(leases: str) -> Any:
    """Take or renew a lease in ``leases`` (a qualified table name), reporting a break.

    On the way it deletes up to :data:`PURGE_ON_ACQUIRE` expired leases of
    other records (skipping rows another transaction holds), so a table of
    abandoned leases shrinks as leases are taken; ``flask chrononaut leases
    purge`` (:func:`purge_expired`) removes them all at once.
    """
    return sa.text(
        f"""
        WITH purged AS (
            DELETE FROM {leases} WHERE ctid IN (
                SELECT ctid FROM {leases}
                WHERE expires_at <= statement_timestamp()
                  AND NOT (table_name = :name AND record_key = :key)
                LIMIT {PURGE_ON_ACQUIRE} FOR UPDATE SKIP LOCKED
            )
        ),
        previous AS (
            SELECT owner, expires_at FROM {leases}
            WHERE table_name = :name AND record_key = :key
              AND expires_at > statement_timestamp()
        )
        INSERT INTO {leases} AS lease (table_name, record_key, owner, acquired_at, expires_at)
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


def acquire_lease(
    obj: Any, ttl: timedelta = DEFAULT_TTL, owner: Any = None, force: bool = False
) -> Lease:
    """Take or renew the edit lease on ``obj`` for ``ttl``.

    Raises :class:`RecordLockedError` while another owner holds an unexpired
    lease, unless ``force=True``, which breaks it; the break is recorded in
    the change_info of the record's next version (``lease_broken``).
    """
    check_ttl(ttl)
    _check_force(force)
    session, table, name, key, described = _context(obj)
    who = acting_owner(session, owner)
    if who is None:
        raise ValueError(
            f"No owner for the lease on {described}: nobody is logged in; pass owner=... "
            "or use chrononaut.acting_as(...)."
        )
    stmt = _acquire_statement(qualified_name(table))
    row = (
        _connection(session, obj)
        .execute(stmt, {"name": name, "key": key, "owner": who, "ttl": ttl, "force": force})
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
    _check_force(force)
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


def purge_expired(connection: sa.Connection, table: sa.Table) -> int:
    """Delete every expired lease in ``table``; return how many were deleted.

    Expired leases hold nothing (every read and write ignores them); this
    only keeps the table small. Runs in ``connection``'s transaction::

        with engine.begin() as connection:
            purge_expired(connection, leases_table(Base.metadata))
    """
    if not isinstance(table, sa.Table):
        raise TypeError(f"table must be a sqlalchemy Table, got {table!r}.")
    result = connection.execute(
        table.delete().where(table.c.expires_at <= sa.func.statement_timestamp())
    )
    return result.rowcount


def forget_breaks(session: Session, previous_transaction: Any = None) -> None:
    """A rollback undoes lease breaks: drop them from the records' pending change_info."""
    for state in session.info.pop(BREAKS_KEY, []):
        pending = state.info.get(PENDING_TOP_INFO_KEY)
        if pending:
            pending.pop("lease_broken", None)


def keep_breaks(session: Session) -> None:
    """After a commit the breaks happened; they stay pending for the next versions."""
    session.info.pop(BREAKS_KEY, None)
