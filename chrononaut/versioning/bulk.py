"""History for ORM bulk statements: ``update(Model)``, ``delete(Model)``, ``Query.update``.

The statement is rewritten so that one round trip locks the matched rows,
copies their prior state to history and applies the change:

.. code-block:: sql

    WITH chrononaut_old AS (SELECT <tracked columns>, version FROM t WHERE <criteria> FOR UPDATE),
         chrononaut_history AS (INSERT INTO t_history SELECT ... FROM chrononaut_old)
    UPDATE t SET <values>, version = version + 1
    WHERE <criteria> AND (pk) IN (SELECT pk FROM chrononaut_old)

Rows inserted by others after the statement's snapshot are never updated
without history, because only the locked rows are touched.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import ORMExecuteState

from .. import context
from ..exceptions import ChrononautException
from ..settings import activate, deactivate, settings_for
from .change_info import ChangeInfoBuilder
from .history import HistoryBase, VersioningInfo
from .record_changes import RecordChanges
from .recorder import utcnow


def _value_keys(mapper: Any, statement: Any, parameters: Any) -> set[str]:
    """Attribute keys an ORM UPDATE sets."""
    raw = list((statement._values or {}).keys())
    raw += [k for k, _ in (statement._ordered_values or ())]
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


def _refuse_history_statement(orm_state: ORMExecuteState, cls: type[Any]) -> None:
    if orm_state.is_delete and context.history_deletion_allowed():
        return
    verb = "delete from" if orm_state.is_delete else "update"
    raise ChrononautException(
        f"Refusing to {verb} {cls.__name__}: history rows are immutable"
        + (
            "; delete them only inside suppress_versioning(allow_deleting_history=True)."
            if orm_state.is_delete
            else "."
        )
    )


def do_orm_execute(orm_state: ORMExecuteState) -> None:
    """Rewrite ORM bulk UPDATE/DELETE of versioned models so they write history."""
    if not (orm_state.is_update or orm_state.is_delete):
        return
    mapper = orm_state.bind_mapper
    if mapper is None:
        return
    cls = mapper.class_
    if issubclass(cls, HistoryBase):
        _refuse_history_statement(orm_state, cls)
        return
    info: VersioningInfo | None = getattr(cls, "__chrononaut__", None)
    if info is None or context.versioning_suppressed():
        return
    if isinstance(orm_state.parameters, list | tuple):
        raise ChrononautException(
            f"ORM bulk UPDATE by primary key of {cls.__name__} (a list of parameter dicts) "
            "would skip history; use update(...).where(...) statements or load the objects."
        )
    if len(info.history_tables) > 1:
        raise ChrononautException(
            f"Bulk statements on {cls.__name__} (joined-table inheritance) would change "
            "several tables; load and modify the objects instead so history is written."
        )
    statement = orm_state.statement
    settings = settings_for(orm_state.session)
    token = activate(settings)
    try:
        builder = ChangeInfoBuilder(settings)
        if orm_state.is_update:
            keys = _value_keys(mapper, statement, orm_state.parameters)
            if "version" in keys:
                raise ChrononautException(
                    f"Bulk UPDATE of {cls.__name__} sets 'version', which chrononaut manages."
                )
            tracked = keys & set(info.tracked)
            hidden = keys & info.hidden
            if not tracked and not hidden:
                return  # untracked only: no version, no history
            change_info = builder.build(None, hidden_changed=sorted(hidden))
        else:
            change_info = builder.build(None, deleted=True)
        if settings.require_extra_change_info and not builder.has_extra():
            raise ChrononautException(
                f"Bulk statement on {cls.__name__} without extra change info, which "
                "CHRONONAUT_REQUIRE_EXTRA_CHANGE_INFO requires; wrap it in rationale(...)."
            )
    finally:
        deactivate(token)
    orm_state.statement = _rewrite(orm_state, cls, info, statement, change_info)
    if orm_state.execution_options.get("synchronize_session") == "evaluate":
        orm_state.update_execution_options(synchronize_session="fetch")


def _rewrite(
    orm_state: ORMExecuteState,
    cls: type[Any],
    info: VersioningInfo,
    statement: Any,
    change_info: dict[str, Any],
) -> Any:
    now = utcnow()
    sources = [*info.tracked, "version"]
    old = (
        sa.select(*[getattr(cls, key).label(key) for key in sources])
        .where(statement.whereclause if statement.whereclause is not None else sa.true())
        .with_for_update(of=sa.inspect(cls).local_table)
        .cte("chrononaut_old")
    )
    table = info.history_table
    pairs = info.insert_columns[table]
    select_list = []
    for _column_key, source in pairs:
        if source == "changed":
            select_list.append(sa.literal(now, sa.DateTime(timezone=True)))
        elif source == "change_info":
            select_list.append(sa.literal(change_info, JSONB))
        else:
            select_list.append(old.c[source])
    history_insert = table.insert().from_select(
        [table.c[column_key] for column_key, _ in pairs], sa.select(*select_list)
    )
    pk = [getattr(cls, key) for key in info.pk_keys]
    rewritten = statement.where(
        sa.tuple_(*pk).in_(sa.select(*[old.c[key] for key in info.pk_keys]))
    ).add_cte(history_insert.cte("chrononaut_history"))
    if orm_state.is_update:
        extra: dict[str, Any] = {"version": cls.version + 1}
        if issubclass(cls, RecordChanges):
            extra["change_info"] = sa.literal(change_info, JSONB)
            extra["changed"] = now
        rewritten = rewritten.values(**extra)
    return rewritten
