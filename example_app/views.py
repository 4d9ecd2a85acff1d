"""The document pages: list, create, view, delete and history (editing is in editing.py)."""

from __future__ import annotations

from contextlib import nullcontext
from typing import Any

import sqlalchemy as sa
from flask import Blueprint, abort, flash, g, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from markupsafe import Markup
from werkzeug.exceptions import BadRequest
from werkzeug.wrappers import Response

from chrononaut import ConflictError, RecordLockedError, rationale

from .forms import FIELD_LABELS, RATIONALE_MAX, DocumentForm, has_control_characters, parse_number
from .history import history_page, last_state, value_at
from .models import Document, LeaseBreak, db

bp = Blueprint("documents", __name__)


def get_document(doc_id: int) -> Document:
    """The document with id ``doc_id``, or a 404 page; error pages name it by ``g.title``."""
    document = db.get_or_404(Document, doc_id, description=f"There is no document {doc_id}.")
    g.title = document.title
    return document


def close_breaks(doc_id: int, version: int | None = None, by: str | None = None) -> None:
    """Close the open take-overs of ``doc_id`` (``by`` one user only), noting ``version``."""
    query = sa.update(LeaseBreak).where(LeaseBreak.document_id == doc_id, LeaseBreak.open)
    if by is not None:
        query = query.where(LeaseBreak.taken_by == by)
    db.session.execute(query.values(open=False, version=version))


@bp.route("/")
def home() -> Response:
    """The front page is the document list."""
    return redirect(url_for("documents.index"))


@bp.route("/documents")
@login_required
def index() -> str:
    """Every document with its version, last editor and lease state."""
    documents = db.session.scalars(
        db.select(Document).order_by(Document.changed.desc(), Document.id.desc())
    ).all()
    rows = [(document, document.lease) for document in documents]
    return render_template("index.html", rows=rows)


@bp.route("/documents/new", methods=["GET", "POST"])
@login_required
def new() -> Any:
    """Create a document (version 0)."""
    if request.method == "GET":
        form = DocumentForm(values={"title": "", "body": "", "status": "draft"})
        return render_template("new.html", form=form)
    form = DocumentForm.from_request(request.form, with_version=False)
    if not form.valid:
        return render_template("new.html", form=form), 400
    document = Document(created_by=current_user.get_id(), **form.values)
    db.session.add(document)
    db.session.commit()
    flash(f"Created “{document.title}”.")
    return redirect(url_for("documents.view", doc_id=document.id))


@bp.route("/documents/<int:doc_id>")
@login_required
def view(doc_id: int) -> str:
    """Show a document and count the view.

    ``view_count`` is untracked: counting writes no version and is outside
    concurrency control, so a view counts even while someone else holds the
    edit lease or loaded the document earlier.
    """
    document = get_document(doc_id)
    document.view_count = Document.view_count + 1
    db.session.commit()
    return render_template("view.html", document=document, lease=document.lease)


@bp.route("/documents/<int:doc_id>/delete", methods=["GET", "POST"])
@login_required
def delete(doc_id: int) -> Any:
    """Confirm, then delete (history keeps the last state); 409 if stale, 423 if leased."""
    document = get_document(doc_id)
    if request.method == "GET":
        return render_template("delete.html", document=document, lease=document.lease)
    version = parse_number(request.form.get("version"))
    reason = request.form.get("rationale", "").strip()
    if version is None or len(reason) > RATIONALE_MAX or has_control_characters(reason, ""):
        raise BadRequest(
            "The delete form is incomplete, or its reason too long or holding control "
            "characters: reload the page."
        )
    title = document.title
    try:
        document.check_version(version)  # changed since the page was shown: 409
        document.release_lease()  # someone else is editing it: 423
        close_breaks(doc_id)
        db.session.delete(document)
        with rationale(reason) if reason else nullcontext():
            db.session.commit()
    except (ConflictError, RecordLockedError):
        db.session.rollback()
        raise
    flash(
        Markup('Deleted “{}”; <a href="{}">its history</a> is kept.').format(
            title, url_for("documents.history", doc_id=doc_id)
        )
    )
    return redirect(url_for("documents.index"))


def _document_or_history(doc_id: int) -> tuple[Document | None, Any]:
    """The document, or None and its last history row when it was deleted; else 404."""
    document = db.session.get(Document, doc_id)
    if document is not None:
        g.title = document.title
        return document, None
    last = last_state(doc_id)
    if last is None:
        abort(404, description=f"There is no document {doc_id}.")
    return None, last


@bp.route("/documents/<int:doc_id>/history")
@login_required
def history(doc_id: int) -> str:
    """A page of versions, newest first: who, when, why, and the diff from the version before.

    ``?before=N`` shows the versions below N. A deleted document's history
    stays here, headed by who deleted it.
    """
    raw = request.args.get("before")
    before = parse_number(raw) if raw is not None else None
    if raw is not None and before is None:
        raise BadRequest(f"?before= takes a version number, got {raw!r}.")
    document, _ = _document_or_history(doc_id)
    page = history_page(doc_id, document, before)
    return render_template("history.html", doc_id=doc_id, document=document, page=page)


@bp.route("/documents/<int:doc_id>/versions/<int:version>/<column>")
@login_required
def value(doc_id: int, version: int, column: str) -> str:
    """One column's whole value at one version (the history page cuts long values)."""
    document, last = _document_or_history(doc_id)
    text = value_at(doc_id, document, version, column)
    if text is None:
        abort(
            404, description=f"Document {doc_id} has no visible {column!r} at version {version}."
        )
    title = document.title if document is not None else last.title
    return render_template(
        "value.html",
        doc_id=doc_id,
        title=title,
        version=version,
        label=FIELD_LABELS[column],
        text=text,
    )
