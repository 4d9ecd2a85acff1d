"""A document's history as the history page shows it: one entry per version, paged.

The page shows :data:`PAGE_SIZE` versions, newest first; the next page is
the versions below the last one shown (``?before=<version>``, a keyset: no
OFFSET, every page costs the same however long the history). A value longer
than :data:`SHOWN_CHARACTERS` is cut, with a link to the whole value at that
version. A deleted document's history stays readable: its newest entry says
who deleted it and when.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from .forms import FIELD_LABELS, FIELDS
from .models import STATUS_LABELS, Document, LeaseBreak, db

#: Versions per page.
PAGE_SIZE = 20
#: Characters of a value shown before it is cut.
SHOWN_CHARACTERS = 400


@dataclass
class Value:
    """A column's value at ``version`` as the page shows it: cut when long."""

    text: str
    version: int
    column: str

    @property
    def cut(self) -> bool:
        return len(self.text) > SHOWN_CHARACTERS

    @property
    def shown(self) -> str:
        return self.text[:SHOWN_CHARACTERS] + "…" if self.cut else self.text


@dataclass
class FieldChange:
    """One column's change: ``old`` and ``new`` are None when the column is hidden."""

    column: str
    label: str
    old: Value | None = None
    new: Value | None = None
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
    values: list[Value] = field(default_factory=list)
    #: the version this one reverted to (``change_info["reverted_to"]``)
    reverted_to: int | None = None
    #: this version brought the document back after a deletion: who deleted it, when
    restored: bool = False
    deleted_by: str | None = None
    deleted_at: datetime | None = None


@dataclass
class Deletion:
    """Who deleted the document, when and why."""

    user_id: str | None
    changed: datetime | None
    rationale: str | None


@dataclass
class HistoryPage:
    """One page of a document's history."""

    title: str
    entries: list[Entry]
    next_before: int | None
    deletion: Deletion | None = None
    quiet_breaks: list[LeaseBreak] = field(default_factory=list)


def history_class() -> Any:
    return Document.__history_mapper__.class_


def display(column: str, value: Any) -> str:
    """A column's value in words: status labels, not stored codes."""
    if value is None:
        return ""
    if column == "status":
        return STATUS_LABELS.get(value, value)
    return str(value)


def _visible() -> list[str]:
    hidden = Document.__chrononaut__.hidden
    return [name for name in FIELDS if name not in hidden]


def _lease_broken(info: dict[str, Any]) -> dict[str, Any] | None:
    """A lease break the change recorded: chrononaut's own, or the app's carried one."""
    return info.get("lease_broken") or (info.get("extra") or {}).get("lease_broken")


def _entry(older: Any, newer: Any) -> Entry:
    info = older.change_info or {}
    changes = []
    for name in _visible():
        old, new = getattr(older, name), getattr(newer, name)
        if old != new:
            changes.append(
                FieldChange(
                    name,
                    FIELD_LABELS[name],
                    Value(display(name, old), older.version, name),
                    Value(display(name, new), newer.version, name),
                )
            )
    changes += [
        FieldChange(name, FIELD_LABELS.get(name, name), hidden=True)
        for name in info.get("hidden_cols_changed", [])
    ]
    return Entry(
        version=newer.version,
        user_id=info.get("user_id"),
        changed=older.changed,
        rationale=(info.get("extra") or {}).get("rationale"),
        lease_broken=_lease_broken(info),
        changes=changes,
        reverted_to=info.get("reverted_to"),
    )


def _restored_entry(document: Document | None, deletion: Any, restored: Any) -> Entry:
    """The version after a deletion row: the document restored as it was deleted.

    Who restored it is known while it is the current version (``RecordChanges``
    stamps the row); the deletion row says who deleted it and when.
    """
    info = deletion.change_info or {}
    current = (document.change_info or {}) if document is not None and restored is document else {}
    return Entry(
        version=restored.version,
        user_id=current.get("user_id") if current.get("restored") else None,
        changed=document.changed if document is not None and current.get("restored") else None,
        restored=True,
        deleted_by=info.get("user_id"),
        deleted_at=deletion.changed,
        rationale=(info.get("extra") or {}).get("rationale"),
    )


def _created(first: Any) -> Entry:
    return Entry(
        version=first.version,
        user_id=first.created_by,
        changed=first.created_at,
        created=True,
        values=[Value(display(n, getattr(first, n)), first.version, n) for n in _visible()],
    )


def _rows(doc_id: int, before: int | None, limit: int) -> list[Any]:
    history = history_class()
    query = sa.select(history).where(history.id == doc_id)
    if before is not None:
        query = query.where(history.version < before)
    return list(db.session.scalars(query.order_by(history.version.desc()).limit(limit)))


def history_page(doc_id: int, document: Document | None, before: int | None) -> HistoryPage:
    """Up to :data:`PAGE_SIZE` versions below ``before`` (all: from the newest), newest first.

    History row *v* holds version *v*'s values and, in its ``change_info``,
    who made the change to version *v + 1*; the record itself is the last
    version. A deleted document's newest row holds its last values and, in
    its ``change_info``, the deletion.
    """
    newest: list[Any] = [document] if document is not None and before is None else []
    rows = _rows(doc_id, before, PAGE_SIZE + 1 - len(newest))
    states = newest + rows
    deletion = None
    if document is None and before is None and rows and rows[0].is_deletion:
        info = rows[0].change_info or {}
        why = (info.get("extra") or {}).get("rationale")
        deletion = Deletion(info.get("user_id"), rows[0].changed, why)
    entries = [
        _restored_entry(document, older, newer) if older.is_deletion else _entry(older, newer)
        for newer, older in itertools.pairwise(states)
    ]
    next_before = None
    if len(states) > PAGE_SIZE:
        next_before = states[PAGE_SIZE - 1].version
    elif states:
        entries.append(_created(states[-1]))
    title = document.title if document is not None else (rows[0].title if rows else "")
    return HistoryPage(title, entries, next_before, deletion, _quiet_breaks(doc_id, before))


def _quiet_breaks(doc_id: int, before: int | None) -> list[LeaseBreak]:
    """Take-overs that ended without a saved version (shown on the first page)."""
    if before is not None:
        return []
    return list(
        db.session.scalars(
            sa.select(LeaseBreak)
            .where(LeaseBreak.document_id == doc_id, LeaseBreak.version.is_(None))
            .order_by(LeaseBreak.taken_at.desc(), LeaseBreak.id.desc())
            .limit(PAGE_SIZE)
        )
    )


def value_at(doc_id: int, document: Document | None, version: int, column: str) -> Any:
    """``column``'s whole value at ``version`` (None: no such version or a hidden column)."""
    if column not in _visible():
        return None
    if document is not None and version == document.version:
        return display(column, getattr(document, column))
    history = history_class()
    row = db.session.scalar(
        sa.select(history).where(history.id == doc_id, history.version == version)
    )
    return None if row is None else display(column, getattr(row, column))


def last_state(doc_id: int) -> Any:
    """A deleted document's newest history row (its last values and the deletion), or None."""
    rows = _rows(doc_id, None, 1)
    return rows[0] if rows else None
