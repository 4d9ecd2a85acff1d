"""HTTP glue for Flask: error pages for conflicts and locks, ETags and ``If-Match``.

``register_error_handlers(app)`` turns :class:`~chrononaut.ConflictError` into
HTTP 409 and :class:`~chrononaut.RecordLockedError` into HTTP 423, as JSON for
clients that prefer it, else as HTML (the app's ``chrononaut/conflict.html`` or
``chrononaut/locked.html`` template when it has one). ``check_if_match`` and
``set_etag`` give JSON APIs optimistic concurrency over HTTP.
"""

from __future__ import annotations

import re
from datetime import timezone
from typing import Any, TypeVar

import sqlalchemy as sa
from flask import Flask, current_app, jsonify, render_template, render_template_string, request
from jinja2 import TemplateNotFound
from sqlalchemy.orm import Session
from werkzeug.exceptions import PreconditionFailed, PreconditionRequired
from werkzeug.http import unquote_etag
from werkzeug.wrappers import Response

from .exceptions import ConflictError, RecordLockedError
from .locking import keys, optimistic

R = TypeVar("R", bound=Response)

CONFLICT_TEMPLATE = "chrononaut/conflict.html"
LOCKED_TEMPLATE = "chrononaut/locked.html"

_PAGE = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>{{ title }}</title></head>
<body>
<h1>{{ title }}</h1>
{% block content %}{% endblock %}
</body>
</html>
"""

_CONFLICT_PAGE = _PAGE.replace(
    "{% block content %}{% endblock %}",
    """<p>{{ error.record }} was changed by someone else since you loaded version \
{{ error.expected_version }}. {% if error.current_version is none -%}
It has since been deleted.{% else %}It is now at version {{ error.current_version }}.\
{% endif %}</p>
{% if error.changes %}
<table>
<thead><tr><th>version</th><th>who</th><th>when (UTC)</th><th>what</th></tr></thead>
<tbody>
{% for change in error.changes %}
<tr><td>{{ change.version }}</td>
<td>{% if change.source == "database" %}database user {{ change.db_user }} (outside the ORM)\
{% else %}{{ change.user_id if change.user_id is not none else "an unknown user" }}{% endif %}</td>
<td>{{ change.changed.astimezone(utc).strftime("%Y-%m-%d %H:%M:%S") }}</td>
<td>{% if change.deleted %}deleted{% else %}{{ change.columns | join(", ")
    or "nothing visible" }}{% endif %}</td></tr>
{% endfor %}
</tbody>
</table>
{% endif %}
{% if error.columns %}<p>Columns in conflict: {{ error.columns | join(", ") }}.</p>{% endif %}
<p>Reload the record and apply your changes again.</p>""",
)

_LOCKED_PAGE = _PAGE.replace(
    "{% block content %}{% endblock %}",
    """{% if error.owner is not none %}
<p>{{ error.record or "This record" }} is being edited by {{ error.owner }}
{%- if error.expires_at %} until {{ error.expires_at.astimezone(utc).strftime(
    "%Y-%m-%d %H:%M:%S") }} UTC{% endif %}.</p>
{% else %}
<p>{{ error }}</p>
{% endif %}
<p>Try again later.</p>""",
)


def _wants_json() -> bool:
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "application/json"


def _render(template_name: str, builtin: str, title: str, error: Exception) -> str:
    try:
        template = current_app.jinja_env.get_template(template_name)
    except TemplateNotFound as missing:
        if missing.name != template_name:
            raise
        return render_template_string(builtin, title=title, error=error, utc=timezone.utc)
    return render_template(template, error=error)


def _respond(
    error: ConflictError | RecordLockedError,
    status: int,
    template_name: str,
    builtin: str,
    title: str,
) -> Response:
    if _wants_json():
        response = jsonify({**error.to_dict(), "message": str(error)})
    else:
        response = current_app.make_response(_render(template_name, builtin, title, error))
    response.status_code = status
    response.vary.add("Accept")
    return response


def handle_conflict(error: ConflictError) -> Response:
    """409 Conflict: who changed what since the version the request was based on.

    Renders only; the view or Flask-SQLAlchemy's teardown rolls the session back.
    """
    return _respond(error, 409, CONFLICT_TEMPLATE, _CONFLICT_PAGE, "Edit conflict")


def handle_locked(error: RecordLockedError) -> Response:
    """423 Locked: who holds the record (lease owner and expiry, when a lease)."""
    return _respond(error, 423, LOCKED_TEMPLATE, _LOCKED_PAGE, "Record locked")


def register_error_handlers(app: Flask) -> None:
    """Answer :class:`ConflictError` with 409 and :class:`RecordLockedError` with 423.

    Clients preferring ``application/json`` get ``error.to_dict()`` plus
    ``"message"``; others get the app's ``chrononaut/conflict.html`` or
    ``chrononaut/locked.html`` template (rendered with ``error``) or a built-in
    page::

        app = Flask(__name__)
        db = VersionedSQLAlchemy(app)
        chrononaut.register_error_handlers(app)
    """
    app.register_error_handler(ConflictError, handle_conflict)
    app.register_error_handler(RecordLockedError, handle_locked)


def set_etag(response: R, record: Any) -> R:
    """Set ``record``'s ETag on ``response`` and return the response::

    return chrononaut.set_etag(jsonify(doc.to_dict()), doc)
    """
    response.headers["ETag"] = optimistic.etag(record)
    return response


_VERSION = re.compile(r"[0-9]+")


def _stale_version(record: Any, tags: set[str]) -> int | None:
    """The oldest version of ``record`` named by one of ``tags``, if any is ours."""
    prefix = optimistic.etag_prefix(record)
    found = [
        int(tag[len(prefix) :])
        for tag in tags
        if tag.startswith(prefix) and _VERSION.fullmatch(tag[len(prefix) :])
    ]
    return min(found) if found else None


def _explain(record: Any, version: int) -> str:
    """What changed since ``version``, read from committed history on a new connection."""
    cls = type(record)
    identity = keys.identity_of(record)
    session = sa.inspect(record).session
    bind = session.get_bind(mapper=sa.inspect(cls)) if session is not None else None
    if not isinstance(bind, sa.Engine):
        return f"{keys.describe(cls, identity)} changed since version {version}."
    with bind.connect() as connection, Session(bind=connection) as reader:
        message = str(optimistic.conflict_for(reader, cls, identity, version))
    return message if message.endswith(".") else message + "."


def check_if_match(record: Any, required: bool = True) -> None:
    """Check the request's ``If-Match`` header against ``record``'s ETag.

    A missing header raises ``PreconditionRequired`` (428) when ``required``;
    ``*`` or the record's current ETag passes, and the record's loaded version
    is then the one its UPDATE is conditioned on, so a concurrent commit still
    fails at flush with :class:`ConflictError`; any other ETag raises
    ``PreconditionFailed`` (412) saying what changed::

        doc = db.get_or_404(Document, doc_id)
        chrononaut.check_if_match(doc)
        doc.title = request.json["title"]
        db.session.commit()
        return chrononaut.set_etag(jsonify(title=doc.title), doc)
    """
    if_match = request.if_match
    if not if_match:
        if required:
            raise PreconditionRequired(
                f"Send an If-Match header with the ETag of {_described(record)} "
                f"(currently {optimistic.etag(record)}) to change it."
            )
        return
    current = optimistic.etag(record)
    if if_match.contains(unquote_etag(current)[0]):  # also true for "*"
        return
    strong = if_match.as_set()
    version = _stale_version(record, strong)
    if version is not None and version < record.version:
        reason = _explain(record, version)
    elif not strong:
        reason = (
            f"If-Match holds only weak ETags, which never match; send {current} "
            f"for {_described(record)}."
        )
    else:
        given = ", ".join(sorted(f'"{tag}"' for tag in strong))
        reason = (
            f"{_described(record)} does not match If-Match {given}: it has changed, "
            f"its current ETag is {current}."
        )
    raise PreconditionFailed(f"{reason} Reload it and retry with its current ETag.")


def _described(record: Any) -> str:
    return keys.describe(record, keys.identity_of(record))
