"""Creation events: who created a record, when, from where and why.

History tables hold the versions a change replaced, so a record's creation
leaves nothing there. chrononaut records it in one shared table,
``chrononaut_creations`` (in the versioned models' MetaData, next to
``chrononaut_leases``): one row per class, version and change_info of each
flush or bulk statement, holding the keys of the records it created
(``record_keys``, record keys as in :mod:`chrononaut.locking.keys`), the
``version`` they were created at (0, or the next number after a deletion row
when a key is inserted again, as by ``restore()``), ``changed``,
``change_info`` and ``transaction_id`` as in history, and the polymorphic
identity of the created class (``entity``). A flush inserting 1,000 records
writes one row, not 1,000: a row per record cost the database three index
entries and a heap row each, the larger part of chrononaut's cost on inserts.
Models with a single integer primary key also fill ``key_span``, the range of
the row's keys, so that a record's own creation is found through one GiST
entry per row instead of one GIN entry per key (a run of keys with a gap
wider than :data:`MAX_GAP` starts a row of its own, which keeps spans narrow).

Writes are batched: the flush inserts all of its new records' events in one
statement after the ORM's INSERTs (the values travel as arrays through
``unnest``, in their text form (:mod:`chrononaut._arrays`), and are grouped
in SQL, so the statement is the same whatever the number of rows and is
compiled once). Bulk ``insert(Model)`` statements through the session get a
``RETURNING`` of the primary key and version, or ``return_defaults()`` where
the caller's result must keep ``inserted_primary_key``, and write their events
in one more statement. A record's pending change_info
(:func:`chrononaut.append_change_info`, ``restore()``'s ``restored``) goes to
its creation event. Raw SQL and Core statements on an engine write none.
"""

from __future__ import annotations

import bisect
import functools
import itertools
import json
from collections.abc import Hashable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, INT8RANGE, JSONB
from sqlalchemy.dialects.postgresql import array as postgresql_array
from sqlalchemy.engine.result import null_result
from sqlalchemy.orm import ORMExecuteState, Session
from sqlalchemy.orm.attributes import instance_state

from .. import _arrays, _compat, context
from ..locking import keys
from ..locking.leases import qualified_name
from ..settings import activate, deactivate, settings_for
from .change_info import SENT_INFO_KEY, ChangeInfoBuilder
from .history import pk_keys_of
from .names import CHANGE_INFO, CHANGED, TRANSACTION_ID, TRANSACTION_ID_DEFAULT, VERSION

TABLE_NAME = "chrononaut_creations"

#: The widest gap between two consecutive keys of one event row's ``key_span``.
#: Keys further apart go to rows of their own: a lookup reads the array of every
#: row whose span covers its key, so spans must not cover many other rows' keys.
MAX_GAP = 256


def _key(metadata: sa.MetaData) -> str:
    return f"{metadata.schema}.{TABLE_NAME}" if metadata.schema else TABLE_NAME


def find_creations_table(metadata: sa.MetaData) -> sa.Table | None:
    """The ``chrononaut_creations`` table of ``metadata`` (in its schema), or None."""
    return metadata.tables.get(_key(metadata))


def creations_table(metadata: sa.MetaData) -> sa.Table:
    """The ``chrononaut_creations`` table of ``metadata``, created on first use.

    Like ``chrononaut_leases`` it takes the MetaData's schema. It is an
    append-only log without a primary key: a key is created at one version
    only once, unless a writer outside chrononaut deleted it without a
    deletion row; then both events are kept and readers take the newest.

    - A record's own creation is found by ``ix_chrononaut_creations_span``, a
      GiST index on ``key_span`` (``key_span @> 42``, then ``record_keys @>
      ARRAY['[42]']`` on the rows found), for models with a single integer
      primary key, else by ``ix_chrononaut_creations_record``, a GIN index on
      ``record_keys`` of the rows without a span. The GIN index is built with
      ``fastupdate = off``: GIN's pending list makes inserts cheaper on average
      but has the insert that overflows it merge the list, hundreds of
      milliseconds for one unlucky flush.
    - ``(table_name, changed)`` serves the activity feed's order and paging.
    - ``transaction_id`` serves its changesets. (A BRIN index would cost less
      per insert, but its lossy bitmap scans, run by parallel workers in every
      branch, made a changeset's feed 100 times slower.)
    """
    existing = find_creations_table(metadata)
    if existing is not None:
        return existing
    table = sa.Table(
        TABLE_NAME,
        metadata,
        sa.Column("table_name", sa.Text, nullable=False),
        sa.Column("record_keys", ARRAY(sa.Text, dimensions=1), nullable=False),
        sa.Column("key_span", INT8RANGE),
        sa.Column(VERSION, sa.Integer, nullable=False, autoincrement=False),
        sa.Column("entity", sa.Text),
        sa.Column(CHANGED, sa.DateTime(timezone=True), nullable=False),
        sa.Column(CHANGE_INFO, JSONB, nullable=False),
        sa.Column(
            TRANSACTION_ID,
            sa.BigInteger,
            nullable=False,
            server_default=sa.text(TRANSACTION_ID_DEFAULT),
        ),
        comment="Creation events of versioned records, written by chrononaut",
    )
    # Narrow on purpose: every insert pays for these. Ties of ``changed`` (a flush's
    # or a statement's records) are ordered by an incremental sort on the page.
    sa.Index(f"ix_{TABLE_NAME}_span", table.c.key_span, postgresql_using="gist")
    sa.Index(
        f"ix_{TABLE_NAME}_record",
        table.c.record_keys,
        postgresql_using="gin",
        postgresql_with={"fastupdate": "off"},
        postgresql_where=table.c.key_span.is_(None),
    )
    sa.Index(f"ix_{TABLE_NAME}_changed", table.c.table_name, table.c.changed)
    sa.Index(f"ix_{TABLE_NAME}_{TRANSACTION_ID}", table.c[TRANSACTION_ID])
    return table


def created(table: sa.Table, record_key: Any, record_id: Any = None) -> Any:
    """The condition "this row of ``table`` records the creation of ``record_key``".

    ``record_id``: the key's integer, for a model with a single integer primary
    key (see :func:`record_id`), whose rows are found by their span; None for
    other models, whose rows are found by the GIN index on their keys.
    """
    keys_ = sa.cast(postgresql_array([record_key]), ARRAY(sa.Text))  # psycopg sends varchar
    holds = table.c.record_keys.op("@>", is_comparison=True)(keys_)
    if record_id is None:
        return sa.and_(table.c.key_span.is_(None), holds)
    covers = table.c.key_span.op("@>", is_comparison=True)(sa.cast(record_id, sa.BigInteger))
    return sa.and_(covers, holds)


def integer_keyed(cls: type[Any]) -> bool:
    """Whether versioned ``cls`` has a single integer primary key (its events have spans)."""
    return _kind(cast(Hashable, cls)).integer_key is not None


def record_id(cls: type[Any], identity: tuple[Any, ...]) -> int | None:
    """The integer of normalised ``identity`` if ``cls`` has a single integer key, else None."""
    return identity[0] if integer_keyed(cls) else None


def table_of(cls: type[Any]) -> sa.Table:
    """The creations table of versioned ``cls``'s MetaData."""
    return creations_table(sa.inspect(cls).base_mapper.local_table.metadata)


@functools.lru_cache(maxsize=256)
def _insert_sql(table: sa.Table, integer: bool, uniform: bool, runs: bool) -> Any:
    """One INSERT of a class's events, the values as arrays: the same statement for any count.

    The rows are grouped in SQL: one event row per version and change_info (and
    run of keys), its keys in the order they were sent. ``integer``: the keys
    travel as a bigint array, become record keys in SQL (``[42]``) and give the
    row its ``key_span``; ``uniform``: one change_info for every row, sent
    once; ``runs``: the keys are split into runs (:data:`MAX_GAP`), numbered
    in array ``r``.
    """
    name = qualified_name(table)
    arrays = [_arrays.bind("k", "bigint" if integer else "text"), _arrays.bind("v", "integer")]
    columns, group = ["k", "v"], ["v"]
    binds: list[Any] = [
        sa.bindparam("at", type_=sa.DateTime(timezone=True)),
        sa.bindparam("t", type_=sa.Text),
        sa.bindparam("e", type_=sa.Text),
        sa.bindparam("k", type_=_arrays.TEXT),
        sa.bindparam("v", type_=_arrays.TEXT),
    ]
    if uniform:
        info = "CAST(:info AS jsonb)"
        binds.append(sa.bindparam("info", type_=sa.Text))
    else:
        info = "CAST(i AS jsonb)"
        arrays.append(_arrays.bind("i", "text"))
        columns.append("i")
        group.append("i")
        binds.append(sa.bindparam("i", type_=_arrays.TEXT))
    if runs:
        arrays.append(_arrays.bind("r", "integer"))
        columns.append("r")
        group.append("r")
        binds.append(sa.bindparam("r", type_=_arrays.TEXT))
    if integer:
        keys_ = "array_agg('[' || k || ']' ORDER BY n)"
        # [min, max + 1): the largest bigint has no successor, so its span is unbounded.
        span = "int8range(min(k), CASE WHEN max(k) < 9223372036854775807 THEN max(k) + 1 END)"
    else:
        keys_, span = "array_agg(k ORDER BY n)", "NULL"
    return sa.text(
        f"INSERT INTO {name} "
        "(table_name, record_keys, key_span, version, entity, changed, change_info) "
        f"SELECT :t, {keys_}, {span}, v, :e, :at, {info} "
        f"FROM unnest({', '.join(arrays)}) WITH ORDINALITY AS u({', '.join(columns)}, n) "
        f"GROUP BY {', '.join(group)}"
    ).bindparams(*binds)


def _runs(keys_: list[int]) -> list[int] | None:
    """Each key's run number (a run: keys at most :data:`MAX_GAP` apart), or None for one run."""
    ordered = sorted(set(keys_))
    starts = [b for a, b in itertools.pairwise(ordered) if b - a > MAX_GAP]
    if not starts:
        return None
    return [bisect.bisect_right(starts, key) for key in keys_]


@dataclass(frozen=True)
class _Kind:
    """What writing a versioned class's creation events needs, worked out once."""

    table: sa.Table
    table_name: str
    entity: str | None
    mapper: Any
    #: the attribute key of a single integer primary key, else None
    integer_key: str | None
    pk_keys: tuple[str, ...]
    default_actor: bool


@functools.lru_cache(maxsize=1024)
def _kind(cls: type[Any]) -> _Kind:
    from .mixin import Versioned

    mapper = sa.inspect(cls)
    pk_keys = pk_keys_of(mapper)
    integer = len(pk_keys) == 1 and isinstance(mapper.primary_key[0].type, sa.Integer)
    entity = mapper.polymorphic_identity
    return _Kind(
        table=table_of(cls),
        table_name=keys.table_name(cls),
        entity=None if entity is None else str(entity),
        mapper=mapper,
        integer_key=pk_keys[0] if integer else None,
        pk_keys=pk_keys,
        default_actor=(
            cls._fetch_current_user_id is Versioned._fetch_current_user_id
            and cls._fetch_remote_addr is Versioned._fetch_remote_addr
        ),
    )


class _Group:
    """The events of one class: keys, versions, and their change_info (one or one each)."""

    def __init__(self) -> None:
        self.keys: list[Any] = []
        self.versions: list[int] = []
        self.infos: list[str] = []


class Events:
    """Creation events to write: one statement per class."""

    def __init__(self) -> None:
        self.groups: dict[type[Any], _Group] = {}

    def add(self, cls: type[Any], identity: tuple[Any, ...], version: int, info: str) -> None:
        kind = _kind(cast(Hashable, cls))
        group = self.groups.get(cls)
        if group is None:
            group = self.groups[cls] = _Group()
        if kind.integer_key is None:
            group.keys.append(_record_key(cls, identity))
        else:  # normalised in write_group unless an int already
            group.keys.append(identity[0])
        group.versions.append(version)
        group.infos.append(info)

    def write(self, session: Session, changed: Any) -> None:
        for cls, group in self.groups.items():
            write_group(session, cls, group, changed)


def write_group(session: Session, cls: type[Any], group: _Group, changed: Any) -> None:
    """Insert one class's events in one statement."""
    if not group.keys:
        return
    kind = _kind(cast(Hashable, cls))
    integer = kind.integer_key is not None
    if integer and not all(type(k) is int for k in group.keys):  # a key set as "5", say
        group.keys = [keys.normalise_identity(cls, (k,))[0] for k in group.keys]
    runs = _runs(group.keys) if integer else None
    first = group.infos[0]
    uniform = all(info is first or info == first for info in group.infos)
    params: dict[str, Any] = {
        "at": changed,
        "t": kind.table_name,
        "e": kind.entity,
        "k": _arrays.literal(group.keys),
        "v": _arrays.literal(group.versions),
    }
    if uniform:
        params["info"] = first
    else:
        params["i"] = _arrays.literal(group.infos)
    if runs is not None:
        params["r"] = _arrays.literal(runs)
    connection = session.connection(bind_arguments={"mapper": kind.mapper})
    connection.execute(_insert_sql(kind.table, integer, uniform, runs is not None), params)


def _record_key(cls: type[Any], identity: tuple[Any, ...]) -> str:
    """The record key of ``identity`` (a fast path for plain integer keys)."""
    if all(type(v) is int for v in identity) and _integer_key(sa.inspect(cls)):
        return "[" + ",".join(map(str, identity)) + "]"
    return keys.record_key(keys.normalise_identity(cls, identity))


@functools.lru_cache(maxsize=1024)
def _integer_key(mapper: Any) -> bool:
    return all(isinstance(c.type, sa.Integer) for c in mapper.primary_key)


def dumps(change_info: dict[str, Any]) -> str:
    return json.dumps(change_info, separators=(",", ":"))


# --- the flush ------------------------------------------------------------------------


class FlushCreations:
    """The new versioned records of one flush and their change_info, built before it.

    Records without pending info of classes that keep the default actor hooks
    share one change_info per class, built once: per record, the flush only
    reads its key and version.
    """

    def __init__(self, builder: ChangeInfoBuilder) -> None:
        self.builder = builder
        #: class -> (shared change_info, records)
        self.plain: dict[type[Any], tuple[str, list[Any]]] = {}
        #: (record, its own change_info)
        self.own: list[tuple[Any, str]] = []

    def add_all(self, objs: list[Any]) -> None:
        """Note the new records ``objs`` (one loop: a flush may insert thousands)."""
        default_actor: dict[type[Any], bool] = {}
        plain, own, build = self.plain, self.own, self.builder.build
        pending_keys = (context.PENDING_INFO_KEY, context.PENDING_TOP_INFO_KEY)
        for obj in objs:
            state = instance_state(obj)
            cls = type(obj)
            shared = default_actor.get(cls)
            if shared is None:
                shared = default_actor[cls] = _kind(cast(Hashable, cls)).default_actor
            info = state.__dict__.get("info")  # InstanceState.info, if ever used
            if not shared or (info and any(key in info for key in pending_keys)):
                own.append((obj, dumps(build(obj, state))))
                continue
            found = plain.get(cls)
            if found is None:
                found = plain[cls] = (dumps(build(obj, state)), [])
            found[1].append(obj)

    def write(self, session: Session, changed: Any) -> None:
        """Insert the events, now that the flush's INSERTs gave the records their keys."""
        events = Events()
        for cls, (info, objs) in self.plain.items():
            kind = _kind(cast(Hashable, cls))
            group = events.groups.setdefault(cls, _Group())
            if kind.integer_key is not None:
                key = kind.integer_key
                group.keys += [obj.__dict__[key] for obj in objs]
            else:
                group.keys += [_record_key(cls, _identity(kind, obj)) for obj in objs]
            group.versions += [_version(obj) for obj in objs]
            group.infos += [info] * len(objs)
        for obj, info in self.own:
            events.add(
                type(obj), _identity(_kind(cast(Hashable, type(obj))), obj), _version(obj), info
            )
            state = instance_state(obj)
            state.info.pop(context.PENDING_INFO_KEY, None)
            state.info.pop(context.PENDING_TOP_INFO_KEY, None)
            # Nothing to re-send: a rolled-back insert takes the record out of the session.
            state.info.pop(SENT_INFO_KEY, None)
        events.write(session, changed)


def _identity(kind: _Kind, obj: Any) -> tuple[Any, ...]:
    values = obj.__dict__
    return tuple(values[key] if key in values else getattr(obj, key) for key in kind.pk_keys)


def _version(obj: Any) -> int:
    version = obj.__dict__.get(VERSION)
    return obj.version if version is None else version


# --- bulk INSERT statements -----------------------------------------------------------


def _is_orm(statement: Any) -> bool:
    return _compat.is_orm_statement(statement)


def _keeps_cursor_result(statement: Any, parameters: Any) -> bool:
    """Whether the caller gets a CursorResult (whose ``inserted_primary_key`` must work).

    ORM statements with a list of parameter sets are ORM bulk INSERTs, whose
    result has rows only when RETURNING is asked for; multi-VALUES and
    INSERT ... SELECT report no keys without RETURNING.
    """
    if _compat.has_multi_values(statement) or statement.select is not None:
        return False
    return not (_is_orm(statement) and isinstance(parameters, list | tuple))


def bulk_insert(orm_state: ORMExecuteState, cls: type[Any]) -> Any:
    """Run a bulk INSERT of versioned ``cls`` and record its rows' creation events.

    Returns the result for the caller, as the statement would have given it,
    or None to let the session run the statement unchanged (under
    ``suppress_versioning()``).
    """
    if context.versioning_suppressed():
        return None
    session = orm_state.session
    settings = settings_for(session)
    token = activate(settings)
    try:
        info = dumps(ChangeInfoBuilder(settings).build(None))
    finally:
        deactivate(token)
    statement: Any = orm_state.statement
    mapper = sa.inspect(cls)
    version = mapper.get_property(VERSION).columns[0]
    pk = list(mapper.primary_key)
    if _is_orm(statement):  # ORM attributes: a joined subclass's INSERTs each RETURN theirs
        tracked = [getattr(cls, mapper.get_property_by_column(c).key) for c in pk]
        tracked.append(cls.version)
    else:
        tracked = [*pk, version]
    asked = _compat.returning_count(statement)
    changed = datetime.now(timezone.utc)
    if asked:
        orm_state.statement = statement.returning(*tracked)
        frozen = orm_state.invoke_statement().freeze()
        rows = [tuple(row[asked:]) for row in frozen.data]
        result = frozen().columns(*range(asked))
    elif _keeps_cursor_result(statement, orm_state.parameters):
        # The caller's CursorResult keeps inserted_primary_key and rowcount.
        orm_state.statement = statement.return_defaults(*pk)
        result = orm_state.invoke_statement()
        keys_ = cast(Any, result).inserted_primary_key_rows
        sent = cast(Any, result).context.compiled_parameters
        rows = [(*k, p.get(version.key, 0)) for k, p in zip(keys_, sent, strict=False)]
    else:
        orm_state.statement = statement.returning(*tracked)
        rows = [tuple(r) for r in orm_state.invoke_statement().all()]
        result = null_result()
    events = Events()
    for row in rows:
        events.add(cls, tuple(row[:-1]), row[-1] or 0, info)
    events.write(session, changed)
    return result
