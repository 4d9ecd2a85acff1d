"""Helpers for the example app's tests: a CSRF-aware client and database reads."""

from __future__ import annotations

import html
import re
from typing import Any

import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from chrononaut import acting_as, rationale
from example_app.auth import DEMO_USERS
from example_app.models import Document, db

TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


class Browser:
    """A test client with its own cookies, adding the CSRF token to every POST."""

    def __init__(self, client: FlaskClient) -> None:
        self.client = client
        self._token: str | None = None

    def token(self) -> str:
        """The session's CSRF token, read from a rendered form as a browser would."""
        if self._token is None:
            for page in ("/documents/new", "/login"):
                found = TOKEN.search(self.client.get(page).get_data(as_text=True))
                if found:
                    self._token = found.group(1)
                    break
        assert self._token is not None
        return self._token

    def get(self, url: str, **kwargs: Any) -> TestResponse:
        return self.client.get(url, **kwargs)

    def post(self, url: str, data: dict[str, Any] | None = None, **kwargs: Any) -> TestResponse:
        data = {"csrf_token": self.token(), **(data or {})}
        return self.client.post(url, data=data, **kwargs)

    def edit(self, doc_id: int) -> TestResponse:
        """Press the view page's Edit button (a POST taking the lease), land on the edit page."""
        self.post(f"/documents/{doc_id}/lease")
        return self.get(f"/documents/{doc_id}/edit")

    def login(self, username: str) -> Browser:
        response = self.post("/login", {"username": username, "password": DEMO_USERS[username]})
        assert response.status_code == 302, response.get_data(as_text=True)
        self._token = None  # logging in starts a new session with a new CSRF token
        return self


def make_document(app: Flask, by: str = "alice", **values: Any) -> int:
    """Insert a document as ``by`` (outside any request) and return its id."""
    fields = {"title": "Plan", "body": "First draft.", "status": "draft", "reviewer_notes": ""}
    fields.update(values)
    with app.app_context(), acting_as(by):
        document = Document(created_by=by, **fields)
        db.session.add(document)
        db.session.commit()
        doc_id = document.id
        db.session.remove()
    return doc_id


def edit_document(app: Flask, doc_id: int, by: str, reason: str | None = None, **values: Any):
    """Change a document as ``by`` outside any request (another user's save)."""
    with app.app_context(), acting_as(by):
        document = db.session.get(Document, doc_id)
        for key, value in values.items():
            setattr(document, key, value)
        if reason:
            with rationale(reason):
                db.session.commit()
        else:
            db.session.commit()
        db.session.remove()


def row(app: Flask, doc_id: int) -> dict[str, Any] | None:
    """The document's stored columns, read on a fresh connection."""
    with app.app_context(), db.engine.connect() as connection:
        found = connection.execute(
            sa.select(Document.__table__).where(Document.__table__.c.id == doc_id)
        ).first()
    return dict(found._mapping) if found is not None else None


def history(app: Flask, doc_id: int) -> list[dict[str, Any]]:
    """The document's history rows, oldest first."""
    table = Document.__history_mapper__.local_table
    with app.app_context(), db.engine.connect() as connection:
        rows = connection.execute(
            sa.select(table).where(table.c.id == doc_id).order_by(table.c.version)
        ).all()
    return [dict(r._mapping) for r in rows]


def leases(app: Flask) -> list[str]:
    """The owners of the unexpired leases, in record order."""
    with app.app_context(), db.engine.connect() as connection:
        rows = connection.execute(
            sa.text(
                "SELECT owner FROM chrononaut_leases WHERE expires_at > now() ORDER BY record_key"
            )
        ).all()
    return [owner for (owner,) in rows]


def lease_expiry(app: Flask) -> Any:
    """The expiry of the only lease."""
    with app.app_context(), db.engine.connect() as connection:
        return connection.execute(sa.text("SELECT expires_at FROM chrononaut_leases")).scalar_one()


def text(response: TestResponse) -> str:
    """The page's visible text, whitespace collapsed."""
    page = re.sub(r"<[^>]+>", " ", response.get_data(as_text=True))
    return re.sub(r"\s+", " ", html.unescape(page)).strip()
