"""History for bulk statements: ``update(Model)``, ``delete(Model)``, ``Query.update``.

Before the statement runs, one round trip locks the rows it matches and
returns their keys (``SELECT <pk> FROM t WHERE <criteria> FOR UPDATE``), and a
second copies their prior state to history, unless the lock guard refuses one
of them, in the same statement:

.. code-block:: sql

    WITH chrononaut_refused AS (<the guard's probes and leases for those keys>),
         chrononaut_copy AS (INSERT INTO t_history SELECT ... FROM t
                             WHERE <pk> IN (<keys>)
                             AND NOT EXISTS (SELECT 1 FROM chrononaut_refused))
    SELECT * FROM chrononaut_refused

A refused statement raises :class:`~chrononaut.RecordLockedError` having
written nothing. The statement itself is then limited to those keys and bumps
``version``, so a row committed by someone else in between is never changed
without history.
Core statements on a versioned model's table through the session are covered
the same way; statements on history tables are refused.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import ORMExecuteState

from .. import _compat, context
from ..exceptions import ChrononautException
from ..flush_writes import GUARD_INFO_KEY
from ..settings import activate, deactivate, settings_for
from . import creations
from .change_info import ChangeInfoBuilder
from .history import HistoryBase, VersioningInfo, is_history_table, versioned_class_of_table
from .names import CHANGE_INFO, CHANGED, VERSION
from .record_changes import RecordChanges
from .recorder import refuse_history_insert, utcnow


def _value_keys(mapper: Any, statement: Any, parameters: Any) -> set[str]:
    """Attribute keys an ORM UPDATE sets."""
    raw = _compat.update_value_keys(statement)
    if isinstance(parameters, dict):
        raw += list(parameters)
    keys = set()
    for key in raw:
        if isinstance(key, str):
            prop = mapper.attrs.get(key)
            if prop is None:
                column = mapper.local_table.c.get(key)
                prop = mapper.get_property_by_column(column) if column is not None else None
            keys.add(prop.key if prop is not None else key)
        elif hasattr(key, "key") and key.key in mapper.attrs:
            keys.add(key.key)
        elif isinstance(key, sa.Column):
            keys.add(mapper.get_property_by_column(key).key)
    return keys


def _refuse_history_statement(orm_state: ORMExecuteState, name: str) -> None:
    if orm_state.is_delete and context.history_deletion_allowed():
        return
    verb = "delete from" if orm_state.is_delete else "update"
    raise ChrononautException(
        f"Refusing to {verb} {name}: history rows are immutable"
        + (
            "; delete them only inside suppress_versioning(allow_deleting_history=True)."
            if orm_state.is_delete
            else "."
        )
    )


def _inserted_class(orm_state: ORMExecuteState) -> type[Any] | None:
    """The versioned class whose table a bulk INSERT writes, if any."""
    mapper = orm_state.bind_mapper
    cls = mapper.class_ if mapper is not None else _versioned_class_of_table(orm_state.statement)
    if cls is None or getattr(cls, "__chrononaut__", None) is None:
        return None
    return cls


def _refuse_history_insert_statement(orm_state: ORMExecuteState) -> None:
    mapper = orm_state.bind_mapper
    if mapper is not None and issubclass(mapper.class_, HistoryBase):
        refuse_history_insert(mapper.class_.__name__)
    table = getattr(orm_state.statement, "table", None)
    if isinstance(table, sa.Table) and is_history_table(table):
        refuse_history_insert(table.name)


def _refuse_primary_key_change(cls: type[Any], info: VersioningInfo, keys: set[str]) -> None:
    changed = sorted(keys & set(info.pk_keys))
    if changed:
        raise ChrononautException(
            f"Bulk UPDATE of {cls.__name__} sets primary key column {changed[0]!r}, which "
            "would cut the records off from their history; insert new records instead."
        )


def _versioned_class_of_table(statement: Any) -> type[Any] | None:
    table = getattr(statement, "table", None)
    return versioned_class_of_table(table) if isinstance(table, sa.Table) else None


def do_orm_execute(orm_state: ORMExecuteState) -> Any:
    """Make bulk UPDATE/DELETE of versioned models write history; refuse it on history.

    INSERTs into history tables are refused too: only chrononaut writes history,
    on the Connection, which this event never sees. INSERTs into versioned
    tables record their creation events (:mod:`.creations`).
    """
    if orm_state.is_insert:
        _refuse_history_insert_statement(orm_state)
        cls = _inserted_class(orm_state)
        return None if cls is None else creations.bulk_insert(orm_state, cls)
    if not (orm_state.is_update or orm_state.is_delete):
        return
    statement = orm_state.statement
    mapper = orm_state.bind_mapper
    if mapper is None:
        table = getattr(statement, "table", None)
        if isinstance(table, sa.Table) and is_history_table(table):
            _refuse_history_statement(orm_state, table.name)
            return
        cls = _versioned_class_of_table(statement)
        if cls is None:
            return
        mapper = sa.inspect(cls)
    cls = mapper.class_
    if issubclass(cls, HistoryBase):
        _refuse_history_statement(orm_state, cls.__name__)
        return
    info: VersioningInfo | None = getattr(cls, "__chrononaut__", None)
    if info is None:
        return
    if orm_state.is_update:
        _refuse_primary_key_change(cls, info, _value_keys(mapper, statement, orm_state.parameters))
    if context.versioning_suppressed():
        return
    if isinstance(orm_state.parameters, list | tuple):
        raise ChrononautException(
            f"ORM bulk UPDATE by primary key of {cls.__name__} (a list of parameter dicts) "
            "would skip history; use update(...).where(...) statements or load the objects."
        )
    if len(info.history_tables) > 1:  # a joined subclass: its UPDATE spans two tables
        joined = [
            m.class_.__name__
            for m in mapper.self_and_descendants
            if len(getattr(m.class_, "__chrononaut__", info).history_tables) > 1
        ]
        raise ChrononautException(
            f"Bulk statements on {cls.__name__} would skip the history of its joined-table "
            f"subclasses ({', '.join(joined)}); load and modify the objects instead."
        )
    settings = settings_for(orm_state.session)
    token = activate(settings)
    try:
        builder = ChangeInfoBuilder(settings)
        if orm_state.is_update:
            keys = _value_keys(mapper, statement, orm_state.parameters)
            if VERSION in keys:
                raise ChrononautException(
                    f"Bulk UPDATE of {cls.__name__} sets 'version', which chrononaut manages."
                )
            tracked = keys & info.policy.tracked.keys()
            hidden = keys & info.policy.hidden_keys
            if not tracked and not hidden:
                return  # untracked only: no version, no history
            change_info = builder.build(None, hidden_changed=sorted(hidden))
        else:
            keys = set()
            change_info = builder.build(None, deleted=True)
        if settings.require_extra_change_info and not builder.has_extra():
            raise ChrononautException(
                f"Bulk statement on {cls.__name__} without extra change info, which "
                "CHRONONAUT_REQUIRE_EXTRA_CHANGE_INFO requires; wrap it in rationale(...)."
            )
    finally:
        deactivate(token)
    session = orm_state.session
    if session.autoflush:
        session.flush()  # pending changes first, so they are versioned in order
    matched = _copy_to_history(session, cls, info, statement, change_info, keys)
    orm_state.statement = _limit_and_bump(orm_state, cls, info, statement, matched, change_info)
    if orm_state.execution_options.get("synchronize_session") == "evaluate":
        orm_state.update_execution_options(synchronize_session="fetch")


#: Attempts at the guarded copy whose probes meet other writers' probes.
_ATTEMPTS = 20


def _pk_columns(cls: type[Any], info: VersioningInfo) -> list[Any]:
    return [getattr(cls, key) for key in info.pk_keys]


def _keyed(cls: type[Any], info: VersioningInfo, matched: list[tuple[Any, ...]]) -> Any:
    """WHERE clause: the primary key is one of ``matched``."""
    pk = _pk_columns(cls, info)
    if len(pk) == 1:
        return pk[0].in_([row[0] for row in matched])
    return sa.tuple_(*pk).in_(matched)


def _matched_keys(
    session: Any, cls: type[Any], info: VersioningInfo, statement: Any, lock: bool
) -> list[tuple[Any, ...]]:
    """Primary keys of the rows ``statement`` matches (locked ``FOR UPDATE`` with ``lock``)."""
    criteria = statement.whereclause if statement.whereclause is not None else sa.true()
    query = sa.select(*_pk_columns(cls, info)).where(criteria)
    if lock:
        query = query.with_for_update(of=sa.inspect(cls).local_table)
    connection = session.connection(bind_arguments={"mapper": sa.inspect(cls)})
    return [tuple(row) for row in connection.execute(query)]


def _copy_to_history(
    session: Any,
    cls: type[Any],
    info: VersioningInfo,
    statement: Any,
    change_info: dict[str, Any],
    changed: set[str],
) -> list[tuple[Any, ...]]:
    """Lock the matched rows, copy them to history (guarded); return their primary keys."""
    mapper = sa.inspect(cls)
    guard = session.info.get(GUARD_INFO_KEY)
    if guard is not None and settings_for(session).lock_wait > 0:
        # Wait (CHRONONAUT_LOCK_WAIT) for lock() holders before locking the rows.
        unlocked = _matched_keys(session, cls, info, statement, lock=False)
        if unlocked:
            guard.for_keys(session, mapper, unlocked).wait()
    matched = _matched_keys(session, cls, info, statement, lock=True)
    if not matched:
        return matched
    table = info.history_table
    pairs = info.insert_columns[table]
    now = utcnow()
    select_list = _copied_values(cls, pairs, now, change_info, _hidden_below(cls), changed)
    rows = sa.select(*select_list).where(_keyed(cls, info, matched))
    run = guard.for_keys(session, mapper, matched) if guard is not None else None
    if run is not None:
        refused = run.bound_query().cte("chrononaut_refused")
        rows = rows.where(~sa.exists(sa.select(sa.literal(1)).select_from(refused)))
    copy = table.insert().from_select([table.c[column_key] for column_key, _ in pairs], rows)
    connection = session.connection(bind_arguments={"mapper": mapper})
    if run is None:
        connection.execute(copy)
        _copy_subclass_history(connection, cls, matched, now, change_info)
        return matched
    statement_ = sa.select(refused).add_cte(copy.cte("chrononaut_copy"))
    # Refused rows raise; a probe that only met another writer's probe (which the
    # guard tells apart) skipped the copy, so it runs again.
    for _ in range(_ATTEMPTS):
        if not run.verdict(connection.execute(statement_).all()):
            _copy_subclass_history(connection, cls, matched, now, change_info)
            return matched
    raise ChrononautException(
        f"Bulk statement on {cls.__name__}: the lock guard's probes kept meeting other "
        f"writers' probes ({_ATTEMPTS} attempts); retry the statement."
    )


def _hidden_below(cls: type[Any]) -> dict[str, list[Any]]:
    """Columns ``cls`` tracks that subclasses hide: key -> the mappers of those subclasses."""
    base = sa.inspect(cls)
    tracked = cls.__chrononaut__.policy.tracked.keys()
    out: dict[str, list[Any]] = {}
    for mapper in base.self_and_descendants:
        sub = mapper.class_.__dict__.get("__chrononaut__")
        if mapper is base or sub is None:
            continue
        for key in sorted(sub.policy.hidden_keys & tracked):
            out.setdefault(key, []).append(mapper)
    return out


def _rows_of(cls: type[Any], mappers: list[Any]) -> Any:
    """SQL condition: the row of ``cls`` being copied belongs to one of ``mappers``.

    By discriminator when the hierarchy has one; else a joined-table subclass's
    rows are those with a row in its table. A subclass that cannot be told
    apart (single-table without discriminator) counts every row: a hidden value
    is then kept out of all of them rather than leaked.
    """
    base = sa.inspect(cls)
    discriminator = base.polymorphic_on
    conditions = []
    for mapper in mappers:
        if discriminator is not None and mapper.polymorphic_identity is not None:
            conditions.append(discriminator == mapper.polymorphic_identity)
        elif not mapper.single:
            table = mapper.local_table
            pairs = zip(table.primary_key.columns, base.primary_key, strict=True)
            conditions.append(sa.exists().where(*(sub == own for sub, own in pairs)))
        else:
            return sa.true()
    return sa.or_(*conditions)


def _copied_values(
    cls: type[Any],
    pairs: list[tuple[str, str]],
    now: Any,
    change_info: dict[str, Any],
    hidden_below: dict[str, list[Any]] | None = None,
    changed: Collection[str] = (),
) -> list[Any]:
    """The SELECT list copying ``cls``'s rows into a history table's ``pairs``.

    Each row follows its own class's options (by discriminator, or by joined
    subclass table): a column a subclass hides is copied as NULL for that
    subclass's rows, and named in their ``hidden_cols_changed`` when the
    statement sets it.
    """
    hidden_below = hidden_below or {}
    select_list: list[Any] = []
    for _column_key, source in pairs:
        if source == CHANGED:
            select_list.append(sa.literal(now, sa.DateTime(timezone=True)))
        elif source == CHANGE_INFO:
            select_list.append(_change_info_by_class(cls, change_info, hidden_below, changed))
        elif source in hidden_below:
            hiding = _rows_of(cls, hidden_below[source])
            select_list.append(sa.case((hiding, sa.null()), else_=getattr(cls, source)))
        else:
            select_list.append(getattr(cls, source))
    return select_list


def _change_info_by_class(
    cls: type[Any],
    change_info: dict[str, Any],
    hidden_below: dict[str, list[Any]],
    changed: Collection[str],
) -> Any:
    plain = sa.literal(change_info, JSONB)
    by_mapper: dict[Any, set[str]] = {}
    for key in sorted(set(changed) & set(hidden_below)):
        for mapper in hidden_below[key]:
            by_mapper.setdefault(mapper, set()).add(key)
    if not by_mapper:
        return plain
    whens = []
    # Deepest subclasses first: a row of a joined sub-subclass also has its parent's row.
    for mapper in sorted(by_mapper, key=lambda m: -len(list(m.iterate_to_root()))):
        keys = set().union(*(by_mapper[m] for m in by_mapper if mapper.isa(m)))
        hidden = sorted(set(change_info.get("hidden_cols_changed", [])) | keys)
        variant = {**change_info, "hidden_cols_changed": hidden}
        whens.append((_rows_of(cls, [mapper]), sa.literal(variant, JSONB)))
    return sa.case(*whens, else_=plain)


def _copy_subclass_history(
    connection: Any,
    cls: type[Any],
    matched: list[tuple[Any, ...]],
    now: Any,
    change_info: dict[str, Any],
) -> None:
    """Copy the matched rows' joined-table subclass columns to their own history tables.

    One INSERT ... SELECT per subclass table, after the base history rows they
    reference; the join to the subclass table picks that subclass's rows.
    """
    base = sa.inspect(cls)
    for mapper in base.self_and_descendants:
        info = mapper.class_.__dict__.get("__chrononaut__")
        if mapper is base or info is None or mapper.single:
            continue
        table = info.history_table
        pairs = info.insert_columns[table]
        rows = sa.select(*_copied_values(mapper.class_, pairs, now, change_info))
        rows = rows.where(_keyed(mapper.class_, info, matched))
        columns = [table.c[column_key] for column_key, _ in pairs]
        connection.execute(table.insert().from_select(columns, rows))


def _limit_and_bump(
    orm_state: ORMExecuteState,
    cls: type[Any],
    info: VersioningInfo,
    statement: Any,
    matched: list[tuple[Any, ...]],
    change_info: dict[str, Any],
) -> Any:
    limited = statement.where(_keyed(cls, info, matched))
    if orm_state.is_delete:
        return limited
    extra: dict[str, Any] = {VERSION: cls.version + 1}
    if issubclass(cls, RecordChanges):
        extra[CHANGE_INFO] = sa.literal(change_info, JSONB)
        extra[CHANGED] = utcnow()
    return limited.values(**extra)
