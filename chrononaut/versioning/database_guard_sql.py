"""The SQL of the database guard: names, and trigger functions generated from a model.

Schema only, like :mod:`.history`: nothing here runs a statement. For the
hierarchy's base class, :func:`guard_ddl` works out, per class, which columns
make a version (tracked and hidden), which history columns a row fills, and
writes the two plpgsql functions: one branch per group of single-table
subclasses that record alike, chosen by the discriminator of ``OLD``.
Function bodies are deterministic, so Alembic's comparator can tell an
installed guard from the wanted one by their source text.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql.base import PGDialect
from sqlalchemy.orm import Mapper

from ..exceptions import ConfigurationError
from .history import INFO_KEY
from .names import CHANGE_INFO, CHANGED, VERSION

OPTION = "__chrononaut_database_guard__"
#: The transaction-local setting that makes the triggers stand aside.
SUPPRESS_SETTING = "chrononaut.suppress"
UPDATE_TRIGGER = "chrononaut_guard_update"
DELETE_TRIGGER = "chrononaut_guard_delete"

_DIALECT = PGDialect(paramstyle="named")  # names and literals keep a lone % as written
_PREPARER = _DIALECT.identifier_preparer
_MAX_NAME = 63  # PostgreSQL's NAMEDATALEN - 1
_NOT_SUPPRESSED = f"current_setting('{SUPPRESS_SETTING}', true) IS DISTINCT FROM 'on'"


def base_class(cls: type[Any]) -> type[Any]:
    """The versioned class at the top of ``cls``'s hierarchy (it owns the history table)."""
    mapper: Mapper[Any] | None = sa.inspect(cls)
    base = cls
    while mapper is not None:
        if getattr(mapper.class_, "__chrononaut__", None) is not None:
            base = mapper.class_
        mapper = mapper.inherits
    return base


def joined_refusal(base: type[Any], cls: type[Any]) -> ConfigurationError:
    return ConfigurationError(
        f"{cls.__name__}: the database guard ({OPTION} or CHRONONAUT_DATABASE_GUARD, on for "
        f"{base.__name__}) does not support joined-table inheritance: a raw UPDATE of "
        f"{cls.__name__}'s own table cannot bump the version kept in {base.__name__}'s table "
        f"without being mistaken for chrononaut's own writes. Set {base.__name__}.{OPTION} = "
        "False to leave this hierarchy unguarded."
    )


def _q(name: str) -> str:
    return cast(str, _PREPARER.quote(name))


def qualified(name: str, schema: str | None) -> str:
    """``name`` quoted for PostgreSQL, prefixed with ``schema`` when given."""
    return _q(name) if schema is None else f"{_PREPARER.quote_schema(schema)}.{_q(name)}"


def _function_name(table_name: str, suffix: str) -> str:
    name = f"{table_name}_chrononaut_{suffix}"
    if len(name.encode()) <= _MAX_NAME:
        return name
    digest = hashlib.blake2b(table_name.encode(), digest_size=4).hexdigest()
    tail = f"_{digest}_chrononaut_{suffix}"
    head = table_name.encode()[: _MAX_NAME - len(tail)].decode(errors="ignore")
    return head + tail


def function_names(table_name: str, schema: str | None = None) -> tuple[str, str]:
    """The quoted, schema-qualified names of a table's two guard functions.

    ``<table>_chrononaut_guard_update`` and ``<table>_chrononaut_guard_delete``
    in the table's schema (shortened with a hash past 63 bytes).
    """
    return (
        qualified(_function_name(table_name, "guard_update"), schema),
        qualified(_function_name(table_name, "guard_delete"), schema),
    )


def drop_statements(table_name: str, schema: str | None = None) -> list[str]:
    """SQL removing the guard from a table; harmless when it is not there."""
    table = qualified(table_name, schema)
    update_fn, delete_fn = function_names(table_name, schema)
    return [
        f"DROP TRIGGER IF EXISTS {UPDATE_TRIGGER} ON {table}",
        f"DROP TRIGGER IF EXISTS {DELETE_TRIGGER} ON {table}",
        f"DROP FUNCTION IF EXISTS {update_fn}()",
        f"DROP FUNCTION IF EXISTS {delete_fn}()",
    ]


@dataclass(frozen=True)
class GuardDDL:
    """The guard of one table: its two trigger functions' bodies and the statements."""

    table_name: str
    schema: str | None
    version_column: str
    update_body: str
    delete_body: str

    @property
    def functions(self) -> tuple[str, str]:
        return function_names(self.table_name, self.schema)

    def create(self, replace: bool = False) -> list[str]:
        """SQL creating the functions and triggers; ``replace`` drops existing triggers first."""
        table = qualified(self.table_name, self.schema)
        update_fn, delete_fn = self.functions
        version = _q(self.version_column)
        out = [
            function_sql(update_fn, self.update_body),
            function_sql(delete_fn, self.delete_body),
        ]
        if replace:
            out += [
                f"DROP TRIGGER IF EXISTS {UPDATE_TRIGGER} ON {table}",
                f"DROP TRIGGER IF EXISTS {DELETE_TRIGGER} ON {table}",
            ]
        out += [
            f"CREATE TRIGGER {UPDATE_TRIGGER} BEFORE UPDATE ON {table} FOR EACH ROW\n"
            f"WHEN (NEW.{version} IS NOT DISTINCT FROM OLD.{version} AND {_NOT_SUPPRESSED})\n"
            f"EXECUTE FUNCTION {update_fn}()",
            f"CREATE CONSTRAINT TRIGGER {DELETE_TRIGGER} AFTER DELETE ON {table}\n"
            "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW\n"
            f"WHEN ({_NOT_SUPPRESSED})\n"
            f"EXECUTE FUNCTION {delete_fn}()",
        ]
        return out

    def drop(self) -> list[str]:
        return drop_statements(self.table_name, self.schema)


def function_sql(function: str, body: str) -> str:
    """``CREATE OR REPLACE FUNCTION`` of a trigger function whose source is ``body``."""
    return (
        f"CREATE OR REPLACE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql "
        f"AS $chrononaut${body}$chrononaut$"
    )


@dataclass(frozen=True)
class _Plan:
    """How the trigger versions the rows of one class."""

    #: model column names whose change makes a version (tracked columns)
    compared: tuple[str, ...]
    #: (model column name, attribute key) of the hidden columns
    hidden: tuple[tuple[str, str], ...]
    #: (history column name, value expression) of the history row
    copied: tuple[tuple[str, str], ...]


def _plan(cls: type[Any], table: sa.Table, history: sa.Table, version: str) -> _Plan:
    info = cls.__chrononaut__
    policy = info.policy
    mapper = sa.inspect(cls)
    tracked = {id(column) for column in policy.tracked.values()}
    compared = tuple(c.name for c in table.c if id(c) in tracked)
    hidden = []
    for key in sorted(policy.hidden):
        column = mapper.get_property(key).columns[0]
        hidden.append((column.name, key))
    foreign = [c.name for c in policy.tracked.values() if c.table is not table] + [
        name for name, _ in hidden if name not in table.c
    ]
    if foreign:
        raise ConfigurationError(
            f"{cls.__name__}: the database guard only covers columns of table {table.name!r}; "
            f"{sorted(foreign)!r} are elsewhere. Set {OPTION} = False."
        )
    copied = []
    for column_key, source in info.insert_columns[history]:
        if source == VERSION:
            value = f"OLD.{_q(version)}"
        elif source == CHANGED:
            value = "clock_timestamp()"
        elif source == CHANGE_INFO:
            value = "chrononaut_info"
        else:
            value = f"OLD.{_q(policy.tracked[source].name)}"
        copied.append((history.c[column_key].name, value))
    return _Plan(compared, tuple(hidden), tuple(copied))


def _row(prefix: str, names: tuple[str, ...]) -> str:
    return "ROW(" + ", ".join(f"{prefix}.{_q(n)}" for n in names) + ")::record"


def _info(deleted: bool) -> str:
    pairs = (
        "'user_id', NULL, 'remote_addr', NULL, 'source', 'database', "
        "'db_user', current_user::text, "
        "'application_name', NULLIF(current_setting('application_name'), '')"
    )
    if deleted:
        pairs += ", 'deleted', true"
    return f"chrononaut_info := jsonb_build_object({pairs});"


def _insert(history: str, plan: _Plan, on_conflict: bool) -> list[str]:
    columns = ", ".join(_q(name) for name, _ in plan.copied)
    values = ", ".join(value for _, value in plan.copied)
    tail = " ON CONFLICT DO NOTHING;" if on_conflict else ";"
    return [f"INSERT INTO {history} ({columns})", f"VALUES ({values}){tail}"]


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _update_branch(plan: _Plan, history: str) -> list[str]:
    lines = []
    for name, key in plan.hidden:
        lines += [
            f"IF {_row('NEW', (name,))} *<> {_row('OLD', (name,))} THEN",
            f"    chrononaut_hidden := chrononaut_hidden || {_literal(key)}::text;",
            "END IF;",
        ]
    unchanged = f"{_row('NEW', plan.compared)} *= {_row('OLD', plan.compared)}"
    if plan.hidden:
        unchanged = f"chrononaut_hidden = '{{}}' AND {unchanged}"
    lines += [f"IF {unchanged} THEN", "    RETURN NEW;", "END IF;", _info(deleted=False)]
    if plan.hidden:
        lines += [
            "IF chrononaut_hidden <> '{}' THEN",
            "    chrononaut_info := chrononaut_info"
            " || jsonb_build_object('hidden_cols_changed', to_jsonb(chrononaut_hidden));",
            "END IF;",
        ]
    return lines + _insert(history, plan, on_conflict=False)


def _delete_branch(plan: _Plan, history: str) -> list[str]:
    return [_info(deleted=True), *_insert(history, plan, on_conflict=True)]


def _branches(
    branches: list[tuple[str | None, list[str]]],
) -> list[str]:
    """``IF cond THEN ... ELSIF ... ELSE ... END IF`` (or the lone branch), indented."""
    if len(branches) == 1:
        return ["    " + line for line in branches[0][1]]
    lines = []
    for index, (condition, body) in enumerate(branches):
        if condition is None:
            lines.append("    ELSE")
        else:
            lines.append(f"    {'IF' if index == 0 else 'ELSIF'} {condition} THEN")
        lines += ["        " + line for line in body]
    return [*lines, "    END IF;"]


def _hierarchy_plans(cls: type[Any], table: sa.Table, history: sa.Table, version: str) -> Any:
    """[(condition or None, plan)]: one branch per group of classes recording alike."""
    mapper = sa.inspect(cls)
    joined = [
        m.class_
        for m in mapper.self_and_descendants
        if m is not mapper and not m.single and getattr(m.class_, "__chrononaut__", None)
    ]
    if joined:
        raise joined_refusal(cls, joined[0])
    base_plan = _plan(cls, table, history, version)
    groups: dict[_Plan, list[Any]] = {}
    for sub in mapper.self_and_descendants:
        if sub.polymorphic_identity is None or sub is mapper:
            continue
        plan = _plan(sub.class_, table, history, version)
        if plan != base_plan:
            groups.setdefault(plan, []).append(sub.polymorphic_identity)
    if not groups:
        return [(None, base_plan)]
    discriminator = mapper.polymorphic_on
    if not isinstance(discriminator, sa.Column) or discriminator.table is not table:
        raise ConfigurationError(
            f"{cls.__name__}: its single-table subclasses record different columns, so the "
            "database guard chooses by the polymorphic discriminator, which must be a column "
            f"of {table.name!r}; got {discriminator!r}. Set {OPTION} = False."
        )
    out: list[tuple[str | None, _Plan]] = []
    for plan, identities in groups.items():
        literals = ", ".join(
            str(
                sa.literal(value, discriminator.type).compile(
                    dialect=_DIALECT, compile_kwargs={"literal_binds": True}
                )
            )
            for value in identities
        )
        out.append((f"OLD.{_q(discriminator.name)} IN ({literals})", plan))
    return [*out, (None, base_plan)]


def guard_ddl(cls: type[Any]) -> GuardDDL:
    """The guard of the table of versioned ``cls`` (the base of its hierarchy).

    Raises :class:`~chrononaut.ConfigurationError` for what the guard does not
    support (joined-table inheritance).
    """
    cls = base_class(cls)
    info = cls.__chrononaut__
    mapper = sa.inspect(cls)
    table = cast(sa.Table, mapper.local_table)
    history = info.history_table
    version = next(c.name for c in table.c if c.info.get(INFO_KEY) == VERSION)
    history_sql = qualified(history.name, history.schema)
    plans = _hierarchy_plans(cls, table, history, version)
    needs_hidden = any(plan.hidden for _, plan in plans)
    declare = ["DECLARE"]
    if needs_hidden:
        declare.append("    chrononaut_hidden text[] := '{}';")
    declare.append("    chrononaut_info jsonb;")
    update = [
        *declare,
        "BEGIN",
        *_branches([(c, _update_branch(p, history_sql)) for c, p in plans]),
        f"    NEW.{_q(version)} := OLD.{_q(version)} + 1;",
        "    RETURN NEW;",
        "END;",
    ]
    delete = [
        "DECLARE",
        "    chrononaut_info jsonb;",
        "BEGIN",
        *_branches([(c, _delete_branch(p, history_sql)) for c, p in plans]),
        "    RETURN NULL;",
        "END;",
    ]
    return GuardDDL(
        table_name=table.name,
        schema=table.schema,
        version_column=version,
        update_body="\n" + "\n".join(update) + "\n",
        delete_body="\n" + "\n".join(delete) + "\n",
    )
