"""Creation events: who created a record, when, from where and why.

History tables hold the versions a change replaced, so a record's creation
leaves nothing there. chrononaut records it in one shared table,
``chrononaut_creations`` (in the versioned models' MetaData, next to
``chrononaut_leases``): one row per versioned INSERT, keyed like a lease by
the base table's name and the record key (:mod:`chrononaut.locking.keys`) plus
the ``version`` the record was created at (0, or the next number after a
deletion row when a key is inserted again, as by ``restore()``), with
``changed``, ``change_info`` and ``transaction_id`` as in history, and the
polymorphic identity of the created class (``entity``).

Writes are batched: the flush inserts all of its new records' events in one
statement after the ORM's INSERTs (the values travel as arrays through
``unnest``, so the statement is the same whatever the number of rows and is
compiled once). Bulk ``insert(Model)`` statements through the session get a
``RETURNING`` of the primary key and version, or ``return_defaults()`` where
the caller's result must keep ``inserted_primary_key``, and write their events
in one more statement. A record's pending change_info
(:func:`chrononaut.append_change_info`, ``restore()``'s ``restored``) goes to
its creation event. Raw SQL and Core statements on an engine write none.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Hashable
from datetime import datetime, timezone
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.engine.result import null_result
from sqlalchemy.orm import ORMExecuteState, Session

from .. import context
from ..locking import keys
from ..locking.leases import qualified_name
from ..settings import activate, deactivate, settings_for
from .change_info import ChangeInfoBuilder
from .names import TRANSACTION_ID, TRANSACTION_ID_DEFAULT

TABLE_NAME = "chrononaut_creations"


def _key(metadata: sa.MetaData) -> str:
    return f"{metadata.schema}.{TABLE_NAME}" if metadata.schema else TABLE_NAME


def find_creations_table(metadata: sa.MetaData) -> sa.Table | None:
    """The ``chrononaut_creations`` table of ``metadata`` (in its schema), or None."""
    return metadata.tables.get(_key(metadata))


def creations_table(metadata: sa.MetaData) -> sa.Table:
    """The ``chrononaut_creations`` table of ``metadata``, created on first use.

    Like ``chrononaut_leases`` it takes the MetaData's schema. Its primary key
    ``(table_name, record_key, version)`` finds a record's creation;
    ``(table_name, changed, record_key, version)`` serves the activity feed's
    order and paging, and ``transaction_id`` its changesets.
    """
    existing = find_creations_table(metadata)
    if existing is not None:
        return existing
    table = sa.Table(
        TABLE_NAME,
        metadata,
        sa.Column("table_name", sa.Text, primary_key=True),
        sa.Column("record_key", sa.Text, primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("entity", sa.Text),
        sa.Column("changed", sa.DateTime(timezone=True), nullable=False),
        sa.Column("change_info", JSONB, nullable=False),
        sa.Column(
            TRANSACTION_ID,
            sa.BigInteger,
            nullable=False,
            server_default=sa.text(TRANSACTION_ID_DEFAULT),
        ),
        comment="Creation events of versioned records, written by chrononaut",
    )
    sa.Index(
        f"ix_{TABLE_NAME}_changed",
        table.c.table_name,
        table.c.changed,
        table.c.record_key,
        table.c.version,
    )
    sa.Index(f"ix_{TABLE_NAME}_{TRANSACTION_ID}", table.c[TRANSACTION_ID])
    return table


def table_of(cls: type[Any]) -> sa.Table:
    """The creations table of versioned ``cls``'s MetaData."""
    return creations_table(sa.inspect(cls).base_mapper.local_table.metadata)


@functools.lru_cache(maxsize=64)
def _insert_sql(table: sa.Table) -> Any:
    """One INSERT of many events, the values as arrays: the same statement for any count."""
    name = qualified_name(table)
    return sa.text(
        f"INSERT INTO {name} (table_name, record_key, version, entity, changed, change_info) "
        "SELECT t, k, v, e, :changed, CAST(i AS jsonb) "
        "FROM unnest(CAST(:t AS text[]), CAST(:k AS text[]), CAST(:v AS integer[]), "
        "CAST(:e AS text[]), CAST(:i AS text[])) AS u(t, k, v, e, i) "
        "ON CONFLICT (table_name, record_key, version) DO UPDATE SET "
        "entity = excluded.entity, changed = excluded.changed, "
        "change_info = excluded.change_info, transaction_id = excluded.transaction_id"
    ).bindparams(
        sa.bindparam("changed", type_=sa.DateTime(timezone=True)),
        sa.bindparam("t", type_=ARRAY(sa.Text)),
        sa.bindparam("k", type_=ARRAY(sa.Text)),
        sa.bindparam("v", type_=ARRAY(sa.Integer)),
        sa.bindparam("e", type_=ARRAY(sa.Text)),
        sa.bindparam("i", type_=ARRAY(sa.Text)),
    )


class Events:
    """Creation events to write: one statement per creations table."""

    def __init__(self) -> None:
        self.by_table: dict[sa.Table, dict[str, list[Any]]] = {}
        self.connection_mapper: dict[sa.Table, Any] = {}

    def add(self, cls: type[Any], identity: tuple[Any, ...], version: int, info: str) -> None:
        table = table_of(cls)
        columns = self.by_table.get(table)
        if columns is None:
            columns = self.by_table[table] = {"t": [], "k": [], "v": [], "e": [], "i": []}
            self.connection_mapper[table] = sa.inspect(cls)
        mapper = sa.inspect(cls)
        entity = mapper.polymorphic_identity
        columns["t"].append(keys.table_name(cls))
        columns["k"].append(_record_key(cls, identity))
        columns["v"].append(version)
        columns["e"].append(None if entity is None else str(entity))
        columns["i"].append(info)

    def write(self, session: Session, changed: Any) -> None:
        for table, columns in self.by_table.items():
            mapper = self.connection_mapper[table]
            connection = session.connection(bind_arguments={"mapper": mapper})
            connection.execute(_insert_sql(table), {"changed": changed, **columns})


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
    """The new versioned records of one flush and their change_info, built before it."""

    def __init__(self, builder: ChangeInfoBuilder) -> None:
        self.builder = builder
        self.pending: list[tuple[Any, str]] = []
        self._plain: dict[type[Any], str] = {}

    def add(self, obj: Any) -> None:
        state = sa.inspect(obj)
        cls = type(obj)
        if _has_pending(state) or not _default_actor(cast(Hashable, cls)):
            info = dumps(self.builder.build(obj, state))
        else:
            plain = self._plain.get(cls)  # the same for every plain record of the class
            if plain is None:
                plain = self._plain[cls] = dumps(self.builder.build(obj, state))
            info = plain
        self.pending.append((obj, info))

    def write(self, session: Session, changed: Any) -> None:
        """Insert the events, now that the flush's INSERTs gave the records their keys."""
        events = Events()
        for obj, info in self.pending:
            state = sa.inspect(obj)
            identity = state.mapper.primary_key_from_instance(obj)
            version = state.dict.get("version")
            if version is None:
                version = obj.version
            events.add(type(obj), tuple(identity), version, info)
            state.info.pop(context.PENDING_INFO_KEY, None)
            state.info.pop(context.PENDING_TOP_INFO_KEY, None)
        events.write(session, changed)


def _has_pending(state: Any) -> bool:
    info = state.info
    return bool(info) and (
        context.PENDING_INFO_KEY in info or context.PENDING_TOP_INFO_KEY in info
    )


@functools.lru_cache(maxsize=1024)
def _default_actor(cls: type[Any]) -> bool:
    """Whether ``cls`` records the default user and address (no override of the hooks)."""
    from .mixin import Versioned

    return (
        cls._fetch_current_user_id is Versioned._fetch_current_user_id
        and cls._fetch_remote_addr is Versioned._fetch_remote_addr
    )


# --- bulk INSERT statements -----------------------------------------------------------


def _is_orm(statement: Any) -> bool:
    return statement._propagate_attrs.get("compile_state_plugin") == "orm"


def _keeps_cursor_result(statement: Any, parameters: Any) -> bool:
    """Whether the caller gets a CursorResult (whose ``inserted_primary_key`` must work).

    ORM statements with a list of parameter sets are ORM bulk INSERTs, whose
    result has rows only when RETURNING is asked for; multi-VALUES and
    INSERT ... SELECT report no keys without RETURNING.
    """
    if statement._multi_values or statement.select is not None:
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
    version = mapper.get_property("version").columns[0]
    pk = list(mapper.primary_key)
    if _is_orm(statement):  # ORM attributes: a joined subclass's INSERTs each RETURN theirs
        tracked = [getattr(cls, mapper.get_property_by_column(c).key) for c in pk]
        tracked.append(cls.version)
    else:
        tracked = [*pk, version]
    asked = len(statement._returning)
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
