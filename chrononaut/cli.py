"""``flask chrononaut``: a record's history, current leases and locks, breaking leases.

Registered on the app by :meth:`VersionedSQLAlchemy.init_app`::

    flask chrononaut history Document 42      # every version: when, who, why, what
    flask chrononaut history Shelf eu,7       # composite primary key, comma-separated
    flask chrononaut locks                    # unexpired leases and advisory locks
    flask chrononaut leases break Document 42 # force-release a lease
    flask chrononaut leases purge             # delete expired leases

Every value printed goes through :func:`_safe`: control characters (a
terminal escape in a user id, a newline in a rationale) are shown escaped,
never sent to the terminal.
    flask chrononaut prune --older-than 365d --keep-last 50 [--dry-run]
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Any

import click
import sqlalchemy as sa
from flask import current_app
from flask.cli import AppGroup

from .locking import keys, leases
from .versioning import creations
from .versioning.activity import MAX_LIMIT, Activity, activity
from .versioning.mixin import Versioned
from .versioning.retention import DEFAULT_BATCH_SIZE, prune

chrononaut_cli = AppGroup(
    "chrononaut", help="Inspect the history, leases and locks of versioned records."
)


def _db() -> Any:
    from .extension import EXTENSION_KEY  # the extension imports this module

    state = current_app.extensions.get(EXTENSION_KEY)
    if state is None:
        raise click.ClickException("This app has no VersionedSQLAlchemy; call db.init_app(app).")
    return state.db


def _versioned_models(db: Any) -> dict[str, list[type[Any]]]:
    found: dict[str, list[type[Any]]] = {}
    for mapper in db.Model.registry.mappers:
        cls = mapper.class_
        if issubclass(cls, Versioned):
            found.setdefault(cls.__name__, []).append(cls)
    return found


def _model(db: Any, name: str) -> type[Any]:
    models = _versioned_models(db)
    matches = models.get(name, [])
    if len(matches) == 1:
        return matches[0]
    if matches:
        where = ", ".join(sorted(f"{c.__module__}.{c.__qualname__}" for c in matches))
        raise click.BadParameter(f"{name!r} names several versioned models: {where}.")
    known = ", ".join(sorted(models)) or "none"
    raise click.BadParameter(
        f"No versioned model named {name!r}; the versioned models are: {known}.",
        param_hint="MODEL",
    )


def _convert(cls: type[Any], column: sa.Column[Any], text: str) -> Any:
    try:
        python_type = column.type.python_type
    except NotImplementedError:
        return text
    if python_type is str:
        return text
    text = text.strip()
    try:
        if python_type in (datetime, date, time):
            return python_type.fromisoformat(text)
        if python_type in (int, Decimal, float, uuid.UUID):
            return python_type(text)
        if python_type is bytes:
            return bytes.fromhex(text)
    except (ValueError, ArithmeticError) as error:
        raise click.BadParameter(
            f"{text!r} is not a valid {python_type.__name__} for {cls.__name__}.{column.key} "
            f"({error}).",
            param_hint="PK",
        ) from None
    return text


def _identity(cls: type[Any], text: str) -> tuple[Any, ...]:
    """The normalised primary key of ``cls`` from ``text``: ``42`` or ``eu,7``."""
    columns = sa.inspect(cls).primary_key
    parts = text.split(",")
    if len(parts) != len(columns):
        names = ", ".join(c.key for c in columns)
        raise click.BadParameter(
            f"{cls.__name__}'s primary key has {len(columns)} column(s) ({names}); "
            f"give {len(columns)} value(s) separated by commas, got {text!r}.",
            param_hint="PK",
        )
    identity = tuple(_convert(cls, c, part) for c, part in zip(columns, parts, strict=True))
    try:
        return keys.normalise_identity(cls, identity)  # the key its leases are stored under
    except (TypeError, ValueError) as error:
        raise click.BadParameter(str(error), param_hint="PK") from None


def _safe(value: Any) -> str:
    """``value`` as text with control and other unprintable characters escaped (``\\x1b``)."""
    text = str(value)
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)


def _utc(moment: datetime | None) -> str:
    if moment is None:
        return "-"
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _short(value: Any) -> str:
    text = _safe(repr(value))
    return text if len(text) <= 60 else text[:57] + "..."


# --- history ----------------------------------------------------------------------


def _history_rows(session: Any, cls: type[Any], identity: tuple[Any, ...]) -> list[Any]:
    info = cls.__chrononaut__
    history_cls = info.history_mapper.class_
    query = sa.select(history_cls)
    for key, value in zip(info.pk_keys, identity, strict=True):
        query = query.where(getattr(history_cls, key) == value)
    return list(session.scalars(query.order_by(history_cls.version)))


def _change_lines(row: Any, newer: Any) -> list[str]:
    """What the change recorded in history ``row`` did, one line per column."""
    change_info = row.change_info or {}
    if change_info.get("deleted"):
        return ["deleted the record"]
    lines = []
    if newer is not None:
        for key in type(row).__chrononaut_model__.__chrononaut__.policy.tracked:
            old, new = getattr(row, key), getattr(newer, key)
            if old != new:
                lines.append(f"{key}: {_short(old)} -> {_short(new)}")
    lines += [f"{key}: changed (hidden)" for key in change_info.get("hidden_cols_changed", [])]
    broken = change_info.get("lease_broken")
    if broken:
        lines.append(f"broke the lease of {_safe(broken.get('owner'))}")
    extra = {k: v for k, v in (change_info.get("extra") or {}).items() if k != "rationale"}
    if extra:
        lines.append("extra: " + ", ".join(f"{_safe(k)}={_short(v)}" for k, v in extra.items()))
    return lines or ["no visible change"]


def _creation_events(session: Any, cls: type[Any], identity: tuple[Any, ...]) -> dict[int, Any]:
    """version -> creation event (``changed``, ``change_info``) of the record ``identity``."""
    table = creations.table_of(cls)
    rows = session.execute(
        sa.select(table.c.version, table.c.changed, table.c.change_info)
        .where(
            table.c.table_name == keys.table_name(cls),
            creations.created(
                table, keys.record_key(identity), creations.record_id(cls, identity)
            ),
        )
        .order_by(table.c.changed)
    )
    return {row.version: row for row in rows}  # of two events at one version, the later


def _who(change_info: dict[str, Any]) -> str:
    who = change_info.get("user_id")
    if change_info.get("source") == "database":  # written by the database guard
        who = f"database user {change_info.get('db_user')}"
    return _safe(who) if who is not None else "unknown"


def _creation_line(version: int, event: Any) -> str:
    if event is None:
        return f"version {version}  created (when and by whom is not recorded)"
    change_info = event.change_info or {}
    why = (change_info.get("extra") or {}).get("rationale")
    restored = "  (restored)" if change_info.get("restored") else ""
    return (
        f"version {version}  created by {_who(change_info)} at {_utc(event.changed)}  "
        f"rationale: {_safe(why) if why is not None else '-'}{restored}"
    )


def _history_report(
    described: str, record: Any, rows: list[Any], created: dict[int, Any] | None = None
) -> list[str]:
    """The report of ``flask chrononaut history``: one block per version."""
    created = created or {}
    if record is not None:
        head = f"{_safe(described)}: version {record.version}, {len(rows)} earlier version(s)"
    else:
        head = f"{_safe(described)}: deleted, {len(rows)} version(s) in history"
    first = rows[0].version if rows else record.version
    lines = [head, _creation_line(first, created.get(first))]
    states = [*rows, record]
    for index, row in enumerate(rows):
        if index and row.version in created:  # the key was inserted again (restored)
            lines.append(_creation_line(row.version, created[row.version]))
        change_info = row.change_info or {}
        why = (change_info.get("extra") or {}).get("rationale")
        lines.append(
            f"version {row.version + 1}  {_utc(row.changed)}  by {_who(change_info)}  "
            f"rationale: {_safe(why) if why is not None else '-'}"
        )
        lines += [f"    {line}" for line in _change_lines(row, states[index + 1])]
    inserted_again = record is not None and rows and record.version in created
    if inserted_again and record.version not in {row.version for row in rows}:
        lines.append(_creation_line(record.version, created[record.version]))
    return lines


# --- activity ---------------------------------------------------------------------


def _since(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise click.BadParameter(
            f"{text!r} is not an ISO date or time (2026-01-01, 2026-01-01T09:30); times "
            "without an offset are UTC.",
            param_hint="--since",
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc)


def _activity_line(entry: Activity) -> str:
    change_info = entry.change_info
    why = (entry.extra or {}).get("rationale") if isinstance(entry.extra, dict) else None
    line = (
        f"{_utc(entry.changed)}  {entry.operation:<6}  {_safe(entry.describe())}  "
        f"version {entry.version}  by {_who(change_info)}  transaction {entry.transaction_id}"
    )
    if entry.columns:
        line += f"  changed: {', '.join(_safe(c) for c in entry.columns)}"
    if why is not None:
        line += f"  rationale: {_safe(why)}"
    return line


@chrononaut_cli.command("activity")
@click.option("--user", "user", help="Only changes by this user id.")
@click.option("--since", "since", help="Only changes at or after this ISO date or time (UTC).")
@click.option("--model", "model_names", multiple=True, help="Only this model (repeatable).")
@click.option(
    "--limit",
    type=click.IntRange(1, MAX_LIMIT),
    default=50,
    show_default=True,
    help="How many changes to print.",
)
def activity_command(
    user: str | None, since: str | None, model_names: tuple[str, ...], limit: int
) -> None:
    """Print the newest changes to versioned records across models: creations, updates,
    deletions; who, when, which columns, which transaction."""
    db = _db()
    models = [_model(db, name) for name in model_names] or [
        cls
        for classes in _versioned_models(db).values()
        for cls in classes
        if sa.inspect(cls).base_mapper.class_ is cls
    ]
    moment = _since(since)
    with db.session.session_factory() as session:
        try:
            entries = activity(session, user_id=user, since=moment, models=models, limit=limit)
        except (TypeError, ValueError) as error:
            raise click.ClickException(str(error)) from None
    if not entries:
        click.echo("No changes.")
    for entry in entries:
        click.echo(_activity_line(entry))


@chrononaut_cli.command("history")
@click.argument("model")
@click.argument("pk")
def history_command(model: str, pk: str) -> None:
    """Print every version of MODEL's record PK: when (UTC), who, rationale, changes.

    PK is the primary key, comma-separated for composite keys (``eu,7``).
    """
    db = _db()
    cls = _model(db, model)
    identity = _identity(cls, pk)
    described = keys.describe(cls, identity)
    with db.session.session_factory() as session:
        record = session.get(cls, identity)
        rows = _history_rows(session, cls, identity)
        if record is None and not rows:
            raise click.ClickException(
                f"No {_safe(described)} in the database, nor any history of it."
            )
        created = _creation_events(session, cls, identity)
        for line in _history_report(described, record, rows, created):
            click.echo(line)


# --- locks and leases -------------------------------------------------------------


def _models_by_table(db: Any) -> dict[str, type[Any]]:
    found = {}
    for classes in _versioned_models(db).values():
        for cls in classes:
            base = sa.inspect(cls).base_mapper.class_
            found[keys.table_name(base)] = base
    return found


def _lease_lines(db: Any, connection: sa.Connection, bind_key: str | None) -> list[str]:
    metadata = db.metadatas.get(bind_key)
    table = leases.find_leases_table(metadata) if metadata is not None else None
    if table is None or not sa.inspect(connection).has_table(table.name, schema=table.schema):
        return []
    rows = connection.execute(
        sa.select(
            table.c.table_name,
            table.c.record_key,
            table.c.owner,
            table.c.acquired_at,
            table.c.expires_at,
        )
        .where(table.c.expires_at > sa.func.statement_timestamp())
        .order_by(table.c.expires_at, table.c.table_name, table.c.record_key)
    )
    models = _models_by_table(db)
    lines = []
    for name, record_key, owner, acquired_at, expires_at in rows:
        cls = models.get(name)
        what = keys.describe(cls, tuple(json.loads(record_key))) if cls else f"{name} {record_key}"
        lines.append(
            f"  {_safe(what)}  owner {_safe(owner)}  until {_utc(expires_at)}  "
            f"(since {_utc(acquired_at)})"
        )
    return lines


ADVISORY_SQL = """
SELECT l.classid::bigint AS classid, l.objid::bigint AS objid, l.objsubid, l.mode, l.granted,
       l.pid, a.usename, a.application_name, COALESCE(a.xact_start, a.backend_start) AS since
FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'advisory'
  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND l.pid IS DISTINCT FROM pg_backend_pid()
ORDER BY l.granted DESC, since, l.pid
"""


def _advisory_key(classid: int, objid: int, objsubid: int) -> str:
    if objsubid != 1:  # pg_advisory_lock(int4, int4), not a chrononaut key
        return f"({classid}, {objid})"
    unsigned = (classid << 32) | objid
    return str(unsigned - (1 << 64) if unsigned >= 1 << 63 else unsigned)


def _advisory_lines(connection: sa.Connection) -> list[str]:
    lines = []
    for row in connection.execute(sa.text(ADVISORY_SQL)):
        mode = "shared" if row.mode == "ShareLock" else "exclusive"
        state = "held" if row.granted else "waiting"
        lines.append(
            f"  key {_advisory_key(row.classid, row.objid, row.objsubid)}  {mode}, {state}  "
            f"pid {row.pid}  user {_safe(row.usename or '-')}  "
            f"application {_safe(row.application_name or '-')}  since {_utc(row.since)}"
        )
    return lines


@chrononaut_cli.command("locks")
def locks_command() -> None:
    """List unexpired edit leases and the advisory locks held in the database.

    Advisory lock keys are ``chrononaut.locking.keys.advisory_key(table, pk)``;
    "since" is the holder's transaction start (its connection start for
    session-level locks).
    """
    db = _db()
    for bind_key, engine in db.engines.items():
        suffix = f" (bind {bind_key!r})" if len(db.engines) > 1 else ""
        with engine.connect() as connection:
            lease_lines = _lease_lines(db, connection, bind_key)
            advisory_lines = _advisory_lines(connection)
        click.echo(f"Leases{suffix}:")
        click.echo("\n".join(lease_lines) if lease_lines else "  none")
        click.echo(f"Advisory locks{suffix}:")
        click.echo("\n".join(advisory_lines) if advisory_lines else "  none")


@chrononaut_cli.group("leases")
def leases_group() -> None:
    """Manage edit leases."""


@leases_group.command("break")
@click.argument("model")
@click.argument("pk")
def break_command(model: str, pk: str) -> None:
    """Force-release the edit lease on MODEL's record PK, whoever holds it."""
    db = _db()
    cls = _model(db, model)
    identity = _identity(cls, pk)
    described = _safe(keys.describe(cls, identity))
    table = leases.leases_table(sa.inspect(cls).local_table.metadata)
    with db.session.session_factory() as session:
        broken = session.execute(
            table.delete()
            .where(
                table.c.table_name == keys.table_name(cls),
                table.c.record_key == keys.record_key(identity),
            )
            .returning(
                table.c.owner,
                table.c.expires_at,
                (table.c.expires_at > sa.func.statement_timestamp()).label("active"),
            )
        ).first()
        session.commit()
    if broken is None:
        click.echo(f"No lease on {described}.")
    elif broken.active:
        click.echo(
            f"Broke {_safe(broken.owner)}'s lease on {described} "
            f"(it ran until {_utc(broken.expires_at)})."
        )
    else:
        click.echo(
            f"Removed {_safe(broken.owner)}'s expired lease on {described} "
            f"(it expired at {_utc(broken.expires_at)})."
        )


@leases_group.command("purge")
def purge_command() -> None:
    """Delete every expired edit lease (they hold nothing; this keeps the table small).

    Acquiring a lease also deletes a few expired ones on the way; run this
    from cron, or once after many abandoned edits.
    """
    db = _db()
    total = 0
    for bind_key, engine in db.engines.items():
        metadata = db.metadatas.get(bind_key)
        table = leases.find_leases_table(metadata) if metadata is not None else None
        if table is None:
            continue
        with engine.begin() as connection:
            if sa.inspect(connection).has_table(table.name, schema=table.schema):
                total += leases.purge_expired(connection, table)
    click.echo(f"Deleted {total} expired lease(s).")


# --- prune ------------------------------------------------------------------------

_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_DURATION = re.compile(r"(\d+)([smhdw])")


def _duration(text: str) -> timedelta:
    """``365d``, ``12h``, ``2w``, ``30m``, ``90s`` as a timedelta."""
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise click.BadParameter(
            f"{text!r} is not a duration; write a whole number and a unit, e.g. 365d, 12h, "
            "2w, 30m or 90s.",
            param_hint="--older-than",
        )
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def _prune_models(db: Any, names: tuple[str, ...]) -> list[type[Any]]:
    if names:
        return [_model(db, name) for name in names]
    bases = {sa.inspect(c).base_mapper.class_ for cs in _versioned_models(db).values() for c in cs}
    return sorted(bases, key=lambda cls: cls.__name__)


@chrononaut_cli.command("prune")
@click.option("--older-than", "older_than", help="age of the rows to delete: 365d, 12h, 2w...")
@click.option("--keep-last", "keep_last", type=int, help="versions to keep per record")
@click.option(
    "--model", "names", multiple=True, help="a versioned model (repeatable); all by default"
)
@click.option("--include-deleted", is_flag=True, help="delete deletion rows too")
@click.option("--batch-size", type=int, default=DEFAULT_BATCH_SIZE, show_default=True)
@click.option("--dry-run", is_flag=True, help="count what would be deleted, delete nothing")
def prune_command(
    older_than: str | None,
    keep_last: int | None,
    names: tuple[str, ...],
    include_deleted: bool,
    batch_size: int,
    dry_run: bool,
) -> None:
    """Delete history rows older than --older-than and/or beyond --keep-last per record.

    A row goes when it meets every condition given; a deletion row only with
    --include-deleted. Runs in batches, each committed on its own.
    """
    db = _db()
    if older_than is None and keep_last is None:
        raise click.UsageError("Give --older-than and/or --keep-last.")
    age = _duration(older_than) if older_than is not None else None
    models = _prune_models(db, names)
    try:
        counts = prune(
            db.session,
            models,
            older_than=age,
            keep_last=keep_last,
            include_deleted=include_deleted,
            batch_size=batch_size,
            dry_run=dry_run,
        )
    except (TypeError, ValueError) as error:
        raise click.UsageError(str(error)) from None
    verb = "would delete" if dry_run else "deleted"
    for cls, count in counts.items():
        click.echo(f"{cls.__name__}: {verb} {count:,} history row(s)")
    click.echo(f"Total: {verb} {sum(counts.values()):,} history row(s)")
