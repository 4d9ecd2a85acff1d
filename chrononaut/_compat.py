"""Every private SQLAlchemy name chrononaut reads, in one place.

Elsewhere the package uses SQLAlchemy's public API only. What is here has no
public form on the SQLAlchemy lines chrononaut supports (:data:`TESTED_SERIES`);
``tests/test_compat.py`` checks each access against the installed SQLAlchemy and
fails on a series not listed, so a new SQLAlchemy line is reviewed here before
it is claimed:

- ``Column._copy()``: the history table copies the model's columns
  (``Column.copy()`` was deprecated in 1.4 for it).
- ``Mapper._is_orphan(state)``: whether a flush deletes a record as an orphan.
- ``Update._values`` (and 2.0's ``Update._ordered_values``): the keys an ORM
  bulk ``UPDATE`` sets; ``Update`` has no public reader of its SET clause.
- ``InstanceState.manager[key].impl``: the attribute's own comparison and
  parent tracking, which the flush uses to tell a real change from a no-op.
- ``Insert._propagate_attrs``, ``Insert._multi_values``, ``Insert._returning``:
  whether a bulk INSERT was built on an ORM entity, has several VALUES sets, and
  how many RETURNING entries the caller asked for (creation events).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

#: SQLAlchemy release series the accesses below were checked against.
TESTED_SERIES = ("2.0", "2.1")


def sqlalchemy_series(version: str = sa.__version__) -> str:
    """``"2.1"`` for ``"2.1.9"``: the release series of a SQLAlchemy version string."""
    return ".".join(version.split(".")[:2])


def copy_column(column: sa.Column[Any]) -> sa.Column[Any]:
    """A detached copy of ``column`` (its type, name, key, flags and info)."""
    return column._copy()


def is_orphan(mapper: sa.orm.Mapper[Any], state: Any) -> bool:
    """True if ``state`` (persistent) has lost every parent that delete-orphan cascades from."""
    return bool(mapper._is_orphan(state))


def update_value_keys(statement: Any) -> list[Any]:
    """The keys (strings, columns or attributes) of the SET clause of an ``Update``.

    ``update(...).values({...})`` and ``.ordered_values(...)`` alike; SQLAlchemy
    2.0 keeps the latter apart in ``_ordered_values``, 2.1 in ``_values``.
    """
    keys = list((getattr(statement, "_values", None) or {}).keys())
    keys += [k for k, _ in (getattr(statement, "_ordered_values", None) or ())]
    return keys


def attribute_impl(state: Any, key: str) -> Any:
    """The attribute implementation of ``key`` on ``state`` (``is_equal``, ``hasparent``)."""
    return state.manager[key].impl


def attribute_is_equal(state: Any, key: str, new: Any, old: Any) -> bool:
    """Whether the attribute ``key`` compares ``new`` and ``old`` as equal (no change)."""
    return bool(attribute_impl(state, key).is_equal(new, old))


def is_orm_statement(statement: Any) -> bool:
    """Whether ``statement`` was built on an ORM entity (``insert(Model)``), not a Table."""
    return bool(statement._propagate_attrs.get("compile_state_plugin") == "orm")


def has_multi_values(statement: Any) -> bool:
    """Whether an ``Insert`` has several VALUES sets (``values([{...}, {...}])``)."""
    return bool(statement._multi_values)


def returning_count(statement: Any) -> int:
    """How many RETURNING entries the caller put on ``statement``."""
    return len(statement._returning)
