"""Alembic support for the database guard: autogenerate, and helpers for migrations.

Importing this module registers a comparator with Alembic's autogenerate. For
every versioned model in the target MetaData it compares the guard the model
asks for (``__chrononaut_database_guard__``, :func:`chrononaut.enable_database_guard`,
``CHRONONAUT_DATABASE_GUARD``) with the triggers and functions installed on the
table, and emits one operation: create the guard, replace its functions (the
model's columns or options changed), or drop it. chrononaut imports this module
itself as soon as a model sets the option or the guard is enabled; an ``env.py``
may import it too, so that a guard is still dropped once no model mentions it.

The operations render as ``op.execute()`` of the SQL itself, so a revision
keeps the guard as it was when generated, and its downgrade restores exactly
what was installed before. For migrations written by hand,
:func:`create_database_guard` and :func:`drop_database_guard` take Alembic's
``op``::

    from chrononaut.migrations import create_database_guard

    def upgrade():
        create_database_guard(op, "account")
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from alembic.autogenerate import comparators, renderers
from alembic.operations import MigrateOperation, Operations

from .exceptions import ConfigurationError
from .versioning.database_guard import is_guarded
from .versioning.database_guard_sql import (
    DELETE_TRIGGER,
    UPDATE_TRIGGER,
    GuardDDL,
    base_class,
    drop_statements,
    function_names,
    function_sql,
    guard_ddl,
    qualified,
)
from .versioning.history import versioned_class_of_table

__all__ = ["DatabaseGuardOp", "create_database_guard", "drop_database_guard"]

_TRIGGERS = (UPDATE_TRIGGER, DELETE_TRIGGER)
_REVERSE = {"create": "drop", "drop": "create", "replace": "replace"}


class DatabaseGuardOp(MigrateOperation):
    """Create, replace or drop the database guard of one table.

    ``upgrade`` and ``downgrade`` are the SQL statements each way; ``action``
    is ``"create"``, ``"replace"`` or ``"drop"``.
    """

    def __init__(
        self,
        action: str,
        table_name: str,
        schema: str | None,
        upgrade: list[str],
        downgrade: list[str],
    ) -> None:
        self.action = action
        self.table_name = table_name
        self.schema = schema
        self.upgrade = list(upgrade)
        self.downgrade = list(downgrade)

    def reverse(self) -> DatabaseGuardOp:
        return DatabaseGuardOp(
            _REVERSE[self.action], self.table_name, self.schema, self.downgrade, self.upgrade
        )

    def to_diff_tuple(self) -> tuple[Any, ...]:
        return (f"{self.action}_database_guard", self.schema, self.table_name)


def _for_text(sql: str) -> str:
    r"""``sql`` for ``op.execute()``, which wraps it in ``text()``: ``:x`` becomes ``\:x``."""
    return re.sub(r"(?<![:\w\\]):(?=\w)", r"\\:", sql)


@Operations.implementation_for(DatabaseGuardOp)
def _apply(operations: Operations, operation: DatabaseGuardOp) -> None:
    for statement in operation.upgrade:
        operations.execute(_for_text(statement))


@renderers.dispatch_for(DatabaseGuardOp)
def _render(autogen_context: Any, operation: DatabaseGuardOp) -> list[str]:
    table = (
        operation.table_name
        if operation.schema is None
        else f"{operation.schema}.{operation.table_name}"
    )
    lines = [f"# chrononaut: {operation.action} the database guard of {table}"]
    for statement in operation.upgrade:
        parts = _for_text(statement).splitlines(keepends=True)
        if len(parts) == 1:
            lines.append(f"op.execute({parts[0]!r})")
        else:
            lines.append("op.execute(\n" + "\n".join(f"    {part!r}" for part in parts) + "\n)")
    return lines


# --- autogenerate ---------------------------------------------------------------------


def _metadatas(autogen_context: Any) -> list[sa.MetaData]:
    metadata = autogen_context.metadata
    if metadata is None:
        return []
    return list(metadata) if isinstance(metadata, list | tuple) else [metadata]


def _versioned_tables(
    autogen_context: Any, schemas: set[str | None]
) -> list[tuple[sa.Table, type[Any]]]:
    out = []
    for metadata in _metadatas(autogen_context):
        for table in metadata.sorted_tables:
            cls = versioned_class_of_table(table)
            if cls is None or base_class(cls) is not cls or table.schema not in schemas:
                continue
            if autogen_context.run_object_filters(table, table.name, "table", False, None):
                out.append((table, cls))
    return out


class _Installed:
    """The guard triggers found on one table, with their functions."""

    def __init__(self) -> None:
        #: trigger name -> (function schema, function name, function source, trigger DDL)
        self.triggers: dict[str, tuple[str, str, str, str]] = {}

    def matches(self, ddl: GuardDDL, default_schema: str) -> bool:
        if set(self.triggers) != set(_TRIGGERS):
            return False
        wanted = dict(zip(_TRIGGERS, (ddl.update_body, ddl.delete_body), strict=True))
        names = dict(zip(_TRIGGERS, function_names(ddl.table_name, ddl.schema), strict=True))
        for trigger, (schema, name, source, _) in self.triggers.items():
            qualified = _qualified_as_installed(schema, name, ddl.schema, default_schema)
            if qualified != names[trigger] or source != wanted[trigger]:
                return False
        return True

    def statements(self, table_name: str, schema: str | None, default_schema: str) -> list[str]:
        """SQL recreating exactly what is installed (for a downgrade)."""
        out = drop_statements(table_name, schema)[:2]
        for function_schema, name, source, _ in self.triggers.values():
            qualified = _qualified_as_installed(function_schema, name, schema, default_schema)
            out.append(function_sql(qualified, source))
        out += [definition for *_, definition in self.triggers.values()]
        return out

    def drops(self, table_name: str, schema: str | None, default_schema: str) -> list[str]:
        out = drop_statements(table_name, schema)[:2]
        for function_schema, name, _, _ in self.triggers.values():
            qualified = _qualified_as_installed(function_schema, name, schema, default_schema)
            out.append(f"DROP FUNCTION IF EXISTS {qualified}()")
        return out


def _qualified_as_installed(
    function_schema: str, name: str, table_schema: str | None, default_schema: str
) -> str:
    if table_schema is None and function_schema == default_schema:
        return qualified(name, None)
    return qualified(name, function_schema)


_INSTALLED_SQL = """
SELECT n.nspname, c.relname, t.tgname, pn.nspname, p.proname, p.prosrc,
       pg_get_triggerdef(t.oid)
FROM pg_trigger t
JOIN pg_class c ON c.oid = t.tgrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_proc p ON p.oid = t.tgfoid
JOIN pg_namespace pn ON pn.oid = p.pronamespace
WHERE t.tgname IN ('chrononaut_guard_update', 'chrononaut_guard_delete')
"""


def _installed(connection: sa.Connection) -> dict[tuple[str | None, str], _Installed]:
    default_schema = connection.dialect.default_schema_name
    found: dict[tuple[str | None, str], _Installed] = {}
    for row in connection.exec_driver_sql(_INSTALLED_SQL):
        schema = None if row[0] == default_schema else row[0]
        entry = found.setdefault((schema, row[1]), _Installed())
        entry.triggers[row[2]] = (row[3], row[4], row[5], row[6])
    return found


def _compare(autogen_context: Any, upgrade_ops: Any, schemas: Iterable[str | None]) -> Any:
    tables = _versioned_tables(autogen_context, set(schemas))
    if not tables:
        return None
    connection = autogen_context.connection
    default_schema = connection.dialect.default_schema_name
    installed = _installed(connection)
    for table, cls in tables:
        have = installed.get((table.schema, table.name))
        if is_guarded(cls):
            ddl = guard_ddl(cls)
            if have is None:
                operation = DatabaseGuardOp(
                    "create", table.name, table.schema, ddl.create(), ddl.drop()
                )
            elif not have.matches(ddl, default_schema):
                operation = DatabaseGuardOp(
                    "replace",
                    table.name,
                    table.schema,
                    ddl.create(replace=True),
                    have.statements(table.name, table.schema, default_schema),
                )
            else:
                continue
        elif have is not None:
            operation = DatabaseGuardOp(
                "drop",
                table.name,
                table.schema,
                have.drops(table.name, table.schema, default_schema),
                have.statements(table.name, table.schema, default_schema),
            )
        else:
            continue
        upgrade_ops.ops.append(operation)
    return None


def _register() -> None:
    # Run after Alembic's own comparators, so a new table is created before its guard.
    try:
        from alembic.util import DispatchPriority
    except ImportError:  # Alembic < 1.18 runs registered comparators after its own
        comparators.dispatch_for("schema")(_compare)
    else:
        comparators.dispatch_for("schema", priority=DispatchPriority.LAST)(_compare)


_register()


# --- helpers for migrations written by hand ---------------------------------------------


def _model(op: Any, table: str | type[Any], schema: str | None, metadata: Any) -> type[Any]:
    if isinstance(table, type):
        if getattr(table, "__chrononaut__", None) is None:
            raise TypeError(f"{table.__name__} is not a mapped Versioned model")
        return base_class(table)
    if metadata is None:
        metadata = op.get_context().opts.get("target_metadata")
    metadatas = list(metadata) if isinstance(metadata, list | tuple) else [metadata]
    key = table if schema is None else f"{schema}.{table}"
    for candidate in metadatas:
        found = candidate.tables.get(key) if candidate is not None else None
        cls = versioned_class_of_table(found) if found is not None else None
        if cls is not None:
            return base_class(cls)
    raise ConfigurationError(
        f"create_database_guard() found no versioned model with table {key!r} in the "
        "migration's target_metadata; pass the model class, or metadata=."
    )


def create_database_guard(
    op: Any,
    table: str | type[Any],
    *,
    schema: str | None = None,
    metadata: sa.MetaData | None = None,
) -> None:
    """Install (or refresh) the database guard on an existing versioned table.

    ``table`` is the table's name, looked up in ``metadata`` or else in the
    migration context's ``target_metadata``, or the model class. The guard is
    built from the models as they are when the migration runs; set
    ``__chrononaut_database_guard__`` on the model too, or the next autogenerate
    drops it again::

        def upgrade():
            create_database_guard(op, "account")

        def downgrade():
            drop_database_guard(op, "account")
    """
    cls = _model(op, table, schema, metadata)
    for statement in guard_ddl(cls).create(replace=True):
        op.execute(_for_text(statement))


def drop_database_guard(op: Any, table_name: str, *, schema: str | None = None) -> None:
    """Remove the database guard's triggers and functions from a table, if there."""
    for statement in drop_statements(table_name, schema):
        op.execute(_for_text(statement))
