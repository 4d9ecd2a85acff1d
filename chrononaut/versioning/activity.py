"""``chrononaut.activity()``: what changed across every versioned model, newest first.

One SQL statement per call, whatever the number of models: a ``UNION ALL`` of
two branches per model hierarchy, its history table (updates and deletions)
and its rows of ``chrononaut_creations`` (creations). Each branch is filtered,
ordered and limited on its own, through an index created with the table
(``(changed, <primary key>, version)`` on history, ``(table_name, changed)``
on creations, whose ties are sorted on the page), so a page costs about
``limit`` index entries per branch however long the history is; the outer
query merges the branches and keeps ``limit`` rows. The SQL is built in
:mod:`.activity_sql`; this module checks the arguments, pages and turns rows
into :class:`Activity` entries.

Paging is by keyset: every entry has a ``cursor``; ``before=entry.cursor``
returns the entries after it in the feed's order, ``(changed, branch, key,
version)`` descending, so a page never repeats or skips an entry however
many are written meanwhile.

Every argument is checked before anything is sent to the database.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timezone
from decimal import Decimal
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.orm import Session, scoped_session

from ..locking import keys
from .activity_sql import (
    Shape,
    base_of,
    compiled,
    creation_branch_name,
    history_branch_name,
)
from .history import versioning_info
from .queries import as_utc

#: The largest ``limit``: a page, not an export.
MAX_LIMIT = 1000
#: ``transaction_id`` is a bigint.
_MAX_TRANSACTION_ID = 2**63 - 1
_MAX_USER_ID = 255

OPERATIONS = ("create", "update", "delete")


@dataclass(frozen=True)
class Activity:
    """One change in the feed of :func:`activity`.

    ``version`` is the version the change produced (for a deletion: the
    version deleted); ``columns`` names the columns (and relationships) it
    changed, hidden ones included, never their values (empty for creations and
    deletions); ``extra`` is ``change_info["extra"]`` (None when none was
    given); ``change_info`` is the whole of it. ``cursor`` continues the feed
    after this entry: ``activity(session, before=entry.cursor)``.
    """

    model: type[Any]
    identity: tuple[Any, ...]
    version: int
    operation: str
    user_id: Any
    remote_addr: Any
    changed: datetime
    transaction_id: int | None
    columns: tuple[str, ...]
    extra: Any
    change_info: dict[str, Any]
    cursor: str

    def describe(self) -> str:
        """``Document(id=3)``: the model and primary key, for display."""
        return keys.describe(self.model, self.identity)


# --- arguments ----------------------------------------------------------------------------


def _session(session: Any) -> Session:
    if isinstance(session, scoped_session):
        session = session()
    if not isinstance(session, Session):
        raise TypeError(
            f"activity() takes a Session (or scoped_session) as its first argument, got "
            f"{session!r}; pass db.session or the session you query with."
        )
    return session


def _user_id(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise TypeError(
            f"activity(user_id=...) takes a str or an int (a user id, as recorded in "
            f"change_info['user_id']), got {value!r}."
        )
    text = value if isinstance(value, str) else str(value)
    if not text.strip() or "\x00" in text or len(text) > _MAX_USER_ID:
        raise ValueError(
            f"activity(user_id=...) must name someone (not blank, no NUL character, at most "
            f"{_MAX_USER_ID} characters), got {value!r}."
        )
    return text


def _moment(value: Any, what: str) -> datetime | None:
    if value is None:
        return None
    return as_utc(value, f"activity({what}=...)")


def _transaction_id(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(
            f"activity(transaction_id=...) takes an int (an entry's transaction_id), got "
            f"{value!r}."
        )
    if not 0 < value <= _MAX_TRANSACTION_ID:
        raise ValueError(
            f"activity(transaction_id=...) must be a positive bigint, got {value!r}; pass an "
            "entry's transaction_id."
        )
    return value


def _limit(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(
            f"activity(limit=...) takes an int from 1 to {MAX_LIMIT}, got {value!r}; page "
            "through longer feeds with before=."
        )
    if not 1 <= value <= MAX_LIMIT:
        raise ValueError(
            f"activity(limit=...) must be from 1 to {MAX_LIMIT}, got {value!r}; page through "
            "longer feeds with before=."
        )
    return value


def _versioned(cls: Any) -> type[Any]:
    if not isinstance(cls, type) or getattr(cls, "__chrononaut__", None) is None:
        raise TypeError(
            f"activity(models=...) takes versioned model classes, got {cls!r}; pass classes "
            "with the Versioned mixin, e.g. models=[Document]."
        )
    return cls


def _models(value: Any) -> list[type[Any]] | None:
    if value is None:
        return None
    if isinstance(value, type | str | bytes | dict):
        raise TypeError(
            f"activity(models=...) takes a list of versioned model classes, got {value!r}; "
            "pass models=[Document]."
        )
    if not isinstance(value, Iterable):
        raise TypeError(
            f"activity(models=...) takes a list of versioned model classes, got {value!r}."
        )
    models = [_versioned(cls) for cls in value]
    if not models:
        raise ValueError(
            "activity(models=...) is empty; pass None for every versioned model, or name some."
        )
    return models


@dataclass(frozen=True)
class _Cursor:
    changed: datetime
    branch: str
    key: str
    version: int


def _encode_cursor(cursor: _Cursor) -> str:
    payload = [cursor.changed.isoformat(), cursor.branch, cursor.key, cursor.version]
    text = json.dumps(payload, separators=(",", ":"))
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _malformed(value: Any) -> ValueError:
    shown = value if not isinstance(value, str) or len(value) <= 80 else value[:77] + "..."
    return ValueError(
        f"activity(before=...) got {shown!r}, which is not a cursor of this feed; pass an "
        "entry's cursor (entry.cursor) or the entry itself."
    )


def _decode_cursor(value: Any) -> _Cursor | None:
    if value is None:
        return None
    if isinstance(value, Activity):
        value = value.cursor
    if not isinstance(value, str):
        raise TypeError(
            f"activity(before=...) takes an entry's cursor (a str) or the entry, got {value!r}."
        )
    try:
        padded = value + "=" * (-len(value) % 4)
        if not re.fullmatch(r"[A-Za-z0-9_-]+=*", padded):
            raise ValueError
        payload = json.loads(base64.urlsafe_b64decode(padded.encode()))
        changed_text, branch, key, version = payload
        changed = datetime.fromisoformat(changed_text)
        if (
            changed.tzinfo is None
            or not isinstance(branch, str)
            or not isinstance(key, str)
            or isinstance(version, bool)
            or not isinstance(version, int)
            or not branch.startswith(("h:", "c:"))
        ):
            raise ValueError
        json.loads(key)
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        raise _malformed(value) from None
    return _Cursor(changed, branch, key, version)


# --- the models a feed covers -----------------------------------------------------------


def _default_models(session: Session) -> list[type[Any]]:
    """Every versioned hierarchy: of the Flask-SQLAlchemy ``db``, or of the one MetaData."""
    db = getattr(session, "_db", None)  # Flask-SQLAlchemy's Session knows its extension
    if db is not None and hasattr(db, "Model"):
        mappers = list(db.Model.registry.mappers)
    else:
        from sqlalchemy.orm.mapperlib import _all_registries

        mappers = [m for registry in list(_all_registries()) for m in registry.mappers]
    bases = []
    for mapper in mappers:
        cls = mapper.class_
        if getattr(cls, "__chrononaut__", None) is not None and base_of(cls) is cls:
            bases.append(cls)
    metadatas = {id(sa.inspect(cls).local_table.metadata) for cls in bases}
    if len(metadatas) > 1:
        raise ValueError(
            "activity() cannot tell which versioned models this session's database holds: "
            f"they live in {len(metadatas)} MetaData collections; pass models=[...]."
        )
    return sorted(bases, key=lambda cls: _history_name(cls))


def _history_name(cls: type[Any]) -> str:
    return cast(str, versioning_info(base_of(cls)).history_table.fullname)


# --- SQL ----------------------------------------------------------------------------------


@dataclass
class _Filters:
    user_id: str | None
    since: datetime | None
    until: datetime | None
    transaction_id: int | None
    limit: int
    cursor: _Cursor | None

    def shape(self) -> Shape:
        return Shape(
            user_id=self.user_id is not None,
            since=self.since is not None,
            until=self.until is not None,
            transaction_id=self.transaction_id is not None,
            cursor_branch=self.cursor.branch if self.cursor is not None else None,
        )

    def values(self) -> dict[str, Any]:
        """The values of the statement's bind parameters (see :class:`Shape`)."""
        values: dict[str, Any] = {
            "user_id": self.user_id,
            "since": self.since,
            "until": self.until,
            "transaction_id": self.transaction_id,
            "limit": self.limit,
        }
        if self.cursor is not None:
            values["c_changed"] = self.cursor.changed
            values["c_version"] = self.cursor.version
        return values


# --- rows -> entries ----------------------------------------------------------------------

_FRACTION = re.compile(r"(\.\d+)(?=[+-]\d\d:\d\d$|Z$|$)")


def _parse_datetime(text: str) -> datetime:
    """ISO 8601 as PostgreSQL's JSON or Python writes it (any fraction; 3.10 needs six digits)."""
    text = text.replace("Z", "+00:00")
    text = _FRACTION.sub(lambda m: (m.group(1) + "000000")[:7], text)
    return datetime.fromisoformat(text)


def _decode(column: sa.Column[Any], value: Any) -> Any:
    """A primary key value from its JSON form, as the column's Python type."""
    if value is None:
        return None
    try:
        python_type = column.type.python_type
    except NotImplementedError:
        return value
    if python_type is int:
        return int(value)
    if python_type is float:
        return float(value)
    if python_type is Decimal:
        return Decimal(str(value))
    if python_type is uuid.UUID:
        return uuid.UUID(str(value))
    if python_type is datetime:
        return _parse_datetime(value)
    if python_type is date:
        return date.fromisoformat(value)
    if python_type is bool:
        return bool(value)
    return value


def _typed_key(base: type[Any], key: str) -> list[Any]:
    """A branch key (JSON of the primary key) as typed values of ``base``'s key columns."""
    try:
        values = json.loads(key, parse_float=Decimal)
        columns = list(sa.inspect(base).primary_key)
        if not isinstance(values, list) or len(values) != len(columns):
            raise ValueError
        return [_decode(c, v) for c, v in zip(columns, values, strict=True)]
    except (ValueError, TypeError, ArithmeticError):
        raise _malformed(key) from None


def _model_of(base: type[Any], entity: str | None) -> type[Any]:
    if entity is None:
        return base
    for mapper in sa.inspect(base).self_and_descendants:
        if mapper.polymorphic_identity is not None and str(mapper.polymorphic_identity) == entity:
            return cast(type[Any], mapper.class_)
    return base


def _entry(row: Any, bases: dict[str, type[Any]]) -> Activity:
    base = bases[row.branch]
    change_info = row.change_info or {}
    creation = row.branch.startswith("c:")
    deleted = bool(change_info.get("deleted"))
    if creation:
        operation, version, columns = "create", row.version, ()
    elif deleted:
        operation, version, columns = "delete", row.version, ()
    else:
        named = list(row.columns or ())
        named += [h for h in change_info.get("hidden_cols_changed", []) if h not in named]
        named += sorted(change_info.get("relationships", {}))
        operation, version, columns = "update", row.version + 1, tuple(named)
    changed = row.changed.astimezone(timezone.utc)
    return Activity(
        model=_model_of(base, row.entity),
        identity=tuple(_typed_key(base, row.key)),
        version=version,
        operation=operation,
        user_id=change_info.get("user_id"),
        remote_addr=change_info.get("remote_addr"),
        changed=changed,
        transaction_id=row.transaction_id,
        columns=columns,
        extra=change_info.get("extra"),
        change_info=change_info,
        cursor=_encode_cursor(_Cursor(changed, row.branch, row.key, row.version)),
    )


def activity(
    session: Any,
    *,
    user_id: Any = None,
    since: Any = None,
    until: Any = None,
    models: Any = None,
    transaction_id: Any = None,
    limit: Any = 100,
    before: Any = None,
) -> list[Activity]:
    """The changes to versioned records, newest first: creations, updates and deletions.

    Filters combine: ``user_id`` (as recorded in ``change_info["user_id"]``),
    ``since`` (inclusive) and ``until`` (exclusive) datetimes (naive ones are
    UTC), ``models`` (versioned classes; a subclass keeps its own rows),
    ``transaction_id`` (one changeset). ``limit`` entries (1 to
    :data:`MAX_LIMIT`) per call; ``before=entry.cursor`` continues after
    ``entry``. One query, whatever the number of models::

        page = chrononaut.activity(db.session, user_id="alice", limit=20)
        older = chrononaut.activity(db.session, user_id="alice", before=page[-1].cursor)
    """
    session = _session(session)
    filters = _Filters(
        user_id=_user_id(user_id),
        since=_moment(since, "since"),
        until=_moment(until, "until"),
        transaction_id=_transaction_id(transaction_id),
        limit=_limit(limit),
        cursor=_decode_cursor(before),
    )
    if filters.since is not None and filters.until is not None and filters.since >= filters.until:
        raise ValueError(
            f"activity(since=..., until=...) is an empty range: since {filters.since!r} is not "
            f"before until {filters.until!r}."
        )
    chosen = _models(models)
    if chosen is None:
        chosen = _default_models(session)
    hierarchies: dict[type[Any], list[type[Any]]] = {}
    for cls in chosen:
        hierarchies.setdefault(base_of(cls), []).append(cls)
    bases = _branches(hierarchies)
    values = filters.values()
    cursor = filters.cursor
    if cursor is not None and cursor.branch in bases:  # its key, typed for its branch
        if cursor.branch.startswith("h:"):
            key = _typed_key(bases[cursor.branch], cursor.key)  # malformed: raises, before SQL
        else:
            key = [cursor.key]
        values.update({f"c_key_{i}": value for i, value in enumerate(key)})
    if not hierarchies:
        return []
    frozen = tuple((base, tuple(classes)) for base, classes in hierarchies.items())
    statement, constants = compiled(frozen, filters.shape())
    mapper = sa.inspect(frozen[0][0])
    connection = session.connection(bind_arguments={"mapper": mapper})
    rows = connection.execute(statement, {**constants, **values})
    return [_entry(row, bases) for row in rows]


def _branches(hierarchies: dict[type[Any], list[type[Any]]]) -> dict[str, type[Any]]:
    out = {}
    for base in hierarchies:
        out[history_branch_name(base)] = base
        out[creation_branch_name(base)] = base
    return out
