"""Security of the example app: redirects, request sizes, side-effect-free GETs, headers,
sessions, login throttling, input validation and the lease-break audit."""

from __future__ import annotations

import time

import pytest
import sqlalchemy as sa

from example_app.auth import FREE_FAILURES
from example_app.models import LeaseBreak, db

from .helpers import TOKEN, history, leases, make_document, row, text

ORIGINAL = {"title": "Plan", "body": "First draft.", "status": "draft", "reviewer_notes": ""}


def form(version: int, **changes: str) -> dict[str, str]:
    return {**ORIGINAL, "version": str(version), **changes}


# --- open redirect ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "target",
    [
        "/%09/evil.example/",
        "/%0a/evil.example/",
        "/%0d/evil.example/",
        "//evil.example/",
        "/\\evil.example/",
        "/%5Cevil.example/",
        "\\\\evil.example/",
        "https://evil.example/",
        "http:/evil.example/",
        "javascript:alert(1)",
        "evil.example",
        "/%20/evil.example/",
        "/%E3%80%80/evil.example/",
    ],
)
def test_login_never_redirects_off_site(visitor, target):
    client = visitor()
    response = client.post(
        f"/login?next={target}", {"username": "alice", "password": "wonderland"}
    )
    assert (response.status_code, response.location) == (302, "/documents")


def test_login_follows_a_same_site_next(visitor, app):
    doc_id = make_document(app)
    response = visitor().post(
        f"/login?next=/documents/{doc_id}/history%3Fbefore%3D3",
        {"username": "alice", "password": "wonderland"},
    )
    assert response.location == f"/documents/{doc_id}/history?before=3"


# --- request size ----------------------------------------------------------------------


def test_a_form_over_one_megabyte_is_refused_before_it_is_parsed(visitor):
    client = visitor()
    big = "x" * (2 * 1024 * 1024)
    response = client.post("/login", {"username": "alice", "password": big})
    assert response.status_code == 413
    assert "413 Request Entity Too Large" in text(response)


def test_a_full_size_document_form_still_fits(visitor, app):
    doc_id = make_document(app)
    alice = visitor("alice")
    body = "é" * 20_000  # 40,000 bytes of UTF-8, several times over when percent-encoded
    response = alice.post(f"/documents/{doc_id}/edit", form(0, body=body))
    assert response.status_code == 302
    assert row(app, doc_id)["body"] == body


# --- GET has no side effects -----------------------------------------------------------


def test_the_edit_page_takes_no_lease_the_edit_button_does(visitor, app):
    doc_id = make_document(app)
    alice = visitor("alice")
    page = alice.get(f"/documents/{doc_id}/edit")
    assert page.status_code == 200
    assert leases(app) == []
    assert "Nobody holds the edit lease" in text(page)
    view = alice.get(f"/documents/{doc_id}").get_data(as_text=True)
    assert f'action="/documents/{doc_id}/lease"' in view  # the Edit button is a form
    response = alice.post(f"/documents/{doc_id}/lease")
    assert (response.status_code, response.location) == (302, f"/documents/{doc_id}/edit")
    assert leases(app) == ["alice"]


def test_taking_a_lease_by_get_is_not_possible(visitor, app):
    doc_id = make_document(app)
    assert visitor("alice").get(f"/documents/{doc_id}/lease").status_code == 405
    assert leases(app) == []


def test_the_lease_post_needs_the_csrf_token(visitor, app):
    doc_id = make_document(app)
    alice = visitor("alice")
    response = alice.client.post(f"/documents/{doc_id}/lease", data={})
    assert response.status_code == 400
    assert leases(app) == []


# --- headers and sessions --------------------------------------------------------------


@pytest.mark.parametrize("path", ["/login", "/documents", "/documents/999"])
def test_every_page_refuses_to_be_framed(visitor, path):
    response = visitor("alice").get(path)
    assert response.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]


def test_logging_in_and_out_starts_a_new_session_with_a_new_csrf_token(visitor):
    client = visitor()
    before = TOKEN.search(client.get("/login").get_data(as_text=True)).group(1)
    with client.client.session_transaction() as session:
        session["planted"] = "by someone else"
    client.login("alice")
    after_login = client.token()
    assert after_login != before
    with client.client.session_transaction() as session:
        assert "planted" not in session
    client.post("/logout")
    with client.client.session_transaction() as session:
        assert "_user_id" not in session and session.get("csrf_token") != after_login
    stale = client.client.post("/documents/new", data={"csrf_token": after_login})
    assert stale.status_code in (302, 400, 401)
    assert client.get("/documents").status_code == 302  # logged out


def median_login_time(client, username: str) -> float:
    times = []
    for _ in range(3):
        started = time.perf_counter()
        client.post("/login", {"username": username, "password": "wrong"})
        times.append(time.perf_counter() - started)
    return sorted(times)[1]


def test_an_unknown_user_takes_as_long_as_a_wrong_password(visitor):
    client = visitor()
    known = median_login_time(client, "alice")
    unknown = median_login_time(client, "nobody-by-that-name")
    assert unknown > known * 0.5, (known, unknown)


def test_repeated_wrong_passwords_slow_down_that_user_from_that_address(visitor):
    client = visitor()
    for _ in range(FREE_FAILURES):
        response = client.post("/login", {"username": "alice", "password": "wrong"})
        assert response.status_code == 401
    blocked = client.post("/login", {"username": "alice", "password": "wonderland"})
    assert blocked.status_code == 429
    assert "Too many wrong passwords for alice" in text(blocked)
    # bob, and alice from another address, are not slowed down
    assert client.post("/login", {"username": "bob", "password": "builder"}).status_code == 302
    other = visitor()
    response = other.client.post(
        "/login",
        data={"csrf_token": other.token(), "username": "alice", "password": "wonderland"},
        environ_base={"REMOTE_ADDR": "10.1.2.3"},
    )
    assert response.status_code == 302


# --- input validation ------------------------------------------------------------------


@pytest.mark.parametrize("version", ["²", "٣", "1.0", "-1", " 1", "1" * 30, ""])
def test_take_over_with_a_malformed_version_is_400_and_takes_nothing(visitor, app, version):
    doc_id = make_document(app)
    visitor("alice").edit(doc_id)
    response = visitor("bob").post(f"/documents/{doc_id}/take-over", {"version": version})
    assert response.status_code == 400
    assert leases(app) == ["alice"]
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(LeaseBreak)) == 0


@pytest.mark.parametrize(
    "changes, field",
    [
        ({"version": "²"}, "version"),
        ({"title": "Plan\x00"}, "title"),
        ({"title": "Plan\nB"}, "title"),
        ({"body": "a\x00b"}, "body"),
        ({"reviewer_notes": "a\x00b"}, "reviewer_notes"),
        ({"rationale": "why\x00"}, "rationale"),
        ({"rationale": "why\nnot"}, "rationale"),
    ],
)
def test_bad_characters_in_a_save_are_400_with_the_form_shown_again(visitor, app, changes, field):
    doc_id = make_document(app)
    alice = visitor("alice")
    alice.edit(doc_id)
    response = alice.post(f"/documents/{doc_id}/edit", {**form(0), **changes})
    assert response.status_code == 400
    assert f'id="{field}-error"' in response.get_data(as_text=True)
    assert row(app, doc_id)["version"] == 0 and history(app, doc_id) == []


@pytest.mark.parametrize("data", [{"title": "New\x00"}, {"title": "a\nb"}, {"body": "\x00"}])
def test_bad_characters_in_a_new_document_are_400(visitor, app, data):
    response = visitor("alice").post("/documents/new", {"title": "T", "status": "draft", **data})
    assert response.status_code == 400
    with app.app_context():
        assert db.session.scalar(sa.text("SELECT count(*) FROM document")) == 0


@pytest.mark.parametrize(
    "data",
    [
        {"username": "alice\x00", "password": "wonderland"},
        {"username": "alice\n", "password": "x"},
        {"username": "alice", "password": "wonder\x00land"},
        {"username": "a" * 500, "password": "x"},
    ],
)
def test_bad_characters_in_a_login_are_400(visitor, data):
    response = visitor().post("/login", data)
    assert response.status_code == 400
    assert "Unknown user or wrong password." in text(response)


@pytest.mark.parametrize("field", ["target", "version"])
def test_reverting_with_a_superscript_number_is_400_and_writes_nothing(visitor, app, field):
    doc_id = make_document(app)
    alice = visitor("alice")
    alice.post(f"/documents/{doc_id}/edit", form(0, title="Plan B"))
    response = alice.post(
        f"/documents/{doc_id}/revert", {"target": "0", "version": "1", field: "²"}
    )
    assert response.status_code == 400
    assert row(app, doc_id)["version"] == 1


@pytest.mark.parametrize("version", ["²", "x", "-1"])
def test_deleting_with_a_malformed_version_is_400(visitor, app, version):
    doc_id = make_document(app)
    response = visitor("alice").post(f"/documents/{doc_id}/delete", {"version": version})
    assert response.status_code == 400
    assert row(app, doc_id) is not None


def test_a_reason_with_a_nul_is_400_when_deleting(visitor, app):
    doc_id = make_document(app)
    response = visitor("alice").post(
        f"/documents/{doc_id}/delete", {"version": "0", "rationale": "no\x00"}
    )
    assert response.status_code == 400
    assert row(app, doc_id) is not None


@pytest.mark.parametrize(
    "path",
    [
        "/documents/99999999999999999999",
        "/documents/99999999999999999999/history",
        "/documents/²/edit",
    ],
)
def test_out_of_range_ids_are_404(visitor, path):
    assert visitor("alice").get(path).status_code == 404


# --- the lease-break audit -------------------------------------------------------------


def lease_breaks(app, doc_id):
    with app.app_context():
        rows = db.session.scalars(
            sa.select(LeaseBreak).where(LeaseBreak.document_id == doc_id).order_by(LeaseBreak.id)
        ).all()
        found = [(b.owner, b.taken_by, b.open, b.version) for b in rows]
        db.session.remove()
    return found


def test_take_over_then_cancel_is_recorded_server_side(visitor, app):
    doc_id = make_document(app)
    visitor("alice").edit(doc_id)
    bob = visitor("bob")
    bob.post(f"/documents/{doc_id}/take-over", {"version": "0"})
    assert lease_breaks(app, doc_id) == [("alice", "bob", True, None)]
    bob.post(f"/documents/{doc_id}/cancel")
    assert lease_breaks(app, doc_id) == [("alice", "bob", False, None)]
    page = text(visitor("alice").get(f"/documents/{doc_id}/history"))
    assert "Edit lease take-overs that saved nothing" in page
    assert "bob took over the edit lease from alice on" in page


def test_the_break_reaches_the_version_even_with_an_older_session_cookie(visitor, app):
    doc_id = make_document(app)
    visitor("alice").edit(doc_id)
    bob = visitor("bob")
    bob.token()
    with bob.client.session_transaction() as session:
        old_cookie = dict(session)  # bob's session before the take-over
    bob.post(f"/documents/{doc_id}/take-over", {"version": "0"})
    with bob.client.session_transaction() as session:
        session.clear()
        session.update(old_cookie)  # replay the older cookie
    response = bob.post(f"/documents/{doc_id}/edit", form(0, title="Bob's plan"))
    assert response.status_code == 302
    info = history(app, doc_id)[0]["change_info"]
    assert info["extra"]["lease_broken"]["owner"] == "alice"
    assert info["extra"]["lease_broken"]["by"] == "bob"
    assert lease_breaks(app, doc_id) == [("alice", "bob", False, 1)]


def test_the_break_does_not_land_on_a_later_version_after_saving_nothing(visitor, app):
    doc_id = make_document(app)
    visitor("alice").edit(doc_id)
    bob = visitor("bob")
    bob.post(f"/documents/{doc_id}/take-over", {"version": "0"})
    assert bob.post(f"/documents/{doc_id}/edit", form(0)).status_code == 302  # no changes
    bob.edit(doc_id)
    bob.post(f"/documents/{doc_id}/edit", form(0, title="Later"))
    info = history(app, doc_id)[0]["change_info"]
    assert "lease_broken" not in (info.get("extra") or {})
    assert "lease_broken" not in info
    assert lease_breaks(app, doc_id) == [("alice", "bob", False, None)]
