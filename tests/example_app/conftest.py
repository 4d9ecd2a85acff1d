"""Fixtures for the example app: the app on the test database, and logged-in clients."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from flask import Flask

from example_app import create_app
from example_app.models import db
from example_app.seed import create_demo_users

from .helpers import Browser


@pytest.fixture
def app(clean_database: str) -> Iterator[Flask]:
    """The example app on the (emptied) test database, with its tables and demo users."""
    app = create_app(
        {"SQLALCHEMY_DATABASE_URI": clean_database, "SECRET_KEY": "test", "TESTING": True}
    )
    with app.app_context():
        db.create_all()
        create_demo_users()
        db.session.remove()
    yield app
    with app.app_context():
        db.session.remove()
        for engine in db.engines.values():
            engine.dispose()


@pytest.fixture
def visitor(app: Flask) -> Callable[[str | None], Browser]:
    """``visitor("alice")``: a new client logged in as alice; ``visitor()``: anonymous.

    Not named ``browser``: that is pytest-playwright's fixture of a real browser,
    and using its name would give every client test a ``[chromium]`` id.
    """

    def make(username: str | None = None) -> Browser:
        made = Browser(app.test_client())
        return made.login(username) if username else made

    return make
