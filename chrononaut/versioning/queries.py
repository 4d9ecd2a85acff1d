"""Reading history: ``versions()``, ``version_at()``, ``diff()`` and friends.

Times are checked before any SQL: anything but a :class:`~datetime.datetime`
raises :class:`TypeError` (a database error would abort the caller's
transaction), and a naive datetime is taken as UTC, the zone ``changed`` is
recorded in, whatever the connection's ``TimeZone``.
"""

from __future__ import annotations

import functools
from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Query, Session

from ..exceptions import ChrononautException
from ..locking import keys
from . import creations
from .history import INFO_KEY, HistoryBase, versioning_info
from .names import META_COLUMNS, TRANSACTION_ID


def _session(obj: Any) -> Session:
    session = sa.inspect(obj).session
    if session is None:
        raise ChrononautException(
            f"{type(obj).__name__} instance is not attached to a session; history is read "
            "through the session that loaded it. Use session.merge() or session.add() first."
        )
    return session


def as_utc(value: Any, what: str) -> datetime:
    """``value`` as an aware datetime, naive taken as UTC; :class:`TypeError` if not one::

    as_utc(datetime(2024, 1, 1), "at")  # datetime(2024, 1, 1, tzinfo=timezone.utc)
    as_utc("2024-01-01", "at")  # TypeError
    """
    if not isinstance(value, datetime):
        raise TypeError(
            f"{what} must be a datetime (naive ones are taken as UTC), got {value!r}; "
            "parse strings and numbers first, e.g. datetime.fromisoformat(...)."
        )
    if value.tzinfo is None or value.tzinfo.utcoffset(value) is None:
        return value.replace(tzinfo=timezone.utc)
    return value


def versions_query(
    obj: Any, before: datetime | None = None, after: datetime | None = None
) -> Query[Any]:
    """A query of ``obj``'s history objects, ordered by version, to refine.

    Its criteria are those of :func:`versions`, with their values bound.
    """
    session, statement, params = _versions_call(obj, before, after)
    history_cls = versioning_info(type(obj)).history_mapper.class_
    query = session.query(history_cls).filter(statement.whereclause)
    return query.order_by(history_cls.version).params(params)


def versions(obj: Any, before: datetime | None = None, after: datetime | None = None) -> list[Any]:
    """``obj``'s history objects, oldest first: :func:`versions_query`'s rows.

    Runs one statement built once per class and shape (which bounds are
    given), with the key and times as parameters: no ``Query`` to build.
    """
    session, statement, params = _versions_call(obj, before, after)
    return list(session.scalars(statement, params).all())


def _versions_call(
    obj: Any, before: datetime | None, after: datetime | None
) -> tuple[Session, Any, dict[str, Any]]:
    """The session, the cached statement and the parameters of reading ``obj``'s versions;
    the times are checked (:func:`as_utc`) before anything else."""
    before = None if before is None else as_utc(before, "versions(before=...)")
    after = None if after is None else as_utc(after, "versions(after=...)")
    session = _session(obj)
    cls: Any = type(obj)
    statement = _versions_select(cls, before is not None, after is not None)
    params = _key_params(obj)
    if before is not None:
        params["chrononaut_before"] = before
    if after is not None:
        params["chrononaut_after"] = after
    return session, statement, params


def _key_params(obj: Any) -> dict[str, Any]:
    """The bind parameters of ``obj``'s primary key in :func:`_versions_select`'s statements."""
    info = versioning_info(type(obj))
    return {f"chrononaut_pk_{i}": getattr(obj, key) for i, key in enumerate(info.pk_keys)}


@functools.lru_cache(maxsize=1024)
def _versions_select(cls: Any, before: bool, after: bool) -> Any:
    """SELECT of a record's history objects by key (and bounds), ordered by version."""
    info = versioning_info(cls)
    history_cls: Any = info.history_mapper.class_
    statement = sa.select(history_cls).where(
        *[
            getattr(history_cls, key) == sa.bindparam(f"chrononaut_pk_{i}")
            for i, key in enumerate(info.pk_keys)
        ]
    )
    if before:
        statement = statement.where(history_cls.changed <= sa.bindparam("chrononaut_before"))
    if after:
        statement = statement.where(history_cls.changed >= sa.bindparam("chrononaut_after"))
    return statement.order_by(history_cls.version)


@functools.lru_cache(maxsize=1024)
def _creation_changed(cls: Any, version: Any) -> Any:
    """When the incarnation of a record holding ``version`` was created: a scalar subquery
    (the record key as parameter ``chrononaut_record_key``, and for a single
    integer key its integer as ``chrononaut_record_id``).

    A key deleted and inserted again has several creation events; the one that
    counts is the newest at or below ``version`` (of two at one version, left
    by a delete outside chrononaut, the later).
    """
    table = creations.table_of(cls)
    return (
        sa.select(table.c.changed)
        .where(
            table.c.table_name == keys.table_name(cls),
            creations.created(
                table,
                sa.bindparam("chrononaut_record_key", type_=sa.Text),
                sa.bindparam("chrononaut_record_id", type_=sa.BigInteger)
                if creations.integer_keyed(cls)
                else None,
            ),
            table.c.version <= version,
        )
        .order_by(table.c.version.desc(), table.c.changed.desc())
        .limit(1)
        .scalar_subquery()
    )


@functools.lru_cache(maxsize=1024)
def _version_at_select(cls: Any) -> Any:
    """The first history object changed at or after a time, with its incarnation's creation."""
    history_cls: Any = versioning_info(cls).history_mapper.class_
    return (
        _versions_select(cls, False, True)
        .add_columns(_creation_changed(cls, history_cls.version))
        .limit(1)
    )


@functools.lru_cache(maxsize=1024)
def _created_select(cls: Any) -> Any:
    """When the incarnation holding the version ``chrononaut_version`` was created."""
    return sa.select(_creation_changed(cls, sa.bindparam("chrononaut_version", type_=sa.Integer)))


def version_at(obj: Any, at: datetime) -> Any:
    """The earliest history object changed at or after ``at``, else ``obj`` itself.

    None when the record did not exist yet at ``at`` (its creation event is
    later); records created before creation events were recorded have none and
    answer as before.
    """
    at = as_utc(at, "version_at(at)")
    session = _session(obj)
    cls: Any = type(obj)
    identity = keys.identity_of(obj)
    record = {
        "chrononaut_record_key": keys.record_key(identity),
        "chrononaut_record_id": creations.record_id(cls, identity),
    }
    params = _key_params(obj)
    params["chrononaut_after"] = at
    params.update(record)
    row = session.execute(_version_at_select(cls), params).first()
    if row is not None:
        found, created = row
    else:
        found = None
        created = session.scalar(
            _created_select(cls), {**record, "chrononaut_version": obj.version}
        )
    if created is not None and created > at:
        return None
    return obj if found is None else found


def has_changed_since(obj: Any, since: datetime) -> bool:
    """Whether a version of ``obj`` was written at or after ``since``."""
    query = versions_query(obj, after=as_utc(since, "has_changed_since(since)"))
    return _session(obj).query(query.exists()).scalar()


def previous_version(obj: Any) -> Any:
    info = versioning_info(type(obj))
    history_cls = info.history_mapper.class_
    return versions_query(obj).order_by(None).order_by(history_cls.version.desc()).first()


def _pk(obj: Any, keys: tuple[str, ...]) -> tuple[Any, ...]:
    return tuple(getattr(obj, k) for k in keys)


def _data_keys(history_cls: type[Any]) -> list[str]:
    mapper = sa.inspect(history_cls)
    keys = []
    for prop in mapper.column_attrs:
        column = prop.columns[0]
        if not isinstance(column, sa.Column):  # change_info's JSON text
            continue
        if column.info.get(INFO_KEY) in (*META_COLUMNS, TRANSACTION_ID):
            continue
        keys.append(prop.key)
    return keys


def diff(
    obj: Any, from_model: Any, to: Any = None, include_hidden: bool = False
) -> dict[str, tuple[Any, Any]]:
    """``{column: (old, new)}`` between history object ``from_model`` and ``to``."""
    info = versioning_info(type(obj))
    policy = info.policy
    to = obj if to is None else to
    if not isinstance(from_model, HistoryBase):
        raise ChrononautException("Cannot diff from a non-history model.")
    if not isinstance(to, HistoryBase | type(obj)) and not hasattr(to, "__chrononaut__"):
        raise ChrononautException(
            f"Cannot diff to {to!r}: pass a history object or the current record."
        )
    keys = info.pk_keys
    if not (_pk(from_model, keys) == _pk(obj, keys) == _pk(to, keys)):
        raise ChrononautException("You can only diff models with the same primary keys.")
    if from_model.version > to.version:
        raise ChrononautException(
            f"Diffs must be chronological. Your from_model (version {from_model.version}) "
            f"post-dates your to (version {to.version})."
        )
    if from_model.version == to.version:
        return {}  # a version with itself
    result = {}
    for key in _data_keys(type(from_model)):
        if key not in policy.tracked:
            continue
        old, new = getattr(from_model, key), getattr(to, key)
        if old != new:
            result[key] = (old, new)
    if include_hidden and policy.hidden:
        history_cls = info.history_mapper.class_
        rows = (
            versions_query(obj)
            .filter(history_cls.version >= from_model.version, history_cls.version < to.version)
            .with_entities(history_cls.change_info)
            .all()
        )
        changed_hidden = {c for (ci,) in rows for c in (ci or {}).get("hidden_cols_changed", [])}
        for key in sorted(changed_hidden & policy.hidden_keys):
            result[key] = (None, getattr(obj, key))
    return result
