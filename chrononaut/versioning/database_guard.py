"""The database guard: triggers that version writes made outside the ORM.

A raw SQL ``UPDATE`` (another service, a psql session, a migration script)
bumps no version, so a stale ORM write made afterwards would commit silently
over it. With the guard on, a model's table gets two triggers, generated here
from the model and created by ``create_all()`` (DDL events on the table) or by
a migration (:mod:`chrononaut.migrations`):

- ``chrononaut_guard_update``, ``BEFORE UPDATE FOR EACH ROW``, fires only when
  the statement leaves ``version`` alone. chrononaut's own writes (flushes and
  bulk statements) always set ``version``, and have already written their
  history, so they never reach it. When a tracked or hidden column changed
  (compared by binary image, so every type, ``json`` included, works), it
  inserts the history row of the old values and bumps ``version``: the stale
  ORM write then raises :class:`~chrononaut.ConflictError`.
- ``chrononaut_guard_delete``, a constraint trigger ``AFTER DELETE``, deferred
  to commit. The ORM writes its deletion row after its DELETE statement, so the
  trigger cannot tell an ORM delete from a raw one when the row goes; at
  commit it inserts the deletion row ``ON CONFLICT DO NOTHING``: the history row
  of ``(primary key, version)`` exists exactly when chrononaut wrote it.

Both honour ``chrononaut.suppress``, a transaction-local setting chrononaut
turns on around the writes of ``suppress_versioning()``; a raw SQL script may
do the same (``SET LOCAL chrononaut.suppress = 'on'``). The triggers' rows
carry ``change_info`` ``{"source": "database", "db_user": current_user,
"application_name": ...}`` with ``user_id`` and ``remote_addr`` None, plus
``hidden_cols_changed`` and ``deleted`` as in chrononaut's own rows, and
``changed`` is the database's ``clock_timestamp()``.

Single-table inheritance is supported exactly (one branch per set of classes
that record alike, chosen by the discriminator); joined-table inheritance is
refused, because a raw UPDATE of a subclass table cannot bump the version kept
in the parent's table without being mistaken for chrononaut's own writes.

This module holds the switches and the DDL events. The switch is read when
the DDL is emitted, not when a class is mapped: models exist before a Flask
app's config is read, so ``CHRONONAUT_DATABASE_GUARD`` (and
:func:`enable_database_guard`) set a flag in ``MetaData.info`` that a model's
own option overrides. The SQL is generated in :mod:`.database_guard_sql`, the
session side of suppression lives in :mod:`.database_guard_events`, and
Alembic's side in :mod:`chrononaut.migrations`.
"""

from __future__ import annotations

from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.orm import Mapper

from ..exceptions import ConfigurationError
from .database_guard_sql import (
    OPTION,
    base_class,
    function_names,
    guard_ddl,
    joined_refusal,
)
from .history import versioned_class_of_table

#: Key in ``MetaData.info``: the default for the models of that MetaData.
METADATA_KEY = "chrononaut_database_guard"


def enable_database_guard(metadata: sa.MetaData, enabled: bool = True) -> None:
    """Guard every versioned model of ``metadata`` that does not opt out.

    The config key ``CHRONONAUT_DATABASE_GUARD`` does this for a Flask app's
    ``db``. A model's own ``__chrononaut_database_guard__`` wins. Takes effect
    for the DDL emitted afterwards (``create_all()``, Alembic autogenerate)::

        chrononaut.enable_database_guard(Base.metadata)
        Base.metadata.create_all(engine)
    """
    if not isinstance(metadata, sa.MetaData):
        raise TypeError(
            f"enable_database_guard() takes a MetaData (such as Base.metadata or db.metadata), "
            f"got {metadata!r}"
        )
    if not isinstance(enabled, bool):
        raise TypeError(f"enable_database_guard() takes enabled=True or False, got {enabled!r}")
    metadata.info[METADATA_KEY] = enabled
    register_alembic()


def register_alembic() -> None:
    """Make Alembic's autogenerate compare the guard (see :mod:`chrononaut.migrations`)."""
    from .. import migrations  # noqa: F401  (registers its comparator on first import)


def is_guarded(cls: type[Any]) -> bool:
    """Whether the table of versioned ``cls`` is to carry the database guard."""
    base = base_class(cls)
    explicit = getattr(base, OPTION, None)
    if explicit is not None:
        return bool(explicit)
    table = cast(sa.Table, sa.inspect(base).local_table)
    return bool(table.metadata.info.get(METADATA_KEY, False))


def _check_value(cls: type[Any]) -> bool | None:
    value = getattr(cls, OPTION, None)
    if value is not None and not isinstance(value, bool):
        raise ConfigurationError(
            f"{cls.__name__}.{OPTION} must be True or False, got {value!r}; "
            "set it to True to guard the table against writes outside the ORM."
        )
    return value


def configure(mapper: Mapper[Any]) -> None:
    """Check the option of a freshly mapped versioned class and attach the DDL events."""
    cls = mapper.class_
    value = _check_value(cls)
    base = base_class(cls)
    if base is cls:
        attach(cast(sa.Table, mapper.local_table))
    elif mapper.single:
        own = cls.__dict__.get(OPTION)
        if own is not None and own != getattr(base, OPTION, None):
            raise ConfigurationError(
                f"{cls.__name__} sets {OPTION} = {own!r} but shares table "
                f"{cast(sa.Table, mapper.local_table).name!r} with {base.__name__} "
                f"(single-table inheritance); the guard is per table: set it on "
                f"{base.__name__} only."
            )
    elif is_guarded(base):
        raise joined_refusal(base, cls)
    if value is not None:
        register_alembic()


# --- DDL events -------------------------------------------------------------------


def attach(table: sa.Table) -> None:
    """Create the guard with ``table`` (and drop its functions with it) when it is on."""
    sa.event.listen(table, "after_create", _after_create)
    sa.event.listen(table, "after_drop", _after_drop)
    if not sa.event.contains(table.metadata, "before_create", _before_create):
        sa.event.listen(table.metadata, "before_create", _before_create)


def _guarded_base_of(table: sa.Table) -> type[Any] | None:
    cls = versioned_class_of_table(table)
    if cls is None or base_class(cls) is not cls or not is_guarded(cls):
        return None
    return cls


def _before_create(metadata: sa.MetaData, connection: sa.Connection, **kw: Any) -> None:
    """Refuse unsupported guarded models before any table is created."""
    for table in kw.get("tables") or metadata.sorted_tables:
        cls = _guarded_base_of(table)
        if cls is not None:
            guard_ddl(cls)


def _execute(connection: sa.Connection, statement: str) -> None:
    # The driver sees an (empty) parameter set: a % in a name must be doubled.
    connection.exec_driver_sql(statement.replace("%", "%%"))


def _after_create(table: sa.Table, connection: sa.Connection, **kw: Any) -> None:
    cls = _guarded_base_of(table)
    if cls is not None:
        for statement in guard_ddl(cls).create():
            _execute(connection, statement)


def _after_drop(table: sa.Table, connection: sa.Connection, **kw: Any) -> None:
    if _guarded_base_of(table) is not None:
        update_fn, delete_fn = function_names(table.name, table.schema)
        for function in (update_fn, delete_fn):
            _execute(connection, f"DROP FUNCTION IF EXISTS {function}()")
