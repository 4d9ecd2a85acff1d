"""The history page in pages (newest first, keyset), long values cut, deleted documents."""

from __future__ import annotations

import re

import sqlalchemy as sa

from chrononaut import acting_as
from example_app.history import PAGE_SIZE, SHOWN_CHARACTERS
from example_app.models import Document, db

from .helpers import make_document, text


def many_versions(app, count: int, body_length: int = 10) -> int:
    """A document with versions 0..count, version n's body is n repeated."""
    doc_id = make_document(app, body="0" * body_length)
    with app.app_context(), acting_as("alice"):
        document = db.session.get(Document, doc_id)
        for n in range(1, count + 1):
            document.body = str(n % 10) * body_length
            document.title = f"Plan {n}"
            db.session.commit()
        db.session.remove()
    return doc_id


def shown_versions(response) -> list[int]:
    return [
        int(v) for v in re.findall(r'data-testid="version-(\d+)"', response.get_data(as_text=True))
    ]


def test_the_history_is_paged_newest_first_with_a_link_to_older_versions(visitor, app):
    doc_id = many_versions(app, 44)
    alice = visitor("alice")
    first = alice.get(f"/documents/{doc_id}/history")
    assert shown_versions(first) == list(range(44, 44 - PAGE_SIZE, -1))
    older = re.search(r'rel="next" href="([^"]+)"', first.get_data(as_text=True)).group(1)
    assert older == f"/documents/{doc_id}/history?before={44 - PAGE_SIZE + 1}"
    second = alice.get(older.replace("&amp;", "&"))
    assert shown_versions(second) == list(range(44 - PAGE_SIZE, 44 - 2 * PAGE_SIZE, -1))
    assert "Plan 24 → Plan 25" not in text(second) and "Plan 23 → Plan 24" in text(second)
    third = alice.get(f"/documents/{doc_id}/history?before={44 - 2 * PAGE_SIZE + 1}")
    assert shown_versions(third) == [4, 3, 2, 1, 0]
    assert 'rel="next"' not in third.get_data(as_text=True)
    assert "Version 0 created by alice" in text(third)


def test_a_page_reads_a_bounded_number_of_history_rows(visitor, app):
    doc_id = many_versions(app, 3 * PAGE_SIZE)
    statements: list[str] = []
    alice = visitor("alice")
    with app.app_context():
        engine = db.engine

    def record(*args):
        statements.append(args[2])

    sa.event.listen(engine, "before_cursor_execute", record)
    try:
        page = alice.get(f"/documents/{doc_id}/history?before=30")
    finally:
        sa.event.remove(engine, "before_cursor_execute", record)
    assert shown_versions(page) == list(range(29, 29 - PAGE_SIZE, -1))
    history_reads = [s for s in statements if "FROM document_history" in s]
    assert history_reads and all("LIMIT" in s for s in history_reads)


def test_a_long_value_is_cut_with_a_link_to_the_whole_value(visitor, app):
    doc_id = many_versions(app, 1, body_length=20_000)
    alice = visitor("alice")
    page = alice.get(f"/documents/{doc_id}/history")
    html = page.get_data(as_text=True)
    assert len(html) < 10 * SHOWN_CHARACTERS + 20_000  # not the two whole bodies
    assert "0" * SHOWN_CHARACTERS + "…" in html and "0" * (SHOWN_CHARACTERS + 1) not in html
    link = f"/documents/{doc_id}/versions/0/body"
    assert f'href="{link}"' in html and "whole body at version 0 (20000 characters)" in text(page)
    whole = alice.get(link)
    assert whole.status_code == 200 and "0" * 20_000 in whole.get_data(as_text=True)
    assert "1" * 20_000 in alice.get(f"/documents/{doc_id}/versions/1/body").get_data(as_text=True)


def test_the_whole_value_page_refuses_hidden_columns_and_unknown_versions(visitor, app):
    doc_id = many_versions(app, 1)
    alice = visitor("alice")
    assert alice.get(f"/documents/{doc_id}/versions/0/reviewer_notes").status_code == 404
    assert alice.get(f"/documents/{doc_id}/versions/7/body").status_code == 404
    assert alice.get(f"/documents/{doc_id}/versions/0/password_hash").status_code == 404


def test_a_malformed_before_is_400(visitor, app):
    doc_id = many_versions(app, 1)
    assert visitor("alice").get(f"/documents/{doc_id}/history?before=²").status_code == 400


def test_a_deleted_documents_history_is_reachable_from_the_flash(visitor, app):
    doc_id = many_versions(app, 2)
    alice = visitor("alice")
    response = alice.post(
        f"/documents/{doc_id}/delete", {"version": "2", "rationale": "Superseded"}
    )
    listing = alice.get(response.location).get_data(as_text=True)
    assert f'<a href="/documents/{doc_id}/history">its history</a> is kept' in listing
    page = alice.get(f"/documents/{doc_id}/history")
    assert page.status_code == 200
    words = text(page)
    assert "History of “Plan 2”" in words
    assert "Deleted by alice on" in words and "“Superseded”" in words
    assert shown_versions(page) == [2, 1, 0]
    assert "Plan 1 → Plan 2" in words
    assert f"/documents/{doc_id}/versions/2/body" not in page.get_data(as_text=True)
    assert "2" * 10 in alice.get(f"/documents/{doc_id}/versions/2/body").get_data(as_text=True)
    assert f'action="/documents/{doc_id}/restore"' in page.get_data(as_text=True)
    assert "Revert to this version" not in words  # nothing to revert while it is deleted


def test_a_title_with_markup_is_escaped_in_the_delete_flash(visitor, app):
    doc_id = make_document(app, title="<script>alert(1)</script>")
    alice = visitor("alice")
    response = alice.post(f"/documents/{doc_id}/delete", {"version": "0"})
    listing = alice.get(response.location).get_data(as_text=True)
    assert "<script>alert(1)</script>" not in listing
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in listing
