"""The SQL of :func:`chrononaut.activity`: one statement per shape of call.

Schema knowledge only, like :mod:`.history`: nothing here runs a statement.
:func:`feed_statement` builds the ``UNION ALL`` of two branches per model
hierarchy (its history table; its rows of ``chrononaut_creations``), each
filtered, ordered and limited through its own index, merged and limited
again. What varies between calls of one :class:`Shape` (the user, the times,
the transaction, the limit, the cursor's position) is a bind parameter, so
:func:`compiled` builds and compiles each shape once and hands back SQL text,
which SQLAlchemy caches for next to nothing: building the statement costs far
more than running it.

A history row's changed columns are found by comparing it, in SQL, with the
record's next state (its next history row, or the record itself) through a
``LATERAL`` join run for the page's rows only; the comparison is PostgreSQL's
binary-image ``*<>``, as the database guard's, so every type compares.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import array as postgresql_array
from sqlalchemy.dialects.postgresql.base import PGDialect

from ..locking import keys
from .creations import table_of
from .history import INFO_KEY, versioning_info
from .names import CHANGE_INFO, CHANGED, TRANSACTION_ID, VERSION

#: Constants are written into the SQL, not sent as parameters: a driver that
#: prepares statements (asyncpg) must know every parameter's type, and the
#: shape's constants never change anyway.
_ONE = sa.literal_column("1", sa.Integer)


def _text(value: str) -> Any:
    """``value`` as a SQL string literal."""
    return sa.literal_column("'" + value.replace("'", "''") + "'", sa.Text)


def base_of(cls: type[Any]) -> type[Any]:
    """The versioned class at the top of ``cls``'s hierarchy."""
    return cast(type[Any], sa.inspect(cls).base_mapper.class_)


def history_branch_name(base: type[Any]) -> str:
    return f"h:{versioning_info(base).history_table.fullname}"


def creation_branch_name(base: type[Any]) -> str:
    return f"c:{keys.table_name(base)}"


@dataclass(frozen=True)
class Shape:
    """What the statement of a call looks like: which filters it has, and where the
    cursor's branch is. Calls of one shape share one statement (built and compiled
    once); their values travel as bind parameters."""

    user_id: bool
    since: bool
    until: bool
    transaction_id: bool
    cursor_branch: str | None


def _common(table: Any, shape: Shape) -> list[Any]:
    where = []
    if shape.user_id:
        user = sa.bindparam("user_id", None, type_=sa.Text)
        where.append(table.c[CHANGE_INFO].op("->>")(_text("user_id")) == user)
    if shape.since:
        where.append(table.c[CHANGED] >= sa.bindparam("since", None, type_=_TIME))
    if shape.until:
        where.append(table.c[CHANGED] < sa.bindparam("until", None, type_=_TIME))
    if shape.transaction_id:
        tx = sa.bindparam("transaction_id", None, type_=sa.BigInteger)
        where.append(table.c[TRANSACTION_ID] == tx)
    return where


_TIME = sa.DateTime(timezone=True)


def _keyset(branch: str, shape: Shape, order: list[Any]) -> Any:
    """The WHERE clause of a branch placing it after the cursor (``order[0]`` is changed).

    In the cursor's own branch the key is compared in full; ``c_key_<i>`` are
    the key's columns (typed like them).
    """
    if shape.cursor_branch is None:
        return None
    changed = sa.bindparam("c_changed", None, type_=_TIME)
    if branch > shape.cursor_branch:
        return order[0] < changed
    if branch < shape.cursor_branch:
        return order[0] <= changed
    keys_ = [sa.bindparam(f"c_key_{i}", None, type_=c.type) for i, c in enumerate(order[1:-1])]
    version = sa.bindparam("c_version", None, type_=sa.Integer)
    # ``changed <=`` too: an index on (..., changed) without the key still bounds the scan.
    return sa.and_(order[0] <= changed, sa.tuple_(*order) < sa.tuple_(changed, *keys_, version))


def _limit_param() -> Any:
    return sa.bindparam("limit", None, type_=sa.Integer)


def _identities(cls: type[Any]) -> list[Any] | None:
    """The polymorphic identities of ``cls`` and its subclasses, or None for a whole base."""
    mapper = sa.inspect(cls)
    if mapper.base_mapper is mapper or mapper.polymorphic_on is None:
        return None
    return [m.polymorphic_identity for m in mapper.self_and_descendants]


def _history_branch(cls: type[Any], shape: Shape, classes: tuple[type[Any], ...]) -> Any:
    base = base_of(cls)
    info = versioning_info(base)
    history = info.history_table
    mapper = sa.inspect(base)
    pk = [history.c[info.history_mapper.get_property(k).columns[0].key] for k in info.pk_keys]
    branch = history_branch_name(base)
    where = _common(history, shape)
    discriminator = _discriminator(info)
    identities = _subclass_filter(classes)
    if identities is not None and discriminator is not None:
        where.append(discriminator.in_(identities))
    order = [history.c[CHANGED], *pk, history.c[VERSION]]
    if shape.cursor_branch is not None:
        where.append(_keyset(branch, shape, order))
    entity = discriminator.label("entity") if discriminator is not None else sa.null()
    inner = (
        sa.select(
            history.c[CHANGED].label(CHANGED),
            history.c[VERSION].label(VERSION),
            history.c[CHANGE_INFO].label(CHANGE_INFO),
            history.c[TRANSACTION_ID].label("transaction_id"),
            sa.cast(entity, sa.Text).label("entity"),
            *[c.label(f"pk_{i}") for i, c in enumerate(pk)],
            *[history.c[key].label(f"v_{key}") for key, _ in _compared(info, mapper)],
        )
        .where(*where)
        .order_by(*[c.desc() for c in order])
        .limit(_limit_param())
        .subquery()
    )
    pks = [inner.c[f"pk_{i}"] for i in range(len(pk))]
    rank = sa.func.row_number().over(
        order_by=[inner.c.changed.desc(), *[c.desc() for c in pks], inner.c.version.desc()]
    )
    following = _next_state(info, mapper, inner, pks)
    columns = _changed_columns(info, mapper, inner, following)
    return sa.select(
        _text(branch).label("branch"),
        inner.c.changed,
        inner.c.version,
        inner.c.change_info,
        inner.c.transaction_id,
        sa.cast(sa.func.jsonb_build_array(*pks), sa.Text).label("key"),
        inner.c.entity,
        columns.label("columns"),
        rank.label("rank"),
    ).select_from(inner.outerjoin(following, sa.true()))


def _discriminator(info: Any) -> Any:
    mapper = info.history_mapper
    return mapper.polymorphic_on if mapper.polymorphic_on is not None else None


def _subclass_filter(classes: tuple[type[Any], ...]) -> list[Any] | None:
    """Polymorphic identities the feed keeps, or None for every row of the hierarchy."""
    found: list[Any] = []
    for cls in classes:
        identities = _identities(cls)
        if identities is None:
            return None
        found += identities
    return found


def _compared(info: Any, mapper: Any) -> list[tuple[str, sa.Column[Any]]]:
    """(history column key, model column) of the base history table's tracked columns."""
    history = info.history_table
    local = mapper.local_table
    out = []
    for column_key, source in info.insert_columns[history]:
        if source in (VERSION, CHANGED, CHANGE_INFO) or source in info.pk_keys:
            continue
        model_column = mapper.get_property(source).columns[0]
        if model_column.table is local:
            out.append((column_key, model_column))
    return out


def _next_state(info: Any, mapper: Any, inner: Any, pks: list[Any]) -> Any:
    """LATERAL: the record's state after the change, its next history row or itself."""
    history = info.history_table.alias("chrononaut_next")
    local = mapper.local_table
    compared = _compared(info, mapper)
    history_pk = [history.c[c.key] for c in info.history_table.primary_key if c.key != VERSION]
    model_pk = [local.c[c.key] for c in mapper.primary_key]
    version_column = next(c for c in local.c if c.info.get(INFO_KEY) == VERSION)
    from_history = sa.select(
        _ONE.label("found"),
        *[history.c[key].label(f"n_{key}") for key, _ in compared],
    ).where(
        *[a == b for a, b in zip(history_pk, pks, strict=True)],
        history.c[VERSION] == inner.c.version + _ONE,
    )
    from_record = sa.select(
        _ONE.label("found"),
        *[column.label(f"n_{key}") for key, column in compared],
    ).where(
        *[a == b for a, b in zip(model_pk, pks, strict=True)],
        version_column == inner.c.version + _ONE,
    )
    return sa.union_all(from_history, from_record).limit(1).lateral("chrononaut_following")


class _Record(sa.types.UserDefinedType[Any]):
    """PostgreSQL's anonymous ``record``, for the binary-image comparison ``*<>``."""

    cache_ok = True

    def get_col_spec(self, **kw: Any) -> str:
        return "record"


def _image_differs(old: Any, new: Any) -> Any:
    """``ROW(old)::record *<> ROW(new)::record``: differ, for any type (``json`` too), as
    the database guard compares; two NULLs are equal."""
    left = sa.cast(sa.func.ROW(old), _Record())
    right = sa.cast(sa.func.ROW(new), _Record())
    return left.op("*<>", is_comparison=True)(right)


def _changed_columns(info: Any, mapper: Any, inner: Any, following: Any) -> Any:
    """text[] of the attributes a history row's change changed; NULL without a next state."""
    names = []
    for key, model_column in _compared(info, mapper):
        attribute = mapper.get_property_by_column(model_column).key
        differs = _image_differs(inner.c[f"v_{key}"], following.c[f"n_{key}"])
        names.append(sa.case((differs, _text(attribute))))
    if names:
        array: Any = sa.func.array_remove(postgresql_array(names), sa.null())
    else:
        array = sa.literal_column("'{}'::text[]", ARRAY(sa.Text))
    return sa.case((following.c.found.is_(None), sa.null()), else_=array)


def _creation_branch(cls: type[Any], shape: Shape, classes: tuple[type[Any], ...]) -> Any:
    base = base_of(cls)
    table = table_of(base)
    name = keys.table_name(base)
    branch = creation_branch_name(base)
    where = [table.c.table_name == _text(name), *_common(table, shape)]
    identities = _subclass_filter(classes)
    if identities is not None:
        where.append(table.c.entity.in_([_text(str(i)) for i in identities]))
    # An event row holds the keys of a flush's records: one feed entry per key.
    key = (
        sa.func.unnest(table.c.record_keys)
        .table_valued(sa.column("key", sa.Text))
        .render_derived(name="chrononaut_key")
    )
    order = [table.c[CHANGED], key.c.key, table.c[VERSION]]
    if shape.cursor_branch is not None:
        where.append(_keyset(branch, shape, order))
    inner = (
        sa.select(
            table.c[CHANGED].label(CHANGED),
            table.c[VERSION].label(VERSION),
            table.c[CHANGE_INFO].label(CHANGE_INFO),
            table.c[TRANSACTION_ID].label("transaction_id"),
            key.c.key.label("key"),
            table.c.entity.label("entity"),
        )
        .select_from(table.join(key, sa.true()))
        .where(*where)
        .order_by(*[c.desc() for c in order])
        .limit(_limit_param())
        .subquery()
    )
    rank = sa.func.row_number().over(
        order_by=[inner.c.changed.desc(), inner.c.key.desc(), inner.c.version.desc()]
    )
    return sa.select(
        _text(branch).label("branch"),
        inner.c.changed,
        inner.c.version,
        inner.c.change_info,
        inner.c.transaction_id,
        inner.c.key,
        inner.c.entity,
        sa.cast(sa.null(), ARRAY(sa.Text)).label("columns"),
        rank.label("rank"),
    )


_Hierarchies = tuple[tuple[type[Any], tuple[type[Any], ...]], ...]


def feed_statement(hierarchies: _Hierarchies, shape: Shape) -> Any:
    """The one statement of a page: both branches of every hierarchy, merged and limited."""
    branches = []
    for base, classes in hierarchies:
        branches.append(_history_branch(base, shape, classes))
        branches.append(_creation_branch(base, shape, classes))
    feed = sa.union_all(*branches).subquery("chrononaut_feed")
    return (
        sa.select(feed)
        .order_by(feed.c.changed.desc(), feed.c.branch.desc(), feed.c.rank)
        .limit(_limit_param())
    )


_NAMED = PGDialect(paramstyle="named")


@functools.lru_cache(maxsize=256)
def compiled(hierarchies: _Hierarchies, shape: Shape) -> tuple[Any, dict[str, Any]]:
    """The statement of ``shape`` as SQL text, and its constant parameters.

    Building and compiling the statement costs far more than running it; the
    text (with typed bind parameters) is cheap for SQLAlchemy to cache, so a
    call costs one round trip and the rows' Python.
    """
    compiled = feed_statement(hierarchies, shape).compile(
        dialect=_NAMED, compile_kwargs={"render_postcompile": True}
    )
    variable = {"user_id", "since", "until", "transaction_id", "limit", "c_changed", "c_version"}
    typed = [
        sa.bindparam(name, type_=bind.type)
        for name, bind in compiled.binds.items()
        if name in variable or name.startswith("c_key_")
    ]
    constants = {k: v for k, v in compiled.params.items() if k not in {b.key for b in typed}}
    return sa.text(compiled.string).bindparams(*typed), constants
