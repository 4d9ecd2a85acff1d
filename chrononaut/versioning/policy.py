"""Which columns of a versioned class are tracked, hidden or untracked, held once.

The flush recorder, the bulk path, ``diff()`` and the database guard each need
to know, for one mapped class, which columns make a version and are copied to
history (tracked), which make a version without their values being kept
(hidden), and which are left out (untracked). Computing that in each of them
let them drift apart, and a hidden value leaked through the one that drifted.
:func:`chrononaut.versioning.history.build_history` computes it once per mapped
class, single-table subclasses included, as a frozen :class:`ColumnPolicy` on
``cls.__chrononaut__.policy``; a hierarchy's base answers for the subclass a row
belongs to with ``policy_for_discriminator(value)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import sqlalchemy as sa


@dataclass(frozen=True)
class ColumnPolicy:
    """The column policy of one versioned class, by attribute key.

    ::

        policy = Document.__chrononaut__.policy
        policy.tracked["title"]  # the model Column copied to history
        "password" in policy.hidden  # changes version, value not kept
        policy.kind_of("view_count")  # "untracked"
    """

    cls: type[Any]
    #: attribute key -> model column, for the columns copied to history
    tracked: MappingProxyType[str, sa.Column[Any]]
    #: attribute key -> model column, for the hidden columns
    hidden: MappingProxyType[str, sa.Column[Any]]
    #: attribute key -> model column, for the untracked columns
    untracked: MappingProxyType[str, sa.Column[Any]]
    #: relationship keys whose changes are not versioned
    untracked_relationships: frozenset[str] = frozenset()
    #: the keys of ``hidden`` and ``untracked``, as sets (set operations, fast ``in``)
    hidden_keys: frozenset[str] = frozenset()
    untracked_keys: frozenset[str] = frozenset()

    @property
    def versioned(self) -> frozenset[str]:
        """Keys whose change writes a version: the tracked and the hidden ones."""
        return frozenset(self.tracked) | frozenset(self.hidden)

    def kind_of(self, key: str) -> str:
        """``"tracked"``, ``"hidden"`` or ``"untracked"`` for attribute ``key``."""
        for kind in ("tracked", "hidden", "untracked"):
            if key in getattr(self, kind):
                return kind
        raise KeyError(f"{self.cls.__name__} has no versioned column attribute {key!r}")


def column_policy(
    cls: type[Any],
    columns: dict[str, sa.Column[Any]],
    tracked: dict[str, sa.Column[Any]],
    hidden: set[str],
    untracked: set[str],
    untracked_relationships: set[str],
) -> ColumnPolicy:
    """Freeze what :func:`~chrononaut.versioning.history.build_history` worked out."""
    hidden_columns = {k: columns[k] for k in sorted(hidden) if k in columns}
    untracked_columns = {k: columns[k] for k in sorted(untracked) if k in columns}
    return ColumnPolicy(
        cls=cls,
        tracked=MappingProxyType(dict(tracked)),
        hidden=MappingProxyType(hidden_columns),
        untracked=MappingProxyType(untracked_columns),
        untracked_relationships=frozenset(untracked_relationships),
        hidden_keys=frozenset(hidden),
        untracked_keys=frozenset(untracked),
    )
