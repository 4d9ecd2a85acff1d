"""Acting on history: revert a document to an earlier version, restore a deleted one.

"Revert to this version" on the history page is a POST with the version the
page showed; it follows a save's rules: 409 when the document changed since
(``check_version``), 423 when someone else holds its edit lease, and the commit
itself is a versioned write (``change_info["reverted_to"]``). "Recently deleted"
lists the documents whose newest history row is a deletion, each with a
Restore button (``chrononaut.restore``).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import flash, redirect, render_template, request, url_for
from flask_login import login_required
from sqlalchemy.exc import IntegrityError
from werkzeug.exceptions import BadRequest, NotFound
from werkzeug.wrappers import Response

import chrononaut
from chrononaut import ChrononautException, ConflictError, RecordLockedError, VersionNotFoundError

from .forms import parse_number
from .models import Document, db
from .views import bp, get_document

#: How many deleted documents the "Recently deleted" page lists.
DELETED_SHOWN = 50


def _form_number(name: str) -> int:
    number = parse_number(request.form.get(name))  # [0-9]+: "²" passes isdigit()
    if number is None:
        raise BadRequest(f"The form lost its {name}: reload the page.")
    return number


@bp.route("/documents/<int:doc_id>/revert", methods=["POST"])
@login_required
def revert(doc_id: int) -> Response:
    """Revert to ``target``: 409 if changed since ``version``, 423 if leased, 400 if unknown."""
    document = get_document(doc_id)
    target, shown = _form_number("target"), _form_number("version")
    try:
        document.check_version(shown)  # changed since the page was shown: 409
        document.revert_to(target)
        changed = db.session.is_modified(document)
        document.release_lease()  # someone else is editing it: 423
        db.session.commit()  # leased or changed meanwhile: 423 or 409
    except (ConflictError, RecordLockedError):
        db.session.rollback()
        raise  # rendered by chrononaut.register_error_handlers
    except VersionNotFoundError as error:
        db.session.rollback()
        raise BadRequest(str(error)) from None
    if changed:
        flash(f"Reverted to version {target}: saved as version {document.version}.")
    else:
        flash(f"Version {target} has the current values: nothing to revert.")
    return redirect(url_for("documents.view", doc_id=doc_id))


def deleted_documents() -> list[Any]:
    """The newest deletion row of each deleted document, most recent first."""
    history = Document.__history_mapper__.class_
    newer = sa.orm.aliased(history)
    # No DISTINCT ON: SQLAlchemy 2.1 deprecates select().distinct(expression).
    newest = sa.select(history).where(
        ~sa.exists().where(Document.id == history.id),
        ~sa.exists().where(newer.id == history.id, newer.version > history.version),
    )
    rows = [row for row in db.session.scalars(newest) if row.is_deletion]
    rows.sort(key=lambda row: row.changed, reverse=True)
    return rows[:DELETED_SHOWN]


@bp.route("/documents/deleted")
@login_required
def deleted() -> str:
    """Recently deleted documents: title, who deleted them, when and why; Restore."""
    return render_template("deleted.html", rows=deleted_documents())


@bp.route("/documents/<int:doc_id>/restore", methods=["POST"])
@login_required
def restore(doc_id: int) -> Response:
    """Bring a deleted document back as it was when deleted; its history continues."""
    if db.session.get(Document, doc_id) is not None:
        flash(f"Document {doc_id} is not deleted (someone restored it already).")
        return redirect(url_for("documents.view", doc_id=doc_id))
    try:
        document = chrononaut.restore(db.session, Document, doc_id)
        db.session.commit()
    except IntegrityError:  # restored by someone else meanwhile
        db.session.rollback()
        flash(f"Document {doc_id} was restored by someone else meanwhile.")
        return redirect(url_for("documents.view", doc_id=doc_id))
    except ChrononautException as error:
        db.session.rollback()
        raise NotFound(str(error)) from None
    flash(f"Restored “{document.title}” as version {document.version}.")
    return redirect(url_for("documents.view", doc_id=doc_id))
