"""Revert to a version from the history page; the "Recently deleted" page and Restore."""

from __future__ import annotations

from .helpers import edit_document, history, leases, make_document, row, text


def two_edits(app):
    """A document at version 2: titles Plan (v0), Plan B (v1), Plan C (v2)."""
    doc_id = make_document(app, title="Plan", reviewer_notes="note 0")
    edit_document(app, doc_id, "bob", title="Plan B", reviewer_notes="note 1")
    edit_document(app, doc_id, "bob", title="Plan C")
    return doc_id


def test_history_page_offers_revert_for_every_earlier_version(visitor, app):
    doc_id = two_edits(app)
    page = visitor("alice").get(f"/documents/{doc_id}/history").get_data(as_text=True)
    assert 'data-testid="revert-0"' in page and 'data-testid="revert-1"' in page
    assert 'data-testid="revert-2"' not in page  # the current version


def test_revert_writes_a_new_version_and_the_history_says_so(visitor, app):
    doc_id = two_edits(app)
    alice = visitor("alice")
    response = alice.post(f"/documents/{doc_id}/revert", {"target": "0", "version": "2"})
    assert (response.status_code, response.location) == (302, f"/documents/{doc_id}")
    assert "Reverted to version 0: saved as version 3." in text(alice.get(response.location))
    stored = row(app, doc_id)
    assert (stored["title"], stored["version"], stored["reviewer_notes"]) == ("Plan", 3, "note 1")
    last = history(app, doc_id)[-1]
    assert (last["version"], last["change_info"]["reverted_to"]) == (2, 0)
    assert last["change_info"]["user_id"] == "alice"
    page = text(alice.get(f"/documents/{doc_id}/history"))
    assert "Version 3 by alice" in page and "reverted to version 0" in page
    assert "Title Plan C → Plan" in page


def test_a_stale_revert_is_a_409_and_writes_nothing(visitor, app):
    doc_id = two_edits(app)
    response = visitor("alice").post(
        f"/documents/{doc_id}/revert", {"target": "0", "version": "1"}
    )
    assert response.status_code == 409
    assert "version 2 by bob" in text(response)
    assert (row(app, doc_id)["title"], len(history(app, doc_id))) == ("Plan C", 2)


def test_reverting_a_document_someone_else_is_editing_is_423(visitor, app):
    doc_id = two_edits(app)
    visitor("bob").edit(doc_id)  # bob's lease (the Edit button)
    response = visitor("alice").post(
        f"/documents/{doc_id}/revert", {"target": "0", "version": "2"}
    )
    assert response.status_code == 423
    assert "is being edited by bob" in text(response)
    assert (row(app, doc_id)["title"], leases(app)) == ("Plan C", ["bob"])


def test_reverting_under_ones_own_lease_releases_it(visitor, app):
    doc_id = two_edits(app)
    alice = visitor("alice")
    alice.edit(doc_id)
    response = alice.post(f"/documents/{doc_id}/revert", {"target": "1", "version": "2"})
    assert response.status_code == 302
    assert (row(app, doc_id)["title"], leases(app)) == ("Plan B", [])


def test_revert_to_the_current_values_changes_nothing(visitor, app):
    doc_id = two_edits(app)
    alice = visitor("alice")
    alice.post(f"/documents/{doc_id}/revert", {"target": "1", "version": "2"})
    response = alice.post(f"/documents/{doc_id}/revert", {"target": "1", "version": "3"})
    assert "Version 1 has the current values: nothing to revert." in text(
        alice.get(response.location)
    )
    assert row(app, doc_id)["version"] == 3


def test_bad_revert_forms_are_400(visitor, app):
    doc_id = two_edits(app)
    alice = visitor("alice")
    for form in ({"target": "9", "version": "2"}, {"target": "x", "version": "2"}, {}):
        response = alice.post(f"/documents/{doc_id}/revert", form)
        assert response.status_code == 400, form
    assert "is not an earlier version" in text(
        alice.post(f"/documents/{doc_id}/revert", {"target": "2", "version": "2"})
    )
    assert row(app, doc_id)["version"] == 2
    assert (
        visitor("alice").post("/documents/999/revert", {"target": "0", "version": "0"}).status_code
        == 404
    )


def test_deleted_documents_are_listed_and_restored(visitor, app):
    keep = make_document(app, title="Keep")
    doc_id = two_edits(app)
    alice = visitor("alice")
    alice.post(f"/documents/{doc_id}/delete", {"version": "2", "rationale": "Obsolete"})
    page = text(alice.get("/documents/deleted"))
    assert "Plan C v2 by alice" in page and "Obsolete" in page and "Keep" not in page

    response = alice.post(f"/documents/{doc_id}/restore")
    assert (response.status_code, response.location) == (302, f"/documents/{doc_id}")
    assert "Restored “Plan C” as version 3." in text(alice.get(response.location))
    stored = row(app, doc_id)
    assert (stored["title"], stored["version"], stored["reviewer_notes"]) == ("Plan C", 3, "")
    assert (
        stored["change_info"]["restored"] is True and stored["change_info"]["user_id"] == "alice"
    )
    assert "Plan C" not in text(alice.get("/documents/deleted"))
    history_page = text(alice.get(f"/documents/{doc_id}/history"))
    assert "Version 3 restored by alice" in history_page
    assert "after its deletion by alice" in history_page and "“Obsolete”" in history_page
    assert keep


def test_restoring_twice_or_unknown_documents(visitor, app):
    doc_id = two_edits(app)
    alice, bob = visitor("alice"), visitor("bob")
    alice.post(f"/documents/{doc_id}/delete", {"version": "2"})
    alice.post(f"/documents/{doc_id}/restore")
    response = bob.post(f"/documents/{doc_id}/restore")
    assert response.status_code == 302
    assert "is not deleted (someone restored it already)" in text(bob.get(response.location))
    assert row(app, doc_id)["version"] == 3
    assert bob.post("/documents/999/restore").status_code == 404


def test_a_restored_document_can_be_edited_and_reverted_across_its_deletion(visitor, app):
    doc_id = two_edits(app)
    alice = visitor("alice")
    alice.post(f"/documents/{doc_id}/delete", {"version": "2"})
    alice.post(f"/documents/{doc_id}/restore")
    edit_document(app, doc_id, "bob", title="Plan D")
    response = alice.post(f"/documents/{doc_id}/revert", {"target": "0", "version": "4"})
    assert response.status_code == 302
    assert (row(app, doc_id)["title"], row(app, doc_id)["version"]) == ("Plan", 5)
    page = text(alice.get(f"/documents/{doc_id}/history"))
    assert "Version 3 restored after its deletion by alice" in page
