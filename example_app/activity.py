"""The Activity page: what everyone changed, newest first, twenty at a time.

Built on :func:`chrononaut.activity`: one query a page, paged by keyset (the
"Older" link carries the last entry's cursor in ``?before=``), so a page
never repeats or skips a change however many are saved meanwhile.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import Blueprint, abort, render_template, request
from flask_login import login_required

import chrononaut

from .forms import FIELD_LABELS
from .models import Document, db

bp = Blueprint("activity", __name__)

#: Entries per page.
PAGE_SIZE = 20


@dataclass
class Row:
    """One line of the page: the change, and the document as it is now (None if deleted)."""

    entry: chrononaut.Activity
    document: Document | None
    columns: list[str]

    @property
    def rationale(self) -> str | None:
        extra = self.entry.extra
        return extra.get("rationale") if isinstance(extra, dict) else None


def _page(before: str | None) -> tuple[list[chrononaut.Activity], bool]:
    """A page of entries, and whether older ones follow."""
    try:
        entries = chrononaut.activity(
            db.session, models=[Document], limit=PAGE_SIZE + 1, before=before
        )
    except ValueError:
        abort(400, description="That link to older activity is not valid; start again.")
    return entries[:PAGE_SIZE], len(entries) > PAGE_SIZE


def _labels(columns: tuple[str, ...]) -> list[str]:
    return [FIELD_LABELS.get(column, column) for column in columns]


@bp.route("/activity")
@login_required
def activity() -> Any:
    """Every creation, edit and deletion of a document, newest first."""
    before = request.args.get("before") or None
    entries, more = _page(before)
    ids = {entry.identity[0] for entry in entries}
    documents = {
        document.id: document
        for document in db.session.scalars(db.select(Document).where(Document.id.in_(ids)))
    }
    rows = [Row(e, documents.get(e.identity[0]), _labels(e.columns)) for e in entries]
    older = entries[-1].cursor if more else None
    return render_template("activity.html", rows=rows, older=older, first=before is None)
