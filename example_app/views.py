"""The document pages: list, create, view, delete and history (editing is in editing.py)."""

from __future__ import annotations

from contextlib import nullcontext
from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from werkzeug.exceptions import BadRequest
from werkzeug.wrappers import Response

from chrononaut import ConflictError, RecordLockedError, rationale

from .forms import RATIONALE_MAX, DocumentForm
from .history import history_entries
from .models import Document, db

bp = Blueprint("documents", __name__)


def get_document(doc_id: int) -> Document:
    """The document with id ``doc_id``, or a 404 page."""
    return db.get_or_404(Document, doc_id, description=f"There is no document {doc_id}.")


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
    raw = request.form.get("version", "")
    reason = request.form.get("rationale", "").strip()
    if not raw.isdigit() or len(reason) > RATIONALE_MAX:
        raise BadRequest("The delete form is incomplete or its reason too long: reload the page.")
    title = document.title
    try:
        document.check_version(int(raw))  # changed since the page was shown: 409
        document.release_lease()  # someone else is editing it: 423
        db.session.delete(document)
        with rationale(reason) if reason else nullcontext():
            db.session.commit()
    except (ConflictError, RecordLockedError):
        db.session.rollback()
        raise
    flash(f"Deleted “{title}”; its history is kept.")
    return redirect(url_for("documents.index"))


@bp.route("/documents/<int:doc_id>/history")
@login_required
def history(doc_id: int) -> str:
    """Every version: who, when, why, and the diff from the version before."""
    document = get_document(doc_id)
    return render_template("history.html", document=document, entries=history_entries(document))
