"""Logging in and out, and every document page requiring a login."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from example_app.auth import DEMO_USERS
from example_app.models import User, db

from .helpers import make_document, text

PROTECTED = [
    ("GET", "/documents"),
    ("GET", "/documents/new"),
    ("POST", "/documents/new"),
    ("GET", "/documents/{id}"),
    ("GET", "/documents/{id}/edit"),
    ("POST", "/documents/{id}/edit"),
    ("POST", "/documents/{id}/lease"),
    ("POST", "/documents/{id}/take-over"),
    ("POST", "/documents/{id}/cancel"),
    ("GET", "/documents/{id}/delete"),
    ("POST", "/documents/{id}/delete"),
    ("GET", "/documents/{id}/history"),
    ("GET", "/documents/{id}/versions/0/body"),
    ("POST", "/logout"),
]


def test_the_login_page_shows_the_demo_users_and_their_passwords(visitor):
    response = visitor().get("/login")
    assert response.status_code == 200
    page = text(response)
    for username, password in DEMO_USERS.items():
        assert username in page and password in page
    assert 'name="viewport"' in response.get_data(as_text=True)


def test_passwords_are_stored_hashed(app):
    with app.app_context():
        stored = dict(db.session.execute(sa.select(User.username, User.password_hash)).all())
        db.session.remove()
    assert set(stored) == {"alice", "bob"}
    for username, password in DEMO_USERS.items():
        assert password not in stored[username]
        assert stored[username].startswith(("scrypt:", "pbkdf2:"))


def test_logging_in_leads_to_the_list_with_the_users_name(visitor):
    alice = visitor()
    response = alice.post("/login", {"username": "alice", "password": "wonderland"})
    assert (response.status_code, response.location) == (302, "/documents")
    page = text(alice.get("/documents"))
    assert "Logged in as alice." in page and "Log out" in page


def test_a_wrong_password_is_refused_with_401_and_no_login(visitor):
    bob = visitor()
    response = bob.post("/login", {"username": "bob", "password": "wonderland"})
    assert response.status_code == 401
    assert "Unknown user or wrong password." in text(response)
    assert bob.get("/documents").status_code == 302


def test_an_unknown_user_is_refused_with_401(visitor):
    response = visitor().post("/login", {"username": "mallory", "password": "x"})
    assert response.status_code == 401
    assert "Unknown user or wrong password." in text(response)


def test_login_returns_to_a_local_next_page_only(visitor, app):
    doc_id = make_document(app)
    alice = visitor()
    response = alice.post(
        f"/login?next=/documents/{doc_id}", {"username": "alice", "password": "wonderland"}
    )
    assert response.location == f"/documents/{doc_id}"
    bob = visitor()
    response = bob.post("/login?next=//evil.example/", {"username": "bob", "password": "builder"})
    assert response.location == "/documents"


def test_the_login_page_redirects_a_logged_in_user(visitor):
    response = visitor("alice").get("/login")
    assert (response.status_code, response.location) == (302, "/documents")


def test_logout_ends_the_session(visitor):
    alice = visitor("alice")
    response = alice.post("/logout")
    assert (response.status_code, response.location) == (302, "/login")
    response = alice.get("/documents")
    assert response.status_code == 302 and response.location.startswith("/login")


def test_logout_by_get_is_not_allowed(visitor):
    response = visitor("alice").get("/logout")
    assert response.status_code == 405
    assert "405 Method Not Allowed" in text(response)


def test_the_front_page_redirects_to_the_list(visitor):
    response = visitor("alice").get("/")
    assert (response.status_code, response.location) == (302, "/documents")


@pytest.mark.parametrize(("method", "url"), PROTECTED)
def test_document_pages_require_a_login(visitor, app, method, url):
    doc_id = make_document(app)
    anonymous = visitor()
    path = url.format(id=doc_id)
    response = anonymous.get(path) if method == "GET" else anonymous.post(path, {"version": "0"})
    assert response.status_code == 302
    assert response.location.startswith("/login?next=")
    assert text(anonymous.get(response.location)).count("Log in to see the documents.") == 1
