"""Editing a document: leases, take-over, and saving a possibly stale form.

The view page's Edit button (a POST: a link on another site cannot make
anyone take a lease) takes the document's edit lease; the edit page itself
only reads. Another user sees a read-only form with a "Take over" button,
which breaks the lease; the break is recorded when it commits
(:class:`~example_app.models.LeaseBreak`) and lands in the change_info of the
taker's next saved version, or is closed without one when their lease ends
another way. Saving merges a stale form with what others saved since
(``apply_changes``) unless the same fields changed, which is a conflict
(409); a form saved twice (a double click, a resent POST) is recognised and
answered with the saved page. Saving a document someone else holds the lease
of is refused (423), and saving one deleted meanwhile shows who deleted it
with the submitted text (410).
"""

from __future__ import annotations

from contextlib import nullcontext
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from flask import abort, current_app, flash, g, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from werkzeug.datastructures import MultiDict
from werkzeug.exceptions import BadRequest
from werkzeug.wrappers import Response

from chrononaut import ConflictError, RecordLockedError, append_change_info, rationale

from .forms import FIELDS, DocumentForm, parse_number
from .history import history_class, last_state
from .models import Document, LeaseBreak, db
from .views import bp, close_breaks, get_document


def lease_ttl() -> timedelta:
    """How long an edit lease lasts (config ``LEASE_TTL``, a timedelta)."""
    return current_app.config["LEASE_TTL"]


def render_edit(document: Document, form: DocumentForm, lease: Any, status: int = 200) -> Any:
    """The edit page; read-only while someone else holds the lease."""
    read_only = lease is not None and lease.owner != current_user.get_id()
    page = render_template(
        "edit.html", document=document, form=form, lease=lease, read_only=read_only
    )
    return page, status


@bp.route("/documents/<int:doc_id>/edit", methods=["GET"])
@login_required
def edit(doc_id: int) -> Any:
    """The edit form, read-only while someone else holds the lease; it writes nothing."""
    document = get_document(doc_id)
    return render_edit(document, DocumentForm.from_document(document), document.lease)


@bp.route("/documents/<int:doc_id>/lease", methods=["POST"])
@login_required
def start_edit(doc_id: int) -> Response:
    """Take (or renew) the edit lease, then show the edit page."""
    document = get_document(doc_id)
    try:
        document.acquire_lease(ttl=lease_ttl())
        close_breaks(doc_id)  # a take-over whose lease ran out ended without a save
        db.session.commit()
    except RecordLockedError:
        db.session.rollback()  # someone else holds it: the edit page is read-only
    return redirect(url_for("documents.edit", doc_id=doc_id))


def base_values(document: Document, version: int) -> dict[str, Any]:
    """The form fields' values at ``version``: the current row or its history row.

    History keeps no values of the hidden ``reviewer_notes``; its current value
    stands in. That is exact when nobody changed it since ``version``, and
    otherwise makes a differing submitted value count as an edit, which
    ``apply_changes`` then reports as a conflict rather than overwrite.
    """
    if version == document.version:
        return {name: getattr(document, name) or "" for name in FIELDS}
    history = history_class()
    row = document.versions(return_query=True).filter(history.version == version).first()
    if row is None or version > document.version:
        raise BadRequest(f"“{document.title}” has no version {version}: reload the page.")
    hidden = Document.__chrononaut__.hidden
    return {
        name: (getattr(document, name) if name in hidden else getattr(row, name)) or ""
        for name in FIELDS
    }


def already_saved(document: Document, form: DocumentForm) -> bool:
    """Whether ``form`` is this user's own form, saved already (a double submit).

    True when every version since the form's base is this user's and the
    document now holds exactly the submitted values.
    """
    assert form.version is not None
    if form.version >= document.version:
        return False
    if any((getattr(document, name) or "") != form.values[name] for name in FIELDS):
        return False
    history = history_class()
    authors = db.session.scalars(
        sa.select(history.change_info["user_id"].astext).where(
            history.id == document.id, history.version >= form.version
        )
    ).all()
    return bool(authors) and set(authors) == {current_user.get_id()}


def _open_break(doc_id: int) -> LeaseBreak | None:
    """This user's take-over of the document's lease, waiting for their save."""
    return db.session.scalar(
        sa.select(LeaseBreak).where(
            LeaseBreak.document_id == doc_id,
            LeaseBreak.open,
            LeaseBreak.taken_by == current_user.get_id(),
        )
    )


def deleted_page(doc_id: int, form: MultiDict[str, str]) -> Any:
    """Saving a document deleted meanwhile: who deleted it, when, and the submitted text."""
    last = last_state(doc_id)
    if last is None:
        abort(404, description=f"There is no document {doc_id}: nothing was saved.")
    info = last.change_info or {}
    return render_template(
        "deleted_meanwhile.html",
        doc_id=doc_id,
        title=last.title,
        deleted_by=info.get("user_id"),
        deleted_at=last.changed,
        why=(info.get("extra") or {}).get("rationale"),
        submitted={name: form.get(name, "") for name in FIELDS if form.get(name)},
    ), 410


@bp.route("/documents/<int:doc_id>/edit", methods=["POST"])
@login_required
def save(doc_id: int) -> Any:
    """Save the form: merged when stale without overlap, 409 on overlap, 423 if leased."""
    document = db.session.get(Document, doc_id)
    if document is None:
        return deleted_page(doc_id, request.form)
    g.title = document.title
    form = DocumentForm.from_request(request.form, with_version=True)
    if not form.valid:
        return render_edit(document, form, document.lease, status=400)
    assert form.version is not None
    if already_saved(document, form):
        flash(f"Saved version {document.version} (this form was sent twice; saved once).")
        return redirect(url_for("documents.view", doc_id=doc_id))
    base = base_values(document, form.version)
    changes = {name: value for name, value in form.values.items() if value != base[name]}
    current = document.version
    taken = _open_break(doc_id)
    try:
        document.apply_changes(changes, base_version=form.version)  # overlap: 409
        if changes and taken is not None:
            # append_change_info keeps the info on the object until its next version
            with append_change_info(document, lease_broken=taken.as_change_info()):
                pass
        document.release_lease()  # someone else's lease: RecordLockedError, 423
        with rationale(form.rationale) if form.rationale else nullcontext():
            db.session.flush()  # leased or changed meanwhile: 423 or 409
            close_breaks(doc_id, version=document.version if changes else None)
            db.session.commit()
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
    else:
        flash(f"Saved version {document.version}.")
    return redirect(url_for("documents.view", doc_id=doc_id))


@bp.route("/documents/<int:doc_id>/take-over", methods=["POST"])
@login_required
def take_over(doc_id: int) -> Response:
    """Break another user's lease; 409 if the document changed since the page's version."""
    document = get_document(doc_id)
    version = parse_number(request.form.get("version"))
    if version is None:
        raise BadRequest("The form lost the version it was based on: reload the page.")
    previous = document.lease
    me = current_user.get_id()
    lease = document.acquire_lease(ttl=lease_ttl(), force=True)
    close_breaks(doc_id)
    if previous is not None and previous.owner != me:
        db.session.add(
            LeaseBreak(
                document_id=doc_id,
                owner=previous.owner,
                expires_at=previous.expires_at,
                taken_by=me,
            )
        )
    db.session.commit()
    g.lease_taken = lease  # the conflict page says the lease is now this user's
    if previous is not None and previous.owner != me:
        flash(f"You took over the edit lease from {previous.owner}.")
    document.check_version(version)  # changed since: ConflictError -> 409
    return redirect(url_for("documents.edit", doc_id=doc_id))


@bp.route("/documents/<int:doc_id>/cancel", methods=["POST"])
@login_required
def cancel(doc_id: int) -> Response:
    """Stop editing: release this user's lease without saving."""
    document = get_document(doc_id)
    try:
        document.release_lease()
        close_breaks(doc_id, by=current_user.get_id())
        db.session.commit()
    except RecordLockedError:
        db.session.rollback()  # someone took it over meanwhile: nothing of ours to release
    return redirect(url_for("documents.view", doc_id=doc_id))


def render_kept(target: str, kept: dict[str, str]) -> Any:
    """After a login, the form a lost session posted, shown again to be saved (or None)."""
    parts = target.split("/")
    form = MultiDict(kept)
    if target == url_for("documents.new"):
        flash("Your new document was not saved yet: check it and create it.")
        parsed = DocumentForm.from_request(form, with_version=False)
        return render_template("new.html", form=parsed)
    doc_id = parse_number(parts[2]) if len(parts) == 4 and parts[3] == "edit" else None
    if doc_id is None or target != url_for("documents.edit", doc_id=doc_id):
        return None
    document = db.session.get(Document, doc_id)
    if document is None:
        return deleted_page(doc_id, form)
    g.title = document.title
    parsed = DocumentForm.from_request(form, with_version=True)
    if parsed.version is None:
        parsed.version = document.version
    flash("Your edit was not saved yet: check it and save it.")
    page, _ = render_edit(document, parsed, document.lease)
    return page
