"""The example app's Activity page: newest first, paginated by keyset, login required."""

from __future__ import annotations

import re

from example_app.activity import PAGE_SIZE

from .helpers import edit_document, make_document, text


def test_activity_lists_creations_edits_and_deletions_newest_first(app, visitor):
    doc_id = make_document(app, by="alice", title="Plan")
    edit_document(app, doc_id, "bob", "Tighten the title", title="Plan B", reviewer_notes="x")
    gone = make_document(app, by="bob", title="Scratch")
    alice = visitor("alice")
    alice.post(f"/documents/{gone}/delete", {"version": "0"})

    page = text(alice.get("/activity"))
    lines = re.findall(r"(alice|bob) (created|edited|deleted) (“[^”]+”|document \d+)", page)
    assert lines == [
        ("alice", "deleted", f"document {gone}"),
        ("bob", "created", f"document {gone}"),
        ("bob", "edited", "“Plan B”"),
        ("alice", "created", "“Plan B”"),
    ]
    assert "Changed: Title, Reviewer notes" in page
    assert "“Tighten the title”" in page
    assert "Older" not in page and "Newest" not in page


def test_activity_pages_with_older_links_without_repeats(app, visitor):
    doc_id = make_document(app, by="alice", title="v0")
    for number in range(1, PAGE_SIZE + 5):
        edit_document(app, doc_id, "bob", None, title=f"v{number}")
    alice = visitor("alice")

    first = alice.get("/activity").get_data(as_text=True)
    older = re.search(r'rel="next" href="([^"]+)"', first).group(1).replace("&amp;", "&")
    second = alice.get(older).get_data(as_text=True)
    versions = [int(v) for html in (first, second) for v in re.findall(r"\(version (\d+)\)", html)]
    assert versions == list(range(PAGE_SIZE + 4, -1, -1))  # every version once, newest first
    assert 'rel="next"' not in second and "Newest" in second


def test_a_restore_shows_as_restored(app, visitor):
    gone = make_document(app, by="alice", title="Scratch")
    alice = visitor("alice")
    alice.post(f"/documents/{gone}/delete", {"version": "0"})
    restore_form = alice.get("/documents/deleted").get_data(as_text=True)
    action = re.search(r'action="([^"]*restore[^"]*)"', restore_form).group(1)
    alice.post(action)
    page = text(alice.get("/activity"))
    assert "alice restored “Scratch” (version 1)" in page


def test_activity_needs_a_login_and_refuses_a_forged_cursor(app, visitor):
    assert visitor().get("/activity").status_code == 302
    response = visitor("alice").get("/activity?before=not-a-cursor")
    assert response.status_code == 400
    assert "not valid" in text(response)
