"""Two people editing one document, in a real browser (Debian's Chromium via Playwright).

alice and bob each get their own browser context (their own cookies). The app
is served over HTTP on 127.0.0.1 from a background thread.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from werkzeug.serving import make_server

from example_app.auth import DEMO_USERS
from example_app.models import Document, db

from .helpers import edit_document

CHROMIUM = Path("/usr/bin/chromium")

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="Chromium is not installed (apt-get install chromium; .ci/run installs it)",
)


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    """Debian's Chromium: Playwright cannot download its own browser here."""
    return {
        **browser_type_launch_args,
        "executable_path": str(CHROMIUM),
        "headless": True,
        "args": [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
        ],
    }


@pytest.fixture
def chromium(browser_type: Any, browser_type_launch_args: dict[str, Any]) -> Iterator[Any]:
    browser = browser_type.launch(**browser_type_launch_args)
    yield browser
    browser.close()


@pytest.fixture
def base_url(app: Flask) -> Iterator[str]:
    """The app, served on a free port of 127.0.0.1 until the test ends."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(10)


@pytest.fixture
def document_id(app: Flask) -> int:
    with app.app_context():
        document = Document(title="Release notes", body="Draft body", status="draft")
        db.session.add(document)
        db.session.commit()
        doc_id = document.id
        db.session.remove()
    return doc_id


def log_in(browser: Any, base_url: str, user: str, **context_args: Any) -> Any:
    page = browser.new_context(**context_args).new_page()
    page.goto(f"{base_url}/login")
    page.fill("#username", user)
    page.fill("#password", DEMO_USERS[user])
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r".*/documents"))
    return page


def test_two_users_edit_one_document_lease_conflict_and_history(
    chromium, base_url, document_id, tmp_path
):
    edit_url = f"{base_url}/documents/{document_id}/edit"
    alice = log_in(chromium, base_url, "alice")
    bob = log_in(chromium, base_url, "bob")

    alice.goto(f"{base_url}/documents/{document_id}")
    alice.get_by_role("button", name="Edit", exact=True).click()  # a POST: takes the lease
    alice.wait_for_url(edit_url)
    bob.goto(edit_url)
    notice = bob.get_by_test_id("leased-notice")
    assert "being edited by alice until" in notice.inner_text()
    assert bob.locator("#title").is_disabled()

    alice.fill("#title", "Release notes for 2.0")
    alice.fill("#rationale", "Name the release")
    alice.click("#edit-form button[type=submit]")
    alice.wait_for_url(re.compile(rf".*/documents/{document_id}$"))
    assert "Release notes for 2.0" in alice.content()

    # bob's page still shows version 0: taking over lands on the conflict page.
    response_statuses: list[int] = []
    bob.on("response", lambda response: response_statuses.append(response.status))
    bob.get_by_role("button", name="Take over").click()
    conflict = bob.get_by_test_id("conflict")
    conflict.wait_for()
    assert 409 in response_statuses
    text = conflict.inner_text()
    assert "version 1 by alice" in text
    assert "Title" in text
    bob.screenshot(path=str(tmp_path / "conflict.png"), full_page=True)

    bob.get_by_role("link", name=re.compile("Edit the current version")).click()
    assert bob.locator("#title").input_value() == "Release notes for 2.0"
    bob.fill("#body", "Proofread body")
    bob.fill("#rationale", "Proofreading")
    bob.click("#edit-form button[type=submit]")
    bob.wait_for_url(re.compile(rf".*/documents/{document_id}$"))

    alice.goto(f"{base_url}/documents/{document_id}/history")
    history = alice.locator("main").inner_text()
    for expected in ("alice", "bob", "Name the release", "Proofreading"):
        assert expected in history
    alice.screenshot(path=str(tmp_path / "history.png"), full_page=True)
    alice.context.close()
    bob.context.close()


def sideways_scroll(page: Any) -> int:
    """How many CSS pixels the page scrolls sideways (0 when it fits its width)."""
    return page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )


def test_pages_fit_a_phone_screen(chromium, app, base_url, document_id, tmp_path):
    phone = {"viewport": {"width": 375, "height": 740}, "device_scale_factor": 2}
    edit_document(app, document_id, "alice", body="word " + "Unbroken" * 30)
    page = log_in(chromium, base_url, "alice", **phone)
    document = f"/documents/{document_id}"
    for path in ("/documents", document, f"{document}/edit", "/documents/deleted"):
        page.goto(f"{base_url}{path}")
        overflow = sideways_scroll(page)
        assert overflow <= 0, f"{path} scrolls sideways by {overflow}px at 375px wide"

    # History shows each change as a diff; a long unbroken word in one (a link)
    # must wrap, not widen the page.
    link = "https://example.org/notes/" + "0123456789abcdef" * 6
    edit_document(app, document_id, "alice", "Link the notes", body=f"Draft body, see {link}")
    page.goto(f"{base_url}{document}/history")
    assert link in page.get_by_test_id("version-2").inner_text()
    overflow = sideways_scroll(page)
    assert overflow <= 0, f"the history page scrolls sideways by {overflow}px at 375px wide"
    page.screenshot(path=str(tmp_path / "phone-history.png"))
    page.context.close()


def test_activity_page_shows_everyone_s_changes_and_pages_back(
    chromium, app, base_url, document_id, tmp_path
):
    alice = log_in(chromium, base_url, "alice")
    alice.goto(f"{base_url}/documents/{document_id}/edit")
    alice.fill("#title", "Release notes for 2.0")
    alice.fill("#rationale", "Name the release")
    alice.click("#edit-form button[type=submit]")
    alice.wait_for_url(re.compile(rf".*/documents/{document_id}$"))
    for number in range(25):  # bob's saves elsewhere: more than one page
        edit_document(app, document_id, "bob", None, body=f"Body {number}")

    bob = log_in(chromium, base_url, "bob", viewport={"width": 375, "height": 740})
    bob.get_by_role("link", name="Activity").click()
    bob.wait_for_url(re.compile(r".*/activity$"))
    entries = bob.get_by_test_id("activity-entry")
    assert entries.count() == 20
    assert "bob edited" in entries.first.inner_text()
    assert "Changed: Body" in entries.first.inner_text()
    assert sideways_scroll(bob) <= 0
    bob.screenshot(path=str(tmp_path / "activity.png"), full_page=True)

    bob.get_by_role("link", name="Older").click()
    bob.wait_for_url(re.compile(r".*/activity\?before=.+"))
    older = [entries.nth(i).inner_text() for i in range(entries.count())]
    assert len(older) == 7  # 25 + alice's edit + the creation = 27 changes
    assert "alice edited “Release notes for 2.0”" in older[-2]
    assert "“Name the release”" in older[-2]
    assert "created “Release notes for 2.0” (version 0)" in older[-1]
    assert bob.get_by_role("link", name="Older").count() == 0
    bob.get_by_role("link", name="Newest").click()
    bob.wait_for_url(re.compile(r".*/activity$"))
    assert entries.count() == 20
    alice.context.close()
    bob.context.close()


def test_revert_from_the_history_page_and_a_stale_revert_is_a_conflict(
    chromium, app, base_url, document_id, tmp_path
):
    edit_document(app, document_id, "bob", "Rewrite", title="Release notes, rewritten")
    history_url = f"{base_url}/documents/{document_id}/history"
    alice = log_in(chromium, base_url, "alice")
    bob = log_in(chromium, base_url, "bob")
    bob.goto(history_url)  # bob's page shows version 1

    alice.goto(history_url)
    alice.get_by_test_id("revert-0").click()
    alice.wait_for_url(re.compile(rf".*/documents/{document_id}$"))
    assert "Reverted to version 0: saved as version 2." in alice.locator("main").inner_text()
    assert alice.locator("h1").inner_text() == "Release notes"
    alice.goto(history_url)
    entry = alice.get_by_test_id("version-2").inner_text()
    assert "by alice" in entry and "reverted to version 0" in entry
    alice.screenshot(path=str(tmp_path / "reverted-history.png"), full_page=True)

    statuses: list[int] = []
    bob.on("response", lambda response: statuses.append(response.status))
    bob.get_by_test_id("revert-0").click()  # based on version 1: stale
    conflict = bob.get_by_test_id("conflict")
    conflict.wait_for()
    assert 409 in statuses
    assert "version 2 by alice" in conflict.inner_text()
    alice.context.close()
    bob.context.close()


def test_delete_then_restore_from_recently_deleted(chromium, base_url, document_id, tmp_path):
    alice = log_in(chromium, base_url, "alice")
    alice.goto(f"{base_url}/documents/{document_id}/delete")
    alice.fill("#rationale", "Duplicate")
    alice.get_by_role("button", name="Delete").click()
    alice.wait_for_url(re.compile(r".*/documents$"))
    assert alice.get_by_test_id(f"document-{document_id}").count() == 0

    alice.get_by_role("link", name="Recently deleted").click()
    deleted = alice.get_by_test_id(f"deleted-{document_id}")
    text = deleted.inner_text()
    assert "Release notes" in text and "by alice" in text and "Duplicate" in text
    alice.screenshot(path=str(tmp_path / "recently-deleted.png"), full_page=True)
    deleted.get_by_role("button", name="Restore").click()
    alice.wait_for_url(re.compile(rf".*/documents/{document_id}$"))
    assert "Restored “Release notes” as version 1." in alice.locator("main").inner_text()

    alice.goto(f"{base_url}/documents")
    assert alice.get_by_test_id(f"document-{document_id}").count() == 1
    alice.goto(f"{base_url}/documents/{document_id}/history")
    restored = alice.get_by_test_id("version-1").inner_text()
    assert "restored by alice" in restored and "after its deletion by alice" in restored
    alice.goto(f"{base_url}/documents/deleted")
    assert alice.get_by_test_id(f"deleted-{document_id}").count() == 0
    alice.context.close()
