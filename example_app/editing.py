"""Editing a document: leases, take-over, and saving a possibly stale form.

Opening the edit page takes the document's edit lease. Another user sees a
read-only form with a "Take over" button, which breaks the lease. Saving
merges a stale form with what others saved since (``apply_changes``) unless
the same fields changed, which is a conflict (409). Saving a document someone
else holds the lease of is refused (423).
"""

from __future__ import annotations

from contextlib import nullcontext
from datetime import timedelta
from typing import Any

from flask import current_app, flash, redirect, render_template, request, session, url_for
from flask_login import current_user, login_required
from werkzeug.exceptions import BadRequest
from werkzeug.wrappers import Response

from chrononaut import ConflictError, RecordLockedError, append_change_info, rationale

from .forms import FIELDS, DocumentForm
from .models import Document, db
from .views import bp, get_document

#: Flask session key: lease breaks this user made, waiting for their next save.
BREAKS_KEY = "lease_breaks"


def lease_ttl() -> timedelta:
    """How long an edit lease lasts (config ``LEASE_TTL``, a timedelta)."""
    return current_app.config["LEASE_TTL"]


def render_edit(document: Document, form: DocumentForm, lease: Any, status: int = 200) -> Any:
    """The edit page; read-only when ``lease`` is someone else's."""
    read_only = lease is not None and lease.owner != current_user.get_id()
    page = render_template(
        "edit.html", document=document, form=form, lease=lease, read_only=read_only
    )
    return page, status


@bp.route("/documents/<int:doc_id>/edit", methods=["GET"])
@login_required
def edit(doc_id: int) -> Any:
    """Take (or renew) the edit lease and show the form; read-only if someone else has it."""
    document = get_document(doc_id)
    try:
        lease = document.acquire_lease(ttl=lease_ttl())
        db.session.commit()
    except RecordLockedError:
        db.session.rollback()
        lease = document.lease
    return render_edit(document, DocumentForm.from_document(document), lease)


def base_values(document: Document, version: int) -> dict[str, Any]:
    """The form fields' values at ``version``: the current row or its history row.

    History keeps no values of the hidden ``reviewer_notes``; its current value
    stands in. That is exact when nobody changed it since ``version``, and
    otherwise makes a differing submitted value count as an edit, which
    ``apply_changes`` then reports as a conflict rather than overwrite.
    """
    if version == document.version:
        return {name: getattr(document, name) or "" for name in FIELDS}
    history = Document.__history_mapper__.class_
    row = document.versions(return_query=True).filter(history.version == version).first()
    if row is None or version > document.version:
        raise BadRequest(f"Document {document.id} has no version {version}: reload the page.")
    hidden = Document.__chrononaut__.hidden
    return {
        name: (getattr(document, name) if name in hidden else getattr(row, name)) or ""
        for name in FIELDS
    }


def _attach_lease_break(document: Document) -> None:
    """Record on this version the lease this user broke to edit it (see take_over)."""
    broken = session.get(BREAKS_KEY, {}).get(str(document.id))
    if broken is not None:
        # append_change_info keeps the info on the object until its next version
        with append_change_info(document, lease_broken=broken):
            pass


def _forget_lease_break(document: Document) -> None:
    breaks = session.get(BREAKS_KEY, {})
    if breaks.pop(str(document.id), None) is not None:
        session[BREAKS_KEY] = breaks


@bp.route("/documents/<int:doc_id>/edit", methods=["POST"])
@login_required
def save(doc_id: int) -> Any:
    """Save the form: merged when stale without overlap, 409 on overlap, 423 if leased."""
    document = get_document(doc_id)
    form = DocumentForm.from_request(request.form, with_version=True)
    if not form.valid:
        return render_edit(document, form, document.lease, status=400)
    assert form.version is not None
    base = base_values(document, form.version)
    changes = {name: value for name, value in form.values.items() if value != base[name]}
    current = document.version
    try:
        document.apply_changes(changes, base_version=form.version)  # overlap: 409
        if changes:
            _attach_lease_break(document)
        document.release_lease()  # someone else's lease: RecordLockedError, 423
        with rationale(form.rationale) if form.rationale else nullcontext():
            db.session.commit()  # leased or changed meanwhile: 423 or 409
    except (ConflictError, RecordLockedError):
        db.session.rollback()
        raise  # rendered by chrononaut.register_error_handlers
    if not changes:
        flash("Nothing changed; the edit lease is released.")
    elif form.version != current:
        flash(
            f"Saved version {document.version}: your changes were merged with the changes "
            f"others made since version {form.version}."
        )
        _forget_lease_break(document)
    else:
        flash(f"Saved version {document.version}.")
        _forget_lease_break(document)
    return redirect(url_for("documents.view", doc_id=doc_id))


@bp.route("/documents/<int:doc_id>/take-over", methods=["POST"])
@login_required
def take_over(doc_id: int) -> Response:
    """Break another user's lease; 409 if the document changed since the page's version."""
    document = get_document(doc_id)
    raw = request.form.get("version", "")
    if not raw.isdigit():
        raise BadRequest("The form lost the version it was based on: reload the page.")
    previous = document.lease
    document.acquire_lease(ttl=lease_ttl(), force=True)
    db.session.commit()
    me = current_user.get_id()
    if previous is not None and previous.owner != me:
        breaks = session.get(BREAKS_KEY, {})
        breaks[str(doc_id)] = {
            "owner": previous.owner,
            "expires_at": previous.expires_at.isoformat(),
            "by": me,
        }
        session[BREAKS_KEY] = breaks
        flash(f"You took over the edit lease from {previous.owner}.")
    document.check_version(int(raw))  # changed since: ConflictError -> 409
    return redirect(url_for("documents.edit", doc_id=doc_id))


@bp.route("/documents/<int:doc_id>/cancel", methods=["POST"])
@login_required
def cancel(doc_id: int) -> Response:
    """Stop editing: release this user's lease without saving."""
    document = get_document(doc_id)
    try:
        document.release_lease()
        db.session.commit()
    except RecordLockedError:
        db.session.rollback()  # someone took it over meanwhile: nothing of ours to release
    _forget_lease_break(document)
    return redirect(url_for("documents.view", doc_id=doc_id))
