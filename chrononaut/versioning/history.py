"""Build the history table and history class of a versioned mapper.

Schema only: nothing here touches a Session. :func:`build_history` runs once
per versioned mapper, right after SQLAlchemy constructs it, so the history
table is in the model's MetaData before ``create_all()`` or Alembic look.
"""

from __future__ import annotations

import json
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.hybrid import hybrid_property
from sqlalchemy.orm import Mapper

from .. import _compat
from ..exceptions import (
    ChrononautException,
    ConfigurationError,
    HiddenAttributeError,
    UntrackedAttributeError,
)
from .names import (
    CHANGE_INFO,
    CHANGED,
    MAX_NAME,
    META_COLUMNS,
    RESERVED_COLUMNS,
    TRANSACTION_ID,
    TRANSACTION_ID_DEFAULT,
    VERSION,
    fit_name,
    history_table_name,
)
from .policy import ColumnPolicy, column_policy

#: ``Column.info`` key marking the columns chrononaut adds.
INFO_KEY = "chrononaut"

#: Versioned model table -> its class; history tables. Kept out of ``Table.info``,
#: which Alembic copies into migration scripts.
_model_of_table: weakref.WeakKeyDictionary[sa.Table, type[Any]] = weakref.WeakKeyDictionary()
_history_tables: weakref.WeakSet[sa.Table] = weakref.WeakSet()
#: History table -> the versioned class it was built for (the hierarchy's, for single-table).
_model_of_history: weakref.WeakKeyDictionary[sa.Table, type[Any]] = weakref.WeakKeyDictionary()


def versioned_class_of_table(table: sa.Table) -> type[Any] | None:
    """The versioned class whose own table is ``table``, if any."""
    return _model_of_table.get(table)


def is_history_table(table: sa.Table) -> bool:
    return table in _history_tables


def written_columns(table: sa.Table) -> list[sa.Column[Any]]:
    """The columns of history ``table`` chrononaut's INSERTs name: all but ``transaction_id``,
    which its server default fills."""
    return [c for c in table.c if c.info.get(INFO_KEY) != TRANSACTION_ID]


#: The attribute holding a history row's change_info as loaded (JSON text), and the
#: instance-dict key of its decoded value (with the text it was decoded from).
_RAW_CHANGE_INFO = "_chrononaut_change_info_json"
_DECODED_CHANGE_INFO = "_chrononaut_change_info_decoded"
_CHANGE_INFO_COLUMN = "_chrononaut_change_info"

_OPTION_NAMES = ("__chrononaut_hidden__", "__chrononaut_untracked__")
_INDEX_OPTION = "__chrononaut_disable_indices__"


@dataclass
class VersioningInfo:
    """What chrononaut knows about one versioned class, kept as ``cls.__chrononaut__``."""

    history_mapper: Mapper[Any]
    history_table: sa.Table
    #: Tables of the history hierarchy, base first (one for single-table inheritance).
    history_tables: list[sa.Table]
    #: which columns are tracked, hidden and untracked: the one answer every writer and
    #: reader of history uses (see :mod:`chrononaut.versioning.policy`)
    policy: ColumnPolicy
    pk_keys: tuple[str, ...]
    primary_key_nonunique: bool
    #: per history table: (history column name, model attribute key or meta name)
    insert_columns: dict[sa.Table, list[tuple[str, str]]] = field(default_factory=dict)
    #: the model's mapper
    mapper: Mapper[Any] = field(init=False)

    # Shorthands for the policy's parts (read ``policy`` in new code).

    @property
    def tracked(self) -> Mapping[str, sa.Column[Any]]:
        """Attribute key -> model column, for the columns copied to history."""
        return self.policy.tracked

    @property
    def hidden(self) -> frozenset[str]:
        return self.policy.hidden_keys

    @property
    def untracked(self) -> frozenset[str]:
        return self.policy.untracked_keys

    @property
    def untracked_relationships(self) -> frozenset[str]:
        """Relationship keys in ``__chrononaut_untracked__``: their changes are not versioned."""
        return self.policy.untracked_relationships

    def policy_for_discriminator(self, value: Any) -> ColumnPolicy:
        """The :class:`ColumnPolicy` of the class whose rows carry discriminator ``value``.

        For a hierarchy's base: the policy of the (single-table) subclass a row
        belongs to::

            Document.__chrononaut__.policy_for_discriminator("memo").hidden
        """
        found = self.mapper.polymorphic_map.get(value)
        if found is None:
            known = ", ".join(repr(k) for k in self.mapper.polymorphic_map) or "none"
            raise ValueError(
                f"{self.mapper.class_.__name__} has no subclass with discriminator "
                f"{value!r}; known values: {known}."
            )
        return versioning_info(found.class_).policy


class HistoryBase:
    """Base class of every generated ``<Model>History`` class.

    A history object holds the values a record had before one change, its
    ``version``, the ``changed`` time of that change and its ``change_info``.
    """

    __chrononaut_model__: type[Any]
    version: int
    changed: Any
    #: the writing transaction's id (the changeset); None for rows written before it existed
    transaction_id: int | None

    @hybrid_property
    def change_info(self) -> dict[str, Any]:
        """Who made the change, from where and why (the row's ``change_info`` JSON).

        Loaded as text and decoded on first access: reading a record's versions
        does not pay for decoding what it never looks at. In queries it is the
        ``jsonb`` column: ``History.change_info["user_id"].astext == "alice"``.
        """
        values = self.__dict__
        raw = (
            values[_RAW_CHANGE_INFO]
            if _RAW_CHANGE_INFO in values
            else getattr(self, _RAW_CHANGE_INFO)
        )
        cached = values.get(_DECODED_CHANGE_INFO)
        if cached is None or cached[0] is not raw:
            cached = values[_DECODED_CHANGE_INFO] = (raw, None if raw is None else json.loads(raw))
        return cast(dict[str, Any], cached[1])

    @change_info.inplace.setter
    def _set_change_info(self, value: dict[str, Any]) -> None:
        if cast(Any, sa.inspect(self)).key is not None:
            raise ChrononautException(f"Refusing to modify {self!r}: history rows are immutable.")
        # A new history object: the flush refuses to insert it, as any other.
        self.__dict__[_DECODED_CHANGE_INFO] = (None, value)

    @change_info.inplace.expression
    @classmethod
    def _change_info_column(cls) -> Any:
        return getattr(cls, _CHANGE_INFO_COLUMN)

    @property
    def is_deletion(self) -> bool:
        """True for the row written when the record was deleted (its last state)."""
        return bool((self.change_info or {}).get("deleted"))

    def __repr__(self) -> str:
        mapper: Any = sa.inspect(type(self))
        pk = ", ".join(f"{c.key}={getattr(self, c.key, None)!r}" for c in mapper.primary_key)
        return f"<{type(self).__name__}({pk})>"


class _Unavailable:
    """Class attribute on a history class for a column it does not keep."""

    def __init__(self, key: str, hidden: bool) -> None:
        self.key = key
        self.hidden = hidden

    def __get__(self, obj: Any, owner: type[Any]) -> Any:
        if obj is None:
            return self
        model = owner.__chrononaut_model__.__name__
        if self.hidden:
            raise HiddenAttributeError(
                f"{model}.{self.key} is hidden (__chrononaut_hidden__): history keeps only "
                "that it changed, in change_info['hidden_cols_changed'], not its values."
            )
        raise UntrackedAttributeError(
            f"{model}.{self.key} is untracked (__chrononaut_untracked__): history does "
            "not record it."
        )


def _changed_in_utc(state: Any, *args: Any) -> None:
    """Give ``changed`` back in UTC whatever the connection's time zone.

    A raw listener (it gets the InstanceState): it runs for every loaded
    history row, so it skips the ORM's per-instance wrapper and values already
    in UTC (the drivers give ``timezone.utc`` itself for a UTC session).
    """
    values = state.dict
    value = values.get(CHANGED)
    if value is None or getattr(value, "tzinfo", None) in (None, timezone.utc):
        return
    if isinstance(value, datetime):
        values[CHANGED] = value.astimezone(timezone.utc)


sa.event.listen(HistoryBase, "load", _changed_in_utc, propagate=True, raw=True)
sa.event.listen(HistoryBase, "refresh", _changed_in_utc, propagate=True, raw=True)


def versioning_info(cls: type[Any]) -> VersioningInfo:
    """The :class:`VersioningInfo` of a versioned class or raise ``TypeError``."""
    info = cls.__dict__.get("__chrononaut__") or getattr(cls, "__chrononaut__", None)
    if info is None:
        raise TypeError(f"{cls.__name__} is not a mapped Versioned model")
    return info


def _option(cls: type[Any], name: str) -> list[str]:
    value = getattr(cls, name, None) or []
    if isinstance(value, str) or not all(isinstance(v, str) for v in value):
        raise ConfigurationError(
            f"{cls.__name__}.{name} must be a list of column names, got {value!r}."
        )
    return list(value)


def _column_attrs(mapper: Mapper[Any]) -> dict[str, sa.Column[Any]]:
    """attribute key -> Column for the plain column attributes of ``mapper``."""
    out = {}
    # mapper.column_attrs would configure every mapper; this runs mid-declaration.
    for prop in mapper.iterate_properties:
        if not isinstance(prop, sa.orm.ColumnProperty):
            continue
        column = prop.columns[0]
        if isinstance(column, sa.Column) and column.table is not None:
            out[prop.key] = column
    return out


def _relationship_keys(mapper: Mapper[Any]) -> set[str]:
    return {p.key for p in mapper.iterate_properties if isinstance(p, sa.orm.RelationshipProperty)}


def _resolve_names(
    cls: type[Any],
    name: str,
    columns: dict[str, sa.Column[Any]],
    relationships: set[str] | None = None,
) -> set[str]:
    """Attribute keys named by option ``name``; relationship keys too when given."""
    by_column_name = {c.name: key for key, c in columns.items()}
    keys = set()
    for entry in _option(cls, name):
        key = entry if entry in columns else by_column_name.get(entry)
        if key is None and relationships is not None and entry in relationships:
            key = entry
        if key is None:
            raise ConfigurationError(
                f"{cls.__name__}.{name} names {entry!r}, which is not a column of "
                f"{cls.__name__}; known columns: {', '.join(sorted(columns))}."
            )
        keys.add(key)
    return keys


def _copy_column(column: sa.Column[Any], disabled: set[str], key: str) -> sa.Column[Any]:
    copy = _compat.copy_column(column)
    copy.unique = False
    copy.index = False
    copy.default = copy.server_default = None
    copy.onupdate = copy.server_onupdate = None
    # History keeps the values the database generated: plain columns, written as given.
    copy.computed = None
    copy.identity = None
    copy.autoincrement = False
    copy.foreign_keys = set()
    copy.constraints = set()
    copy.comment = column.comment
    copy.info = {INFO_KEY: "copy", "disable_index": key in disabled}
    if not column.primary_key:
        copy.nullable = True
    return copy


def _copy_indexes(model_table: sa.Table, history_table: sa.Table, disabled: set[str]) -> None:
    """Non-unique copies of the model table's indexes and unique constraints."""
    column_sets = [
        idx.columns for idx in model_table.indexes if len(idx.expressions) == len(idx.columns)
    ]
    column_sets += [
        uc.columns for uc in model_table.constraints if isinstance(uc, sa.UniqueConstraint)
    ]
    existing = {tuple(c.name for c in idx.columns) for idx in history_table.indexes}
    for cols in column_sets:
        names = tuple(c.name for c in cols)
        if not names or names in existing:
            continue
        copies = [history_table.c.get(c.key) for c in cols]
        if any(c is None or c.info.get("disable_index") for c in copies):
            continue
        existing.add(names)
        sa.Index(fit_name(f"ix_{history_table.name}_{'_'.join(names)}"), *cast(list[Any], copies))


def pk_keys_of(mapper: Mapper[Any]) -> tuple[str, ...]:
    """Attribute keys of ``mapper``'s primary key columns, in key order."""
    return tuple(mapper.get_property_by_column(c).key for c in mapper.primary_key)


def _feed_indexes(table: sa.Table, pk_copies: list[sa.Column[Any]]) -> None:
    """The indexes :func:`chrononaut.activity` reads a base history table through.

    ``(changed, <primary key>, version)`` gives the feed's order (newest
    first) and its keyset paging; ``transaction_id`` finds a changeset.
    """
    order = [table.c[CHANGED], *pk_copies, table.c[VERSION]]
    sa.Index(fit_name(f"ix_{table.name}_{CHANGED}"), *order)
    sa.Index(fit_name(f"ix_{table.name}_{TRANSACTION_ID}"), table.c[TRANSACTION_ID])


def _history_class(
    cls: type[Any], base: type[Any], hidden: set[str], untracked: set[str]
) -> type[Any]:
    namespace: dict[str, Any] = {"__module__": cls.__module__, "__chrononaut_model__": cls}
    for key in hidden:
        namespace[key] = _Unavailable(key, hidden=True)
    for key in untracked - set(RESERVED_COLUMNS):  # the history table's own columns win
        namespace[key] = _Unavailable(key, hidden=False)
    if getattr(cls, "__chrononaut_copy_validators__", False):
        mapper = sa.inspect(cls)
        for key, (method, _opts) in mapper.validators.items():
            if key not in hidden | untracked:
                namespace[method.__name__] = method
    return type(f"{cls.__name__}History", (base,), namespace)


def build_history(mapper: Mapper[Any]) -> VersioningInfo:
    """Create the history table, class and mapper for a versioned ``mapper``."""
    cls = mapper.class_
    parent = mapper.inherits
    parent_info: VersioningInfo | None = (
        getattr(parent.class_, "__chrononaut__", None) if (parent is not None) else None
    )
    columns = _column_attrs(mapper)
    hidden = _resolve_names(cls, "__chrononaut_hidden__", columns)
    relationships = _relationship_keys(mapper)
    untracked = _resolve_names(cls, "__chrononaut_untracked__", columns, relationships)
    untracked_relationships = untracked & relationships
    untracked -= relationships
    disabled = _resolve_names(cls, _INDEX_OPTION, columns)
    if parent_info is not None:  # a subclass's own lists add to its parent's
        hidden |= parent_info.hidden
        untracked |= parent_info.untracked
        untracked_relationships |= parent_info.untracked_relationships
    # Columns of RecordChanges live in the history table's own meta columns.
    untracked |= {k for k, c in columns.items() if c.info.get(INFO_KEY) == "record_changes"}
    pk_keys = pk_keys_of(mapper)
    _check_options(cls, mapper, columns, hidden, untracked, pk_keys)

    local = cast(sa.Table, mapper.local_table)
    own = {
        key: col
        for key, col in columns.items()
        if col.table is local and col.info.get(INFO_KEY) != VERSION
    }
    tracked_here = {k: c for k, c in own.items() if k not in hidden | untracked}
    # Load a column's old value when it is set unloaded, so history records it.
    properties = {p.key: p for p in mapper.iterate_properties}
    for key in columns.keys() - untracked:
        cast(sa.orm.ColumnProperty[Any], properties[key]).active_history = True

    if parent_info is None:
        table, history_mapper = _build_base(cls, mapper, tracked_here, disabled, hidden, untracked)
        tables = [table]
    elif mapper.single:
        table, history_mapper = _build_single(
            cls, mapper, parent_info, tracked_here, disabled, hidden, untracked
        )
        tables = list(parent_info.history_tables)
    else:
        table, history_mapper = _build_joined(
            cls, mapper, parent_info, tracked_here, disabled, hidden, untracked
        )
        tables = [*parent_info.history_tables, table]

    tracked = {k: c for k, c in columns.items() if k not in hidden | untracked}
    tracked = {k: c for k, c in tracked.items() if c.info.get(INFO_KEY) != VERSION}
    info = VersioningInfo(
        history_mapper=history_mapper,
        history_table=table,
        history_tables=tables,
        policy=column_policy(cls, columns, tracked, hidden, untracked, untracked_relationships),
        pk_keys=pk_keys,
        primary_key_nonunique=bool(getattr(cls, "__chrononaut_primary_key_nonunique__", False)),
    )
    info.insert_columns = _insert_columns(history_mapper, tables, set(tracked))
    info.mapper = mapper
    return info


def _check_options(
    cls: type[Any],
    mapper: Mapper[Any],
    columns: dict[str, sa.Column[Any]],
    hidden: set[str],
    untracked: set[str],
    pk_keys: tuple[str, ...],
) -> None:
    both = hidden & untracked
    if both:
        raise ConfigurationError(
            f"{cls.__name__} lists {sorted(both)!r} in both __chrononaut_hidden__ and "
            "__chrononaut_untracked__; choose one."
        )
    in_pk = (hidden | untracked) & set(pk_keys)
    if in_pk:
        raise ConfigurationError(
            f"{cls.__name__}: primary key columns {sorted(in_pk)!r} cannot be hidden or "
            "untracked; history rows are keyed by them."
        )
    clashes = {
        name
        for k, c in columns.items()
        for name in {k, c.name} & set(RESERVED_COLUMNS)
        if c.info.get(INFO_KEY) is None
    }
    if clashes:
        # Untracked would not help: the history table keeps these names for its own
        # columns, and ``version`` is the record's version counter.
        raise ConfigurationError(
            f"{cls.__name__} has columns {sorted(clashes)!r}, which the history table "
            f"uses for itself; rename them (e.g. revision = mapped_column({'revision'!r}, "
            "...)): Versioned already gives every model a version column."
        )
    discriminator = mapper.polymorphic_on
    if discriminator is not None:
        key = next((k for k, c in columns.items() if c is discriminator), None)
        if key in hidden | untracked:
            raise ConfigurationError(
                f"{cls.__name__}: the polymorphic discriminator {key!r} cannot be hidden "
                "or untracked; history loading needs it."
            )


def _history_table_name(cls: type[Any], table: sa.Table) -> str:
    """The history table's name, checked against PostgreSQL's limit and the MetaData."""
    name = cls.__dict__.get("__chrononaut_tablename__")
    if name and len(name.encode()) > MAX_NAME:
        raise ConfigurationError(
            f"{cls.__name__}.__chrononaut_tablename__ = {name!r} is {len(name.encode())} bytes "
            f"long; PostgreSQL cuts names at {MAX_NAME}: choose a shorter name."
        )
    name = name or history_table_name(table.name)
    key = name if table.schema is None else f"{table.schema}.{name}"
    existing = table.metadata.tables.get(key)
    if existing is not None:
        raise ConfigurationError(
            f"{cls.__name__}'s history table {key!r} is already {_owner_of(existing, cls)}; "
            f"set {cls.__name__}.__chrononaut_tablename__ to another name."
        )
    return name


def _owner_of(table: sa.Table, cls: type[Any]) -> str:
    """What ``table`` is, for an error message: whose history, or whose table."""
    history_of = _model_of_history.get(table)
    if history_of is not None:
        return f"the history table of {history_of.__name__}"
    registry = getattr(cls, "registry", None)
    for mapper in getattr(registry, "mappers", ()):
        if mapper.local_table is table:
            return f"the table of {mapper.class_.__name__}"
    return "a table in the same MetaData"


def _build_base(
    cls: type[Any],
    mapper: Mapper[Any],
    tracked: dict[str, sa.Column[Any]],
    disabled: set[str],
    hidden: set[str],
    untracked: set[str],
) -> tuple[sa.Table, Mapper[Any]]:
    local = cast(sa.Table, mapper.local_table)
    copies = {key: _copy_column(col, disabled, key) for key, col in tracked.items()}
    table = sa.Table(
        _history_table_name(cls, local),
        local.metadata,
        *copies.values(),
        sa.Column(
            VERSION,
            sa.Integer,
            primary_key=True,
            autoincrement=False,
            info={INFO_KEY: VERSION},
        ),
        sa.Column(CHANGED, sa.DateTime(timezone=True), nullable=False, info={INFO_KEY: CHANGED}),
        sa.Column(CHANGE_INFO, JSONB, nullable=False, info={INFO_KEY: CHANGE_INFO}),
        sa.Column(
            TRANSACTION_ID,
            sa.BigInteger,
            server_default=sa.text(TRANSACTION_ID_DEFAULT),
            info={INFO_KEY: TRANSACTION_ID},
        ),
        schema=local.schema,
        comment=f"History of {local.fullname}, written by chrononaut",
    )
    _copy_indexes(local, table, disabled)
    _feed_indexes(table, [copies[key] for key in pk_keys_of(mapper)])
    _history_tables.add(table)
    _model_of_history[table] = cls
    _model_of_table[local] = cls
    polymorphic_on = None
    if mapper.polymorphic_on is not None:
        polymorphic_on = next(
            (copies[k] for k, c in tracked.items() if c is mapper.polymorphic_on), None
        )
    history_cls = _history_class(cls, HistoryBase, hidden, untracked)
    properties: dict[str, Any] = dict(copies)
    # change_info is loaded as text, decoded when read (HistoryBase.change_info)
    properties[_RAW_CHANGE_INFO] = sa.orm.column_property(sa.cast(table.c[CHANGE_INFO], sa.Text))
    # the jsonb column itself, never loaded: what HistoryBase.change_info is in queries
    properties[_CHANGE_INFO_COLUMN] = sa.orm.deferred(table.c[CHANGE_INFO])
    history_mapper = mapper.registry.map_imperatively(
        history_cls,
        table,
        properties=properties,
        polymorphic_on=polymorphic_on,
        polymorphic_identity=mapper.polymorphic_identity if polymorphic_on is not None else None,
    )
    return table, history_mapper


def _build_joined(
    cls: type[Any],
    mapper: Mapper[Any],
    parent: VersioningInfo,
    tracked: dict[str, sa.Column[Any]],
    disabled: set[str],
    hidden: set[str],
    untracked: set[str],
) -> tuple[sa.Table, Mapper[Any]]:
    local = cast(sa.Table, mapper.local_table)
    parent_table = parent.history_table
    copies = {key: _copy_column(col, disabled, key) for key, col in tracked.items()}
    pk_copies = [c for c in copies.values() if c.primary_key]
    version = sa.Column(
        VERSION, sa.Integer, primary_key=True, autoincrement=False, info={INFO_KEY: VERSION}
    )
    # Join to the parent's history row of the same version, by the columns the
    # model's own inheritance join uses.
    referred = []
    for copy in pk_copies:
        model_col = local.c[copy.key]
        fk = next(iter(model_col.foreign_keys), None)
        target = fk.column if fk is not None else None
        parent_key = (
            next((k for k, c in parent.tracked.items() if c is target), None)
            if target is not None
            else None
        )
        if parent_key is None:
            raise ConfigurationError(
                f"{cls.__name__}: primary key column {copy.key!r} of a joined-inheritance "
                "subclass must reference its parent's primary key for history to join."
            )
        referred.append(
            parent_table.c[parent.history_mapper.get_property(parent_key).columns[0].key]
        )
    table = sa.Table(
        _history_table_name(cls, local),
        local.metadata,
        *copies.values(),
        version,
        sa.ForeignKeyConstraint(
            [*pk_copies, version],
            [*referred, parent_table.c[VERSION]],
            ondelete="CASCADE",
        ),
        schema=local.schema,
        comment=f"History of {local.fullname}, written by chrononaut",
    )
    _copy_indexes(local, table, disabled)
    _history_tables.add(table)
    _model_of_history[table] = cls
    _model_of_table[local] = cls
    history_cls = _history_class(cls, parent.history_mapper.class_, hidden, untracked)
    properties = {key: col for key, col in copies.items() if not col.primary_key}
    history_mapper = mapper.registry.map_imperatively(
        history_cls,
        table,
        inherits=parent.history_mapper,
        properties=properties,
        polymorphic_identity=_identity(mapper, parent),
    )
    return table, history_mapper


def _identity(mapper: Mapper[Any], parent: VersioningInfo) -> Any:
    if parent.history_mapper.polymorphic_on is None:
        return None
    return mapper.polymorphic_identity


def _build_single(
    cls: type[Any],
    mapper: Mapper[Any],
    parent: VersioningInfo,
    tracked: dict[str, sa.Column[Any]],
    disabled: set[str],
    hidden: set[str],
    untracked: set[str],
) -> tuple[sa.Table, Mapper[Any]]:
    table = parent.history_table
    properties = {}
    for key, col in tracked.items():
        existing = table.c.get(col.key)
        if existing is None:
            existing = _copy_column(col, disabled, key)
            table.append_column(existing)
            if col.index or col.unique:
                sa.Index(fit_name(f"ix_{table.name}_{col.name}"), existing)
        properties[key] = existing
    history_cls = _history_class(cls, parent.history_mapper.class_, hidden, untracked)
    inherited = set(parent.history_mapper.columns)
    siblings = [c.key for c in table.c if c not in inherited and c.key not in properties]
    history_mapper = mapper.registry.map_imperatively(
        history_cls,
        inherits=parent.history_mapper,
        properties=properties,
        exclude_properties=siblings,
        polymorphic_identity=_identity(mapper, parent),
    )
    return table, history_mapper


def _insert_columns(
    history_mapper: Mapper[Any], tables: list[sa.Table], tracked: set[str]
) -> dict[sa.Table, list[tuple[str, str]]]:
    """Per history table, the (column key, attribute key) pairs one INSERT writes."""
    out: dict[sa.Table, list[tuple[str, str]]] = {}
    for table in tables:
        pairs = []
        for column in table.c:
            marker = column.info.get(INFO_KEY)
            if marker in META_COLUMNS:
                pairs.append((column.key, marker))
                continue
            try:
                prop = history_mapper.get_property_by_column(column)
            except sa.orm.exc.UnmappedColumnError:
                continue  # a sibling single-table subclass's column
            if prop.key in tracked:
                pairs.append((column.key, prop.key))
        out[table] = pairs
    return out
