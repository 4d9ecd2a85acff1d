"""Never losing what a user typed: double submits, two tabs, deleted documents, lost
sessions, and what the 423 and take-over pages say."""

from __future__ import annotations

from example_app.models import Document, db

from .helpers import edit_document, history, lease_expiry, make_document, row, text

ORIGINAL = {"title": "Plan", "body": "First draft.", "status": "draft", "reviewer_notes": ""}


def form(version: int, **changes: str) -> dict[str, str]:
    return {**ORIGINAL, "version": str(version), **changes}


def test_a_form_sent_twice_is_saved_once_and_the_second_answer_is_the_saved_page(visitor, app):
    doc_id = make_document(app)
    alice = visitor("alice")
    alice.edit(doc_id)
    sent = form(0, title="Plan B", rationale="Rename")
    first = alice.post(f"/documents/{doc_id}/edit", sent)
    second = alice.post(f"/documents/{doc_id}/edit", sent)
    assert first.status_code == 302
    assert (second.status_code, second.location) == (302, f"/documents/{doc_id}")
    page = text(alice.get(second.location))
    assert "Saved version 1" in page and "Nothing of yours was saved" not in page
    assert row(app, doc_id)["version"] == 1 and len(history(app, doc_id)) == 1


def test_a_different_form_on_the_same_base_is_still_a_conflict(visitor, app):
    doc_id = make_document(app)
    alice = visitor("alice")
    alice.edit(doc_id)
    alice.post(f"/documents/{doc_id}/edit", form(0, title="Plan B"))
    response = alice.post(f"/documents/{doc_id}/edit", form(0, title="Plan C"))
    assert response.status_code == 409


def test_a_conflict_with_ones_own_other_tab_says_so(visitor, app):
    doc_id = make_document(app)
    alice = visitor("alice")
    alice.edit(doc_id)
    alice.post(f"/documents/{doc_id}/edit", form(0, title="Tab one"))
    response = alice.post(f"/documents/{doc_id}/edit", form(0, title="Tab two"))
    assert response.status_code == 409
    page = text(response)
    assert "You saved version 1 in another tab" in page
    assert "Someone else changed this document" not in page
    assert "version 1 by alice (you)" in page


def test_a_conflict_with_someone_else_still_says_someone_else(visitor, app):
    doc_id = make_document(app)
    edit_document(app, doc_id, "bob", title="Bob's")
    response = visitor("alice").post(f"/documents/{doc_id}/edit", form(0, title="Alice's"))
    assert response.status_code == 409
    assert "Someone else changed this document" in text(response)


def test_saving_a_document_deleted_meanwhile_shows_who_deleted_it_and_the_text(visitor, app):
    doc_id = make_document(app)
    alice, bob = visitor("alice"), visitor("bob")
    alice.edit(doc_id)
    alice.post(f"/documents/{doc_id}/cancel")
    bob.post(f"/documents/{doc_id}/delete", {"version": "0", "rationale": "Duplicate"})
    response = alice.post(
        f"/documents/{doc_id}/edit", form(0, body="My long careful paragraph.", status="review")
    )
    assert response.status_code == 410
    page = text(response)
    assert "“Plan” was deleted" in page
    assert "bob deleted it on" in page and "“Duplicate”" in page
    assert "My long careful paragraph." in page and "In review" in page
    assert f'href="/documents/{doc_id}/history"' in response.get_data(as_text=True)
    html = response.get_data(as_text=True)
    assert f'action="/documents/{doc_id}/restore"' in html and "Restore it" in page
    restored = alice.post(f"/documents/{doc_id}/restore")
    assert (restored.status_code, restored.location) == (302, f"/documents/{doc_id}")
    assert row(app, doc_id)["title"] == "Plan"


def test_a_save_after_logging_out_in_another_tab_keeps_the_typed_values(visitor, app):
    doc_id = make_document(app)
    alice = visitor("alice")
    alice.edit(doc_id)
    token = alice.token()
    alice.post("/logout")  # the other tab
    typed = form(0, body="Typed for ten minutes.", rationale="Careful")
    response = alice.client.post(f"/documents/{doc_id}/edit", data={"csrf_token": token, **typed})
    assert response.status_code == 401
    page = text(response)
    assert "nothing was saved" in page and "Typed for ten minutes." in page
    html = response.get_data(as_text=True)
    assert f'action="/login?next=/documents/{doc_id}/edit"' in html
    assert 'name="body" value="Typed for ten minutes."' in html
    # logging in on that page shows the edit form with the typed values, ready to save
    alice._token = None
    login_token = alice.token()
    after = alice.client.post(
        f"/login?next=/documents/{doc_id}/edit",
        data={"csrf_token": login_token, "username": "alice", "password": "wonderland", **typed},
    )
    assert after.status_code == 200
    edit_page = after.get_data(as_text=True)
    assert ">\nTyped for ten minutes.</textarea>" in edit_page
    assert 'name="rationale" value="Careful"' in edit_page
    assert "Your edit was not saved yet" in text(after)
    assert row(app, doc_id)["version"] == 0
    alice._token = None
    saved = alice.post(f"/documents/{doc_id}/edit", typed)
    assert saved.status_code == 302 and row(app, doc_id)["body"] == "Typed for ten minutes."


def test_a_save_without_a_session_cookie_keeps_the_typed_values(visitor, app):
    doc_id = make_document(app)
    stranger = visitor()
    response = stranger.client.post(f"/documents/{doc_id}/edit", data=form(0, body="Kept"))
    assert response.status_code == 401
    assert "Kept" in text(response)


def test_the_423_page_says_when_the_lease_ends_and_offers_to_save_again(visitor, app):
    doc_id = make_document(app)
    visitor("bob").edit(doc_id)
    alice = visitor("alice")
    response = alice.post(f"/documents/{doc_id}/edit", form(0, body="Alice's body"))
    assert response.status_code == 423
    page = text(response)
    assert f"their edit lease ends at {lease_expiry(app):%H:%M} UTC at the latest" in page
    assert "save again: your form is merged with their changes" in page
    assert "Document(id=" not in page
    html = response.get_data(as_text=True)
    assert 'data-testid="save-again"' in html and 'name="body" value="Alice&#39;s body"' in html


def test_after_a_stale_take_over_the_page_says_the_lease_is_now_yours(visitor, app):
    doc_id = make_document(app)
    visitor("bob").edit(doc_id)
    edit_document(app, doc_id, "bob", title="Bob's")
    response = visitor("alice").post(f"/documents/{doc_id}/take-over", {"version": "0"})
    assert response.status_code == 409
    assert f"You now hold the edit lease until {lease_expiry(app):%H:%M} UTC" in text(response)


def test_pages_show_titles_and_status_labels_not_codes(visitor, app):
    doc_id = make_document(app, title="Quarterly report")
    edit_document(app, doc_id, "bob", status="published")
    visitor("bob").edit(doc_id)
    response = visitor("alice").post(f"/documents/{doc_id}/edit", form(0, status="review"))
    page = text(response)
    assert "“Quarterly report”" in page and "Document(id=" not in page
    history_page = text(visitor("alice").get(f"/documents/{doc_id}/history"))
    assert "Status Draft → Published" in history_page
    assert "published" not in history_page.replace("Published", "")


def test_lease_ttl_comes_from_the_environment(monkeypatch, clean_database):
    from datetime import timedelta

    import pytest

    from example_app import create_app

    monkeypatch.setenv("EXAMPLE_APP_LEASE_TTL", "90")
    app = create_app({"SQLALCHEMY_DATABASE_URI": clean_database, "SECRET_KEY": "t"})
    assert app.config["LEASE_TTL"] == timedelta(seconds=90)
    for bad in ("0", "²", "1.5", "-3", "999999"):
        monkeypatch.setenv("EXAMPLE_APP_LEASE_TTL", bad)
        with pytest.raises(ValueError, match="EXAMPLE_APP_LEASE_TTL must be a whole number"):
            create_app({"SQLALCHEMY_DATABASE_URI": clean_database, "SECRET_KEY": "t"})
    with app.app_context():
        db.engine.dispose()
    assert Document.__tablename__ == "document"
