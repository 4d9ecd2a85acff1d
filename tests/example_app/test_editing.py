"""The edit page: leases, take-over, saving, merging stale forms, conflicts and locks."""

from __future__ import annotations

import re

import pytest

from .helpers import edit_document, history, lease_expiry, leases, make_document, row, text

ORIGINAL = {"title": "Plan", "body": "First draft.", "status": "draft", "reviewer_notes": ""}


def form(version: int, **changes: str) -> dict[str, str]:
    """The edit form as rendered from the original document at ``version``, then changed."""
    return {**ORIGINAL, "version": str(version), **changes}


def test_opening_the_edit_page_takes_a_committed_lease(visitor, app):
    doc_id = make_document(app)
    response = visitor("alice").edit(doc_id)
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert 'name="version" value="0"' in page and "disabled" not in page
    assert f"You hold the edit lease until {lease_expiry(app):%H:%M} UTC" in text(response)
    assert leases(app) == ["alice"]


def test_opening_it_again_renews_the_same_lease(visitor, app):
    doc_id = make_document(app)
    alice = visitor("alice")
    alice.edit(doc_id)
    first = lease_expiry(app)
    alice.edit(doc_id)
    assert leases(app) == ["alice"] and lease_expiry(app) > first


def test_another_user_sees_a_read_only_form_with_a_take_over_button(visitor, app):
    doc_id = make_document(app)
    visitor("alice").edit(doc_id)
    response = visitor("bob").edit(doc_id)
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert f"being edited by alice until {lease_expiry(app):%H:%M} UTC" in text(response)
    for field in ('id="title"', 'id="status"', 'id="body"', 'id="reviewer_notes"'):
        assert re.search(field + r"[^>]*disabled", page), field
    assert f'action="/documents/{doc_id}/take-over"' in page
    assert ">Take over</button>" in page and ">Save</button>" not in page
    assert leases(app) == ["alice"]


def test_saving_writes_a_version_with_the_rationale_and_releases_the_lease(visitor, app):
    doc_id = make_document(app)
    alice = visitor("alice")
    alice.edit(doc_id)
    response = alice.post(
        f"/documents/{doc_id}/edit",
        form(0, title="Plan A", reviewer_notes="Check numbers", rationale="Clearer title"),
    )
    assert (response.status_code, response.location) == (302, f"/documents/{doc_id}")
    assert "Saved version 1." in text(alice.get(response.location))
    stored = row(app, doc_id)
    assert (stored["title"], stored["reviewer_notes"], stored["version"]) == (
        "Plan A",
        "Check numbers",
        1,
    )
    [before] = history(app, doc_id)
    assert before["title"] == "Plan"
    info = before["change_info"]
    assert (info["user_id"], info["extra"]) == ("alice", {"rationale": "Clearer title"})
    assert info["hidden_cols_changed"] == ["reviewer_notes"]
    assert leases(app) == []


def test_saving_without_changes_writes_nothing_and_releases_the_lease(visitor, app):
    doc_id = make_document(app)
    alice = visitor("alice")
    alice.edit(doc_id)
    response = alice.post(f"/documents/{doc_id}/edit", form(0))
    assert response.status_code == 302
    assert "Nothing changed" in text(alice.get(response.location))
    assert row(app, doc_id)["version"] == 0 and history(app, doc_id) == []
    assert leases(app) == []


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"title": ""}, "A title is required."),
        ({"title": "t" * 121}, "Keep the title to 120 characters (it has 121)."),
        ({"status": "deleted"}, "Choose one of: Draft, In review, Published, Archived."),
        ({"version": ""}, "The form lost the version it was based on"),
    ],
    ids=["empty-title", "long-title", "unknown-status", "no-version"],
)
def test_an_invalid_edit_is_redisplayed_with_400_and_nothing_written(
    visitor, app, change, message
):
    doc_id = make_document(app)
    alice = visitor("alice")
    alice.edit(doc_id)
    response = alice.post(f"/documents/{doc_id}/edit", {**form(0, body="Edited body"), **change})
    assert response.status_code == 400
    assert message in text(response) and "nothing was saved" in text(response)
    page = response.get_data(as_text=True)
    assert ">\nEdited body</textarea>" in page  # the user's input is kept
    assert row(app, doc_id)["body"] == "First draft." and row(app, doc_id)["version"] == 0
    assert history(app, doc_id) == []
    assert leases(app) == ["alice"]  # still editing


def test_a_version_the_document_never_had_is_400(visitor, app):
    doc_id = make_document(app)
    response = visitor("alice").post(f"/documents/{doc_id}/edit", form(7, title="Seven"))
    assert response.status_code == 400
    assert "has no version 7" in text(response)
    assert row(app, doc_id)["title"] == "Plan"


def test_a_stale_edit_of_other_fields_is_merged_and_saved(visitor, app):
    doc_id = make_document(app)
    edit_document(app, doc_id, "alice", body="Alice's body.")
    bob = visitor("bob")
    response = bob.post(
        f"/documents/{doc_id}/edit", form(0, title="Bob's title", rationale="Tidy")
    )
    assert response.status_code == 302
    assert (
        "Saved version 2: your changes were merged with the changes others made since version 0."
        in text(bob.get(response.location))
    )
    stored = row(app, doc_id)
    assert (stored["title"], stored["body"], stored["version"]) == (
        "Bob's title",
        "Alice's body.",
        2,
    )
    assert history(app, doc_id)[1]["change_info"]["user_id"] == "bob"
    assert history(app, doc_id)[1]["change_info"]["extra"] == {"rationale": "Tidy"}


def test_a_stale_edit_of_a_field_someone_changed_is_a_409_showing_their_change(visitor, app):
    doc_id = make_document(app)
    bob = visitor("bob")
    bob.edit(doc_id)  # bob starts editing version 0
    alice = visitor("alice")
    alice.post(f"/documents/{doc_id}/take-over", {"version": "0"})
    alice.post(f"/documents/{doc_id}/edit", form(0, title="Alice's title"))
    response = bob.post(f"/documents/{doc_id}/edit", form(0, title="Bob's title", body="B"))
    assert response.status_code == 409
    page = text(response)
    assert "Your page showed version 0 of “Alice's title”; it is now at version 1." in page
    assert "version 1 by alice" in page and "changed Title" in page
    assert "Your edits to those fields Copy what you want to keep" in page
    assert "Bob's title" in page
    assert f'href="/documents/{doc_id}/edit"' in response.get_data(as_text=True)
    stored = row(app, doc_id)
    assert (stored["title"], stored["body"], stored["version"]) == (
        "Alice's title",
        "First draft.",
        1,
    )


def test_a_stale_conflict_is_json_for_a_json_client(visitor, app):
    doc_id = make_document(app)
    edit_document(app, doc_id, "alice", title="Alice's title")
    response = visitor("bob").post(
        f"/documents/{doc_id}/edit",
        form(0, title="Bob's title"),
        headers={"Accept": "application/json"},
    )
    assert response.status_code == 409
    body = response.get_json()
    assert (body["expected_version"], body["current_version"], body["columns"]) == (
        0,
        1,
        ["title"],
    )
    assert [(c["user_id"], c["columns"]) for c in body["changes"]] == [("alice", ["title"])]


def test_a_stale_edit_of_the_hidden_column_someone_changed_is_a_conflict(visitor, app):
    """History keeps no old values of hidden columns, so the merge errs on the safe side."""
    doc_id = make_document(app)
    edit_document(app, doc_id, "alice", reviewer_notes="Alice's note")
    response = visitor("bob").post(
        f"/documents/{doc_id}/edit", form(0, reviewer_notes="Bob's note")
    )
    assert response.status_code == 409
    assert "changed Reviewer notes" in text(response)
    assert row(app, doc_id)["reviewer_notes"] == "Alice's note"


def test_a_stale_edit_of_the_hidden_column_nobody_changed_is_merged(visitor, app):
    doc_id = make_document(app, reviewer_notes="Old note")
    edit_document(app, doc_id, "alice", title="Alice's title")
    response = visitor("bob").post(
        f"/documents/{doc_id}/edit", form(0, reviewer_notes="Bob's note")
    )
    assert response.status_code == 302
    stored = row(app, doc_id)
    assert (stored["title"], stored["reviewer_notes"], stored["version"]) == (
        "Alice's title",
        "Bob's note",
        2,
    )


def test_saving_a_document_someone_else_is_editing_is_423(visitor, app):
    doc_id = make_document(app)
    visitor("alice").edit(doc_id)
    response = visitor("bob").post(f"/documents/{doc_id}/edit", form(0, title="Bob's title"))
    assert response.status_code == 423
    page = text(response)
    assert (
        f"“Plan” is being edited by alice; their edit lease ends at {lease_expiry(app):%H:%M} UTC"
        in page
    )
    assert "save again: your form is merged with their changes" in page
    assert "Nothing of yours was saved." in page and "Bob's title" in page
    assert (row(app, doc_id)["title"], row(app, doc_id)["version"]) == ("Plan", 0)
    assert history(app, doc_id) == [] and leases(app) == ["alice"]


def test_take_over_moves_the_lease_and_the_break_is_recorded_in_history(visitor, app):
    doc_id = make_document(app)
    alice, bob = visitor("alice"), visitor("bob")
    alice.edit(doc_id)
    bob.edit(doc_id)
    expires = lease_expiry(app)
    response = bob.post(f"/documents/{doc_id}/take-over", {"version": "0"})
    assert (response.status_code, response.location) == (302, f"/documents/{doc_id}/edit")
    assert leases(app) == ["bob"]
    page = bob.get(response.location)
    assert "You took over the edit lease from alice." in text(page)
    assert ">Save</button>" in page.get_data(as_text=True)
    # alice's save is now refused: bob holds the lease
    refused = alice.post(f"/documents/{doc_id}/edit", form(0, body="Alice's body"))
    assert refused.status_code == 423 and "being edited by bob" in text(refused)
    assert bob.post(f"/documents/{doc_id}/edit", form(0, title="Bob's")).status_code == 302
    info = history(app, doc_id)[0]["change_info"]
    assert info["user_id"] == "bob"
    broken = info["extra"]["lease_broken"]
    assert (broken["owner"], broken["by"], broken["expires_at"]) == (
        "alice",
        "bob",
        expires.isoformat(),
    )
    assert "bob took over the edit lease from alice." in text(
        bob.get(f"/documents/{doc_id}/history")
    )
    # bob's save released the lease: alice's stale form is merged (she changed the body)
    merged = alice.post(f"/documents/{doc_id}/edit", form(0, body="Alice's body"))
    assert merged.status_code == 302
    assert "merged with the changes others made" in text(alice.get(merged.location))
    stored = row(app, doc_id)
    assert (stored["title"], stored["body"], stored["version"]) == ("Bob's", "Alice's body", 2)
    assert "lease_broken" not in history(app, doc_id)[1]["change_info"].get("extra", {})


def test_take_over_of_a_changed_document_shows_the_conflict_and_keeps_the_lease(visitor, app):
    doc_id = make_document(app)
    alice, bob = visitor("alice"), visitor("bob")
    alice.edit(doc_id)
    bob.edit(doc_id)  # read-only, rendered from version 0
    alice.post(f"/documents/{doc_id}/edit", form(0, title="Alice's title", rationale="Why"))
    alice.edit(doc_id)  # alice edits again
    response = bob.post(f"/documents/{doc_id}/take-over", {"version": "0"})
    assert response.status_code == 409
    page = text(response)
    assert "version 1 by alice" in page and "changed Title" in page
    assert "Edit the current version (1)" in page
    assert f'href="/documents/{doc_id}/edit"' in response.get_data(as_text=True)
    assert leases(app) == ["bob"]
    edit = bob.edit(doc_id)
    assert 'name="version" value="1"' in edit.get_data(as_text=True)
    assert "disabled" not in edit.get_data(as_text=True)


def test_take_over_without_a_version_is_400(visitor, app):
    doc_id = make_document(app)
    visitor("alice").edit(doc_id)
    response = visitor("bob").post(f"/documents/{doc_id}/take-over", {"version": "x"})
    assert response.status_code == 400
    assert leases(app) == ["alice"]


def test_cancel_releases_the_lease(visitor, app):
    doc_id = make_document(app)
    alice = visitor("alice")
    alice.edit(doc_id)
    response = alice.post(f"/documents/{doc_id}/cancel")
    assert (response.status_code, response.location) == (302, f"/documents/{doc_id}")
    assert leases(app) == []


def test_cancel_leaves_someone_elses_lease_alone(visitor, app):
    doc_id = make_document(app)
    visitor("alice").edit(doc_id)
    assert visitor("bob").post(f"/documents/{doc_id}/cancel").status_code == 302
    assert leases(app) == ["alice"]
