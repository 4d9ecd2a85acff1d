"""Every POST needs the session's CSRF token: missing or wrong -> 400, nothing written."""

from __future__ import annotations

import pytest

from .helpers import history, leases, make_document, row, text

FORM = {"title": "Forged", "body": "", "status": "draft", "reviewer_notes": "", "version": "0"}
POSTS = [
    "/documents/new",
    "/documents/{id}/edit",
    "/documents/{id}/take-over",
    "/documents/{id}/cancel",
    "/documents/{id}/delete",
    "/logout",
]


@pytest.mark.parametrize("url", POSTS)
@pytest.mark.parametrize("token", [None, "wrong"], ids=["missing", "wrong"])
def test_a_post_without_the_right_token_is_refused_and_writes_nothing(visitor, app, url, token):
    doc_id = make_document(app)
    alice = visitor("alice")
    form = dict(FORM) if token is None else {**FORM, "csrf_token": token}
    response = alice.client.post(url.format(id=doc_id), data=form)
    assert response.status_code == 400
    assert "CSRF token is missing or wrong" in text(response)
    assert row(app, doc_id)["title"] == "Plan"
    assert row(app, doc_id)["version"] == 0
    assert history(app, doc_id) == []
    assert leases(app) == []
    assert alice.get("/documents").status_code == 200  # still logged in


def test_a_login_without_the_token_is_refused(visitor):
    anonymous = visitor()
    response = anonymous.client.post(
        "/login", data={"username": "alice", "password": "wonderland"}
    )
    assert response.status_code == 400
    assert anonymous.get("/documents").status_code == 302


def test_another_sessions_token_is_refused(visitor, app):
    doc_id = make_document(app)
    alice, bob = visitor("alice"), visitor("bob")
    response = bob.client.post(
        f"/documents/{doc_id}/delete", data={"version": "0", "csrf_token": alice.token()}
    )
    assert response.status_code == 400
    assert row(app, doc_id) is not None


def test_the_token_on_the_page_is_accepted(visitor, app):
    alice = visitor("alice")
    response = alice.post("/documents/new", {k: v for k, v in FORM.items() if k != "version"})
    assert response.status_code == 302
    assert text(alice.get(response.location)).startswith("Forged")
