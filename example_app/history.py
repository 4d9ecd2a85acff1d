"""A document's history as the history page shows it: one entry per version."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from itertools import pairwise
from typing import Any

from .forms import FIELD_LABELS, FIELDS
from .models import Document

#: What the page shows for a hidden column's change (its values are not kept).
HIDDEN = "changed (hidden)"


@dataclass
class FieldChange:
    """One column's change: ``old`` and ``new`` are None when the column is hidden."""

    column: str
    label: str
    old: Any = None
    new: Any = None
    hidden: bool = False


@dataclass
class Entry:
    """A version: who wrote it, when, why, and what changed from the version before."""

    version: int
    user_id: str | None
    changed: datetime | None
    rationale: str | None = None
    lease_broken: dict[str, Any] | None = None
    changes: list[FieldChange] = field(default_factory=list)
    created: bool = False
    values: dict[str, Any] = field(default_factory=dict)
    #: the version this one reverted to (``change_info["reverted_to"]``)
    reverted_to: int | None = None
    #: this version brought the document back after a deletion: who deleted it, when
    restored: bool = False
    deleted_by: str | None = None
    deleted_at: datetime | None = None


def _lease_broken(info: dict[str, Any]) -> dict[str, Any] | None:
    """A lease break the change recorded: chrononaut's own, or the app's carried one."""
    return info.get("lease_broken") or (info.get("extra") or {}).get("lease_broken")


def history_entries(document: Document) -> list[Entry]:
    """Every version of ``document``, newest first, each with its diff from the one before.

    History row *v* holds version *v*'s values and, in its ``change_info``,
    who made the change to version *v + 1*; the record itself is the last
    version. Version 0's author is ``created_by``. After a deletion row comes
    the version ``chrononaut.restore`` brought back: who restored it is known
    while it is the current version (``RecordChanges`` stamps the row), and the
    deletion row says who deleted it and when.
    """
    states: list[Any] = [*document.versions(), document]
    hidden = Document.__chrononaut__.hidden
    first = states[0]
    entries = [
        Entry(
            version=first.version,
            user_id=document.created_by,
            changed=document.created_at,
            created=True,
            values={name: getattr(first, name) for name in FIELDS if name not in hidden},
        )
    ]
    for older, newer in pairwise(states):
        info = older.change_info or {}
        if older.is_deletion:
            entries.append(_restored_entry(document, older, newer))
            continue
        diff = document.diff(older, to=newer)
        changes = [
            FieldChange(name, FIELD_LABELS[name], *diff[name]) for name in FIELDS if name in diff
        ]
        changes += [
            FieldChange(name, FIELD_LABELS.get(name, name), hidden=True)
            for name in info.get("hidden_cols_changed", [])
        ]
        entries.append(
            Entry(
                version=newer.version,
                user_id=info.get("user_id"),
                changed=older.changed,
                rationale=(info.get("extra") or {}).get("rationale"),
                lease_broken=_lease_broken(info),
                changes=changes,
                reverted_to=info.get("reverted_to"),
            )
        )
    return entries[::-1]


def _restored_entry(document: Document, deletion: Any, restored: Any) -> Entry:
    """The version after a deletion row: the document restored as it was deleted."""
    info = deletion.change_info or {}
    current = (document.change_info or {}) if restored is document else {}
    return Entry(
        version=restored.version,
        user_id=current.get("user_id") if current.get("restored") else None,
        changed=document.changed if current.get("restored") else None,
        restored=True,
        deleted_by=info.get("user_id"),
        deleted_at=deletion.changed,
        rationale=(info.get("extra") or {}).get("rationale"),
    )
