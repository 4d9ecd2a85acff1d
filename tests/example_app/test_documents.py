"""The list, create, view and delete pages, and the static CSS."""

from __future__ import annotations

import pytest

from example_app.models import TITLE_MAX

from .helpers import edit_document, history, lease_expiry, leases, make_document, row, text

VALID = {"title": "Roadmap", "body": "Q3: ship.", "status": "draft", "reviewer_notes": "ok"}


def test_the_list_shows_version_last_editor_and_lease_state(visitor, app):
    plan = make_document(app, title="Plan")
    notes = make_document(app, by="bob", title="Notes")
    edit_document(app, plan, "bob", body="Second draft.")
    alice = visitor("alice")
    alice.edit(notes)  # alice takes the lease on Notes
    expires = lease_expiry(app)
    page = text(visitor("bob").get("/documents"))
    assert "Plan In review" not in page  # status labels, not values, are shown
    assert "Plan Draft v1 bob," in page
    assert f"Notes Draft v0 bob, {row(app, notes)['changed']:%Y-%m-%d}" in page
    assert f"being edited by alice until {expires:%H:%M} UTC" in page
    assert page.count("free") == 1


def test_the_list_marks_the_users_own_lease(visitor, app):
    doc_id = make_document(app)
    alice = visitor("alice")
    alice.edit(doc_id)
    assert "being edited by alice (you) until" in text(alice.get("/documents"))


def test_the_list_invites_to_write_the_first_document(visitor):
    assert "No documents yet." in text(visitor("alice").get("/documents"))


def test_the_new_page_shows_an_empty_form(visitor):
    response = visitor("alice").get("/documents/new")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert 'name="title" value=""' in page and 'name="csrf_token"' in page


def test_creating_a_document_writes_version_0_by_the_user(visitor, app):
    bob = visitor("bob")
    response = bob.post("/documents/new", VALID)
    assert response.status_code == 302
    doc_id = int(response.location.rsplit("/", 1)[1])
    stored = row(app, doc_id)
    assert (stored["title"], stored["version"], stored["created_by"]) == ("Roadmap", 0, "bob")
    assert stored["change_info"]["user_id"] == "bob"
    assert "Created “Roadmap”." in text(bob.get(response.location))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"title": "   "}, "A title is required."),
        ({"title": "x" * (TITLE_MAX + 1)}, f"Keep the title to {TITLE_MAX} characters"),
        ({"status": "secret"}, "Choose one of: Draft, In review, Published, Archived."),
    ],
    ids=["empty-title", "long-title", "unknown-status"],
)
def test_an_invalid_new_document_is_redisplayed_with_400_and_not_written(
    visitor, app, change, message
):
    response = visitor("alice").post("/documents/new", {**VALID, **change})
    assert response.status_code == 400
    page = text(response)
    assert message in page and "nothing was saved" in page
    assert 'name="body" rows="10">\nQ3: ship.</textarea>' in response.get_data(as_text=True)
    assert row(app, 1) is None


def test_viewing_counts_views_without_writing_versions(visitor, app):
    doc_id = make_document(app, body="Hello\nworld", reviewer_notes="Looks fine")
    alice = visitor("alice")
    for _ in range(3):
        response = alice.get(f"/documents/{doc_id}")
    assert response.status_code == 200
    page = text(response)
    assert "viewed 3 times" in page and "Looks fine" in page and "Version 0" in page
    stored = row(app, doc_id)
    assert (stored["view_count"], stored["version"]) == (3, 0)
    assert history(app, doc_id) == []


def test_viewing_a_document_someone_else_is_editing_counts_and_shows_the_lease(visitor, app):
    doc_id = make_document(app)
    visitor("alice").edit(doc_id)
    response = visitor("bob").get(f"/documents/{doc_id}")
    assert response.status_code == 200
    assert "being edited by alice until" in text(response)
    assert (row(app, doc_id)["view_count"], row(app, doc_id)["version"]) == (1, 0)


@pytest.mark.parametrize(
    "url",
    [
        "/documents/999",
        "/documents/999/edit",
        "/documents/999/history",
        "/documents/999/delete",
    ],
)
def test_an_unknown_document_is_404(visitor, url):
    response = visitor("alice").get(url)
    assert response.status_code == 404
    assert "There is no document 999." in text(response)


@pytest.mark.parametrize(
    "url", ["/documents/999/edit", "/documents/999/take-over", "/documents/999/delete"]
)
def test_posting_to_an_unknown_document_is_404(visitor, url):
    response = visitor("alice").post(url, {**VALID, "version": "0"})
    assert response.status_code == 404


def test_the_delete_page_asks_first(visitor, app):
    doc_id = make_document(app)
    response = visitor("alice").get(f"/documents/{doc_id}/delete")
    assert response.status_code == 200
    assert "Delete “Plan”?" in text(response)
    assert row(app, doc_id) is not None


def test_deleting_keeps_the_last_state_in_history_with_the_reason(visitor, app):
    doc_id = make_document(app)
    bob = visitor("bob")
    response = bob.post(f"/documents/{doc_id}/delete", {"version": "0", "rationale": "Dupe"})
    assert (response.status_code, response.location) == (302, "/documents")
    assert "Deleted “Plan”; its history is kept." in text(bob.get("/documents"))
    assert row(app, doc_id) is None
    [last] = history(app, doc_id)
    assert last["title"] == "Plan"
    assert last["change_info"]["deleted"] is True
    assert last["change_info"]["user_id"] == "bob"
    assert last["change_info"]["extra"] == {"rationale": "Dupe"}
    assert bob.get(f"/documents/{doc_id}").status_code == 404


def test_deleting_a_changed_document_is_a_409_conflict(visitor, app):
    doc_id = make_document(app)
    edit_document(app, doc_id, "alice", title="Plan B")
    response = visitor("bob").post(f"/documents/{doc_id}/delete", {"version": "0"})
    assert response.status_code == 409
    assert "version 1 by alice" in text(response)
    assert row(app, doc_id)["title"] == "Plan B"


def test_deleting_a_document_someone_else_is_editing_is_423(visitor, app):
    doc_id = make_document(app)
    visitor("alice").edit(doc_id)
    response = visitor("bob").post(f"/documents/{doc_id}/delete", {"version": "0"})
    assert response.status_code == 423
    assert "is being edited by alice; their edit lease ends at" in text(response)
    assert row(app, doc_id) is not None
    assert leases(app) == ["alice"]


def test_deleting_with_a_bad_version_is_400(visitor, app):
    doc_id = make_document(app)
    response = visitor("alice").post(f"/documents/{doc_id}/delete", {"version": "latest"})
    assert response.status_code == 400
    assert row(app, doc_id) is not None


def test_the_css_is_served_by_the_app_and_the_pages_use_no_network(visitor):
    alice = visitor("alice")
    with alice.get("/static/style.css") as css:
        assert css.status_code == 200 and "@media (max-width" in css.get_data(as_text=True)
    page = alice.get("/documents/new").get_data(as_text=True)
    assert 'href="/static/style.css"' in page
    assert "http://" not in page and "https://" not in page
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in page
