"""The history page: every version with who, when, why and what changed."""

from __future__ import annotations

from .helpers import edit_document, history, make_document, text


def test_history_shows_both_users_their_rationales_and_the_diffs(visitor, app):
    doc_id = make_document(app, title="Plan", body="One.")
    alice, bob = visitor("alice"), visitor("bob")
    base = {"title": "Plan", "body": "One.", "status": "draft", "reviewer_notes": ""}
    bob.post(
        f"/documents/{doc_id}/edit",
        {**base, "version": "0", "body": "Two.", "status": "review", "rationale": "Longer beta"},
    )
    alice.post(
        f"/documents/{doc_id}/edit",
        {
            **base,
            "version": "1",
            "body": "Two.",
            "status": "review",
            "reviewer_notes": "Secret",
            "rationale": "Notes for reviewers",
        },
    )
    response = alice.get(f"/documents/{doc_id}/history")
    assert response.status_code == 200
    page = text(response)
    changed = [row["changed"] for row in history(app, doc_id)]
    assert (
        f"Version 2 by alice on {changed[1]:%Y-%m-%d %H:%M:%S} UTC “Notes for reviewers” "
        "Reviewer notes changed (hidden)"
    ) in page
    assert (
        f"Version 1 by bob on {changed[0]:%Y-%m-%d %H:%M:%S} UTC “Longer beta” "
        "Body One. → Two. Status Draft → In review"
    ) in page
    assert "Version 0 created by alice" in page and "Title Plan Body One. Status Draft" in page
    assert page.index("Version 2") < page.index("Version 1") < page.index("Version 0")
    assert "Secret" not in page  # hidden values never appear in the history


def test_history_of_a_new_document_shows_its_creation_only(visitor, app):
    doc_id = make_document(app, by="bob")
    page = text(visitor("alice").get(f"/documents/{doc_id}/history"))
    assert "Version 0 created by bob" in page and "Version 1" not in page


def test_changes_made_outside_requests_show_their_actor(visitor, app):
    doc_id = make_document(app)
    edit_document(app, doc_id, "nightly-job", reason="Archive old plans", status="archived")
    page = text(visitor("alice").get(f"/documents/{doc_id}/history"))
    assert "Version 1 by nightly-job" in page and "“Archive old plans”" in page
    assert "Status Draft → Archived" in page
