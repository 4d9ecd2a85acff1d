"""The pages issue 12 changed, in Chromium at desktop (1280px) and phone (390px) width:
each flow ends on the page it is about, which must not scroll sideways at either width.

Screenshots go to ``tmp_path``, or to ``EXAMPLE_APP_SCREENSHOTS`` when set (to look at).
"""

# ruff: noqa: F811  (the fixtures imported from test_browser are the tests' parameters)
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from chrononaut import acting_as
from example_app.models import Document, db

from .helpers import edit_document
from .test_browser import (  # noqa: F401  (fixtures)
    base_url,
    browser_type_launch_args,
    chromium,
    document_id,
    log_in,
    pytestmark,
    sideways_scroll,
)

WIDTHS = {"desktop": 1280, "phone": 390}
LONG_WORD = "https://example.org/notes/" + "0123456789abcdef" * 8


def shoot(page: Any, name: str, tmp_path: Path) -> None:
    """Screenshot ``page`` at each width; fail if it scrolls sideways at any."""
    folder = Path(os.environ.get("EXAMPLE_APP_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    for label, width in WIDTHS.items():
        page.set_viewport_size({"width": width, "height": 900})
        overflow = sideways_scroll(page)
        assert overflow <= 0, f"{name} scrolls sideways by {overflow}px at {width}px"
        page.screenshot(path=str(folder / f"{name}-{label}.png"), full_page=True)


def test_view_edit_and_history_pages(chromium, app, base_url, document_id, tmp_path):
    edit_document(app, document_id, "alice", "Link the notes", body=f"See {LONG_WORD}\n" * 3)
    with app.app_context(), acting_as("bob"):
        document = db.session.get(Document, document_id)
        for n in range(25):
            document.title = f"Release notes {n}"
            db.session.commit()
        db.session.remove()
    alice = log_in(chromium, base_url, "alice")
    alice.goto(f"{base_url}/documents/{document_id}")
    assert LONG_WORD in alice.locator(".body").inner_text()
    shoot(alice, "view", tmp_path)
    alice.goto(f"{base_url}/documents/{document_id}/edit")
    assert alice.get_by_test_id("no-lease").is_visible()
    shoot(alice, "edit-no-lease", tmp_path)
    alice.goto(f"{base_url}/documents/{document_id}")
    alice.get_by_role("button", name="Edit", exact=True).click()
    alice.get_by_test_id("lease-mine").wait_for()
    shoot(alice, "edit-mine", tmp_path)
    bob = log_in(chromium, base_url, "bob")
    bob.goto(f"{base_url}/documents/{document_id}/edit")
    assert bob.locator("#title").is_disabled()
    shoot(bob, "edit-read-only", tmp_path)
    bob.get_by_role("button", name="Take over").click()  # version 26 is current: no conflict
    bob.wait_for_url(re.compile(r".*/edit$"))
    bob.get_by_role("button", name="Cancel editing").click()

    alice.goto(f"{base_url}/documents/{document_id}/history")
    assert alice.get_by_test_id("quiet-breaks").is_visible()
    shoot(alice, "history-newest", tmp_path)
    alice.get_by_role("link", name="Older versions").click()
    alice.get_by_test_id("version-0").wait_for()
    link = alice.get_by_role("link", name=re.compile("whole body at version 1"))
    shoot(alice, "history-older", tmp_path)
    link.click()
    assert LONG_WORD in alice.get_by_test_id("whole-value").inner_text()
    shoot(alice, "whole-value", tmp_path)
    alice.context.close()
    bob.context.close()


def test_pages_where_a_save_does_not_go_through(chromium, app, base_url, document_id, tmp_path):
    doc = f"{base_url}/documents/{document_id}"
    alice = log_in(chromium, base_url, "alice")
    tab_two = alice.context.new_page()
    alice.goto(f"{doc}/edit")
    tab_two.goto(f"{doc}/edit")
    alice.fill("#title", "From tab one")
    alice.click("#edit-form button[type=submit]")
    alice.wait_for_url(doc)
    tab_two.fill("#title", "From tab two " + LONG_WORD[:40])
    tab_two.click("#edit-form button[type=submit]")
    assert "You saved version 1 in another tab" in tab_two.get_by_test_id("conflict").inner_text()
    shoot(tab_two, "conflict-own-tab", tmp_path)

    bob = log_in(chromium, base_url, "bob")
    alice.goto(f"{doc}/edit")
    bob.goto(doc)
    bob.get_by_role("button", name="Edit", exact=True).click()
    bob.wait_for_url(f"{doc}/edit")
    alice.fill("#body", "Alice typed this while bob was editing.")
    alice.click("#edit-form button[type=submit]")
    locked = alice.get_by_test_id("locked")
    assert "their edit lease ends at" in locked.inner_text()
    shoot(alice, "locked", tmp_path)

    edit_document(app, document_id, "bob", body="Bob saved.")
    alice.goto(f"{doc}/edit")  # read-only, version 2
    edit_document(app, document_id, "bob", body="Bob saved again.")
    alice.get_by_role("button", name="Take over").click()
    assert "You now hold the edit lease until" in alice.get_by_test_id("lease-taken").inner_text()
    shoot(alice, "conflict-after-take-over", tmp_path)

    alice.goto(f"{doc}/edit")
    alice.fill("#body", "Careful words that must survive a logout.")
    tab_two.goto(f"{base_url}/documents")
    tab_two.get_by_role("button", name="Log out").click()
    alice.click("#edit-form button[type=submit]")
    alice.get_by_test_id("kept").wait_for()
    assert "Careful words that must survive a logout." in alice.get_by_test_id("kept").inner_text()
    shoot(alice, "login-kept", tmp_path)
    alice.fill("#username", "alice")
    alice.fill("#password", "wonderland")
    alice.click("button[type=submit]")
    assert alice.locator("#body").input_value() == "Careful words that must survive a logout."
    shoot(alice, "edit-after-login", tmp_path)

    with app.app_context(), acting_as("bob"):
        db.session.execute(sa.text("DELETE FROM chrononaut_leases"))  # alice's lease ends
        db.session.delete(db.session.get(Document, document_id))
        db.session.commit()
        db.session.remove()
    alice.click("#edit-form button[type=submit]")
    gone = alice.get_by_test_id("deleted-meanwhile")
    assert "bob deleted it on" in gone.inner_text()
    assert "Careful words that must survive a logout." in gone.inner_text()
    shoot(alice, "deleted-meanwhile", tmp_path)
    alice.get_by_role("link", name="Its history").click()
    alice.get_by_test_id("deleted").wait_for()
    shoot(alice, "history-deleted", tmp_path)
    alice.context.close()
    bob.context.close()
