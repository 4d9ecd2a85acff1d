"""register_error_handlers: ConflictError -> 409 and RecordLockedError -> 423, HTML or JSON.

Every request runs in its own app context and session, as in production, so
Flask-SQLAlchemy's teardown (not the handler) rolls the failed session back.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timezone
from types import SimpleNamespace
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Blueprint, request
from flask_login import LoginManager, UserMixin
from jinja2 import TemplateNotFound

from chrononaut import (
    ConflictError,
    RecordLockedError,
    Versioned,
    VersionedSQLAlchemy,
    acting_as,
    rationale,
    register_error_handlers,
)
from tests.flask import procs_cli

JSON = {"Accept": "application/json"}
CONFLICT_KEYS = {"record", "expected_version", "current_version", "changes", "columns", "message"}
LOCKED_KEYS = {"record", "owner", "expires_at", "message"}


class LoginUser(UserMixin):
    def __init__(self, user_id: str) -> None:
        self.id = user_id


def document_model(db: VersionedSQLAlchemy) -> type[Any]:
    class Document(db.Model, Versioned):
        __tablename__ = "flask_document"  # procs_cli.HeldDocument maps it in children
        __chrononaut_hidden__ = ["secret"]
        id = db.Column(db.Integer, primary_key=True)
        title = db.Column(db.String(80))
        body = db.Column(db.Text)
        secret = db.Column(db.Text)

    return Document


def commit_as(
    db: VersionedSQLAlchemy, model: type[Any], user: str, why: str, doc_id: int, **values: Any
) -> None:
    """Another user's change (or deletion, with no values), committed by another session."""
    other = db.session.session_factory()
    try:
        with acting_as(user), rationale(why):
            document = other.get(model, doc_id)
            if values:
                for key, value in values.items():
                    setattr(document, key, value)
            else:
                other.delete(document)
            other.commit()
    finally:
        other.close()


@pytest.fixture
def web(app) -> Iterator[SimpleNamespace]:
    """An app with the handlers, Flask-Login (user from ``X-User``) and views that write."""
    db = VersionedSQLAlchemy(app)
    register_error_handlers(app)
    Document = document_model(db)
    manager = LoginManager(app)
    manager.request_loader(
        lambda req: LoginUser(req.headers["X-User"]) if "X-User" in req.headers else None
    )
    seen: dict[str, Any] = {}

    @app.post("/documents/<int:doc_id>")
    def save(doc_id: int) -> str:
        document = db.get_or_404(Document, doc_id)
        seen["loaded_version"] = document.version
        interfere = request.args.get("interfere")
        if interfere == "edit":
            title = f"Bob's title {document.version + 1}"  # a new value every time
            commit_as(db, Document, "bob", "fix the title", doc_id, title=title)
        elif interfere == "delete":
            commit_as(db, Document, "bob", "duplicate", doc_id)
        document.body = request.form["body"]
        db.session.commit()
        return "saved"

    @app.after_request
    def remember_session_state(response: Any) -> Any:
        seen["session_active"] = db.session.is_active
        return response

    with app.app_context():
        db.create_all()
        db.session.add(Document(id=1, title="Draft", body="first body", secret="s3cret"))
        db.session.commit()
    yield SimpleNamespace(app=app, db=db, Document=Document, client=app.test_client(), seen=seen)
    with app.app_context():
        for engine in db.engines.values():
            engine.dispose()


def stored(web: SimpleNamespace) -> tuple[Any, ...]:
    """(title, body, version) of document 1, read on a fresh connection."""
    with web.app.app_context(), web.db.engine.connect() as connection:
        row = connection.execute(sa.text("SELECT title, body, version FROM flask_document"))
        return tuple(row.one())


# --- 409 Conflict ----------------------------------------------------------------------


def test_a_stale_write_answers_409_html_listing_who_changed_what(web):
    response = web.client.post("/documents/1?interfere=edit", data={"body": "mine"})
    assert response.status_code == 409
    assert response.mimetype == "text/html"
    page = response.get_data(as_text=True)
    assert "Document(id=1)" in page
    assert "since you loaded version 0. It is now at version 1." in page
    assert "<td>bob</td>" in page and "<td>title</td>" in page
    assert "Accept" in response.headers["Vary"]
    assert stored(web) == ("Bob's title 1", "first body", 1)


def test_a_stale_write_answers_json_with_exactly_the_errors_attributes(web):
    response = web.client.post("/documents/1?interfere=edit", data={"body": "mine"}, headers=JSON)
    assert response.status_code == 409
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert set(body) == CONFLICT_KEYS
    assert (body["record"], body["expected_version"], body["current_version"]) == (
        "Document(id=1)",
        0,
        1,
    )
    assert body["columns"] == ["title"]
    [change] = body["changes"]
    assert {k: change[k] for k in ("version", "user_id", "columns", "deleted")} == {
        "version": 1,
        "user_id": "bob",
        "columns": ["title"],
        "deleted": False,
    }
    with web.app.app_context():
        history = web.Document.__history_mapper__.class_
        changed = web.db.session.scalars(sa.select(history.changed)).one()
    assert change["changed"] == changed.isoformat()
    assert "bob" in body["message"] and "version 0" in body["message"]
    assert stored(web) == ("Bob's title 1", "first body", 1)


def test_the_conflict_handler_rolls_nothing_back_and_the_next_request_works(web):
    response = web.client.post("/documents/1?interfere=edit", data={"body": "mine"})
    assert response.status_code == 409
    assert web.seen["session_active"] is False  # still the failed transaction: not rolled back
    response = web.client.post("/documents/1", data={"body": "mine, again"})
    assert response.status_code == 200
    assert web.seen["loaded_version"] == 1
    assert stored(web) == ("Bob's title 1", "mine, again", 2)


def test_a_write_to_a_record_deleted_meanwhile_answers_409_html_saying_so(web):
    response = web.client.post("/documents/1?interfere=delete", data={"body": "mine"})
    assert response.status_code == 409
    page = response.get_data(as_text=True)
    assert "since you loaded version 0. It has since been deleted." in page
    assert "<td>bob</td>" in page and "<td>deleted</td>" in page


def test_a_write_to_a_record_deleted_meanwhile_answers_json_without_current_version(web):
    response = web.client.post("/documents/1?interfere=delete", data={"body": "m"}, headers=JSON)
    assert response.status_code == 409
    body = response.get_json()
    assert (body["expected_version"], body["current_version"]) == (0, None)
    assert [(c["user_id"], c["deleted"]) for c in body["changes"]] == [("bob", True)]
    with web.app.app_context(), web.db.engine.connect() as connection:
        assert connection.execute(sa.text("SELECT count(*) FROM flask_document")).scalar() == 0


@pytest.mark.parametrize(
    ("accept", "mimetype"),
    [
        (None, "text/html"),
        ("*/*", "text/html"),
        ("text/html,application/json;q=0.9", "text/html"),
        ("application/json", "application/json"),
        ("text/html;q=0.5,application/json", "application/json"),
    ],
)
def test_the_body_follows_the_clients_preferred_type(web, accept, mimetype):
    headers = {"Accept": accept} if accept else {}
    response = web.client.post("/documents/1?interfere=edit", data={"body": "m"}, headers=headers)
    assert (response.status_code, response.mimetype) == (409, mimetype)


# --- 423 Locked ------------------------------------------------------------------------


def lease_by_alice(web: SimpleNamespace) -> Any:
    with web.app.app_context(), acting_as("alice"):
        lease = web.db.session.get(web.Document, 1).acquire_lease()
        web.db.session.commit()
    return lease


def test_a_write_to_a_leased_record_answers_423_html_with_owner_and_expiry(web):
    lease = lease_by_alice(web)
    response = web.client.post("/documents/1", data={"body": "bob's"}, headers={"X-User": "bob"})
    assert response.status_code == 423
    assert response.mimetype == "text/html"
    page = response.get_data(as_text=True)
    expiry = lease.expires_at.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    assert "Document(id=1) is being edited by alice" in page and f"{expiry} UTC" in page
    assert stored(web) == ("Draft", "first body", 0)


def test_a_write_to_a_leased_record_answers_json_with_owner_and_iso_expiry(web):
    lease = lease_by_alice(web)
    response = web.client.post(
        "/documents/1", data={"body": "bob's"}, headers={"X-User": "bob", **JSON}
    )
    assert response.status_code == 423
    body = response.get_json()
    assert set(body) == LOCKED_KEYS
    assert (body["record"], body["owner"], body["expires_at"]) == (
        "Document(id=1)",
        "alice",
        lease.expires_at.isoformat(),
    )
    assert "alice" in body["message"]
    response = web.client.post(
        "/documents/1", data={"body": "alice's"}, headers={"X-User": "alice"}
    )
    assert response.status_code == 200  # the owner may write
    assert stored(web) == ("Draft", "alice's", 1)


def test_a_write_to_a_record_another_process_locks_answers_423_without_owner(web, clean_database):
    with procs_cli.lock_holder(clean_database, 1):
        html = web.client.post("/documents/1", data={"body": "b"}, headers={"X-User": "bob"})
        response = web.client.post(
            "/documents/1", data={"body": "b"}, headers={"X-User": "bob", **JSON}
        )
    assert html.status_code == 423
    assert "Document(id=1) is locked by another transaction" in html.get_data(as_text=True)
    assert response.status_code == 423
    body = response.get_json()
    assert (body["owner"], body["expires_at"]) == (None, None)
    assert "locked by another transaction" in body["message"]
    assert stored(web) == ("Draft", "first body", 0)


# --- the app's own templates -----------------------------------------------------------


@pytest.fixture
def templates(tmp_path, app):
    """Give the app ``chrononaut/*.html`` templates through a blueprint's template folder."""
    folder = tmp_path / "chrononaut"
    folder.mkdir()
    app.register_blueprint(Blueprint("site", __name__, template_folder=str(tmp_path)))
    return folder


def test_the_apps_conflict_template_is_rendered_with_the_error(web, templates):
    (templates / "conflict.html").write_text(
        "<p>Ours: {{ error.record }} {{ error.expected_version }}->{{ error.current_version }}"
        " by {{ error.changes[0].user_id }} ({{ error.__class__.__name__ }})</p>"
    )
    response = web.client.post("/documents/1?interfere=edit", data={"body": "mine"})
    assert response.status_code == 409
    assert (
        response.get_data(as_text=True)
        == "<p>Ours: Document(id=1) 0->1 by bob (ConflictError)</p>"
    )
    # JSON clients still get JSON.
    response = web.client.post("/documents/1?interfere=edit", data={"body": "m"}, headers=JSON)
    assert set(response.get_json()) == CONFLICT_KEYS


def test_the_apps_locked_template_is_rendered_with_the_error(web, templates):
    (templates / "locked.html").write_text("<p>Held by {{ error.owner }}</p>")
    # Only the template the app has is used: conflicts keep the built-in page.
    response = web.client.post("/documents/1?interfere=edit", data={"body": "m"})
    assert response.status_code == 409 and "<h1>Edit conflict</h1>" in response.get_data(
        as_text=True
    )
    lease_by_alice(web)
    response = web.client.post("/documents/1", data={"body": "b"}, headers={"X-User": "bob"})
    assert (response.status_code, response.get_data(as_text=True)) == (423, "<p>Held by alice</p>")


def test_a_broken_app_template_is_not_hidden_by_the_built_in_page(web, templates):
    (templates / "conflict.html").write_text('{% include "chrononaut/missing.html" %}')
    with pytest.raises(TemplateNotFound) as exc_info:
        web.client.post("/documents/1?interfere=edit", data={"body": "mine"})
    assert exc_info.value.name == "chrononaut/missing.html"


def test_handlers_are_registered_for_the_exception_classes(app):
    register_error_handlers(app)
    handlers = app.error_handler_spec[None][None]
    assert set(handlers) >= {ConflictError, RecordLockedError}
