"""``suppress_versioning()`` and the database guard: the session side.

Writes under :func:`~chrononaut.suppress_versioning` change tracked columns
without bumping ``version``; the database guard's triggers would take them for
writes outside the ORM and version them. So, only under suppression and only
when the flush or bulk statement writes a guarded model, chrononaut turns the
transaction-local setting ``chrononaut.suppress`` on right before the writes
and off right after, and the triggers stand aside while it is on. Outside
suppression these listeners send nothing.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import ORMExecuteState, Session

from .. import context
from .database_guard import is_guarded
from .database_guard_sql import SUPPRESS_SETTING
from .history import versioned_class_of_table

#: Key in ``Session.info``: the mappers whose connections carry the setting during a flush.
_SUPPRESSED_KEY = "chrononaut_database_guard_suppressed"

_SET = f"SELECT set_config('{SUPPRESS_SETTING}', %s, true)"


def _set(connection: sa.Connection, on: bool) -> None:
    connection.exec_driver_sql(_SET, ("on" if on else "off",))


def _guarded_class(obj: Any) -> type[Any] | None:
    cls = type(obj)
    if getattr(cls, "__chrononaut__", None) is None or not is_guarded(cls):
        return None
    return cls


def _connections(session: Session, classes: set[type[Any]]) -> list[sa.Connection]:
    seen: dict[int, sa.Connection] = {}
    for cls in classes:
        connection = session.connection(bind_arguments={"mapper": sa.inspect(cls)})
        seen.setdefault(id(connection), connection)
    return list(seen.values())


def before_flush(session: Session, flush_context: Any, instances: Any) -> None:
    """Under suppression, turn the guard's triggers aside for this flush's writes."""
    session.info.pop(_SUPPRESSED_KEY, None)
    if not context.versioning_suppressed():
        return
    classes = {
        cls
        for obj in (*session.dirty, *session.deleted)
        if (cls := _guarded_class(obj)) is not None
    }
    if not classes:
        return
    for connection in _connections(session, classes):
        _set(connection, True)
    session.info[_SUPPRESSED_KEY] = classes


def after_flush(session: Session, flush_context: Any) -> None:
    """Turn the triggers back on once the flush's UPDATEs and DELETEs have run."""
    classes = session.info.pop(_SUPPRESSED_KEY, None)
    if classes:
        for connection in _connections(session, classes):
            _set(connection, False)


def _statement_class(orm_state: ORMExecuteState) -> type[Any] | None:
    mapper = orm_state.bind_mapper
    if mapper is not None:
        return mapper.class_
    table = getattr(orm_state.statement, "table", None)
    return versioned_class_of_table(table) if isinstance(table, sa.Table) else None


def do_orm_execute(orm_state: ORMExecuteState) -> Any:
    """Under suppression, run a bulk UPDATE or DELETE of a guarded model, triggers aside."""
    if not (orm_state.is_update or orm_state.is_delete) or not context.versioning_suppressed():
        return None
    cls = _statement_class(orm_state)
    if cls is None or getattr(cls, "__chrononaut__", None) is None or not is_guarded(cls):
        return None
    connection = orm_state.session.connection(bind_arguments={"mapper": sa.inspect(cls)})
    _set(connection, True)
    result = orm_state.invoke_statement()
    _set(connection, False)
    return result
