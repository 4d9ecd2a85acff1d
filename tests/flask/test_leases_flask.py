"""Leases and the flush guard in Flask: Flask-Login owns leases, config sets lock_wait."""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Any

import pytest
import sqlalchemy as sa
from flask_login import LoginManager, UserMixin, login_user

from chrononaut import LockTimeoutError, RecordLockedError, Versioned, VersionedSQLAlchemy
from tests.locking import procs_guard as procs

USERS = ("alice", "bob")


class LoginUser(UserMixin):
    def __init__(self, user_id: str) -> None:
        self.id = user_id


@pytest.fixture
def make_db(app):
    """Build a VersionedSQLAlchemy after setting ``app.config`` keys, in an app context."""
    made = []

    def make(**config: Any) -> VersionedSQLAlchemy:
        app.config.update(config)
        db = VersionedSQLAlchemy(app)
        made.append(db)
        return db

    with app.app_context():
        yield make
        for db in made:
            db.session.remove()
            for engine in db.engines.values():
                engine.dispose()


@pytest.fixture
def login(app):
    manager = LoginManager(app)
    users = {name: LoginUser(name) for name in USERS}
    manager.user_loader(users.get)
    return users


@contextmanager
def request_as(app, user=None):
    """A test request with its own app context (own ``g`` and session), as a real request has."""
    with app.app_context(), app.test_request_context():
        if user is not None:
            login_user(user)
        yield


def page_model(db):
    """The Page model of ``db``; its table is the one ``procs.FlaskPage`` maps in children."""

    class Page(db.Model, Versioned):
        __tablename__ = "flask_lease_page"
        id = db.Column(db.Integer, primary_key=True)
        title = db.Column(db.String(80))

    db.create_all()
    db.session.add(Page(id=1, title="draft"))
    db.session.commit()
    return Page


def stored(db):
    """(title, version) of page 1, read on a fresh connection."""
    with db.engine.connect() as connection:
        row = connection.execute(sa.text("SELECT title, version FROM flask_lease_page"))
        return tuple(row.one())


def test_acquire_lease_in_a_request_is_owned_by_the_logged_in_user(app, make_db, login):
    db = make_db()
    Page = page_model(db)
    with request_as(app, login["alice"]):
        page = db.session.get(Page, 1)
        lease = page.acquire_lease()
        db.session.commit()
        assert lease.owner == "alice"
        assert page.lease == lease
    with db.engine.connect() as connection:
        owners = connection.execute(sa.text("SELECT owner FROM chrononaut_leases")).scalars()
        assert list(owners) == ["alice"]


def test_another_users_flush_of_a_leased_record_raises_and_the_owner_may_write(
    app, make_db, login
):
    db = make_db()
    Page = page_model(db)
    with request_as(app, login["alice"]):
        held = db.session.get(Page, 1).acquire_lease()
        db.session.commit()
    with request_as(app, login["bob"]):
        db.session.get(Page, 1).title = "bob's"
        with pytest.raises(RecordLockedError) as exc_info:
            db.session.flush()
        db.session.rollback()
    error = exc_info.value
    assert (error.record, error.owner, error.expires_at) == (
        "Page(id=1)",
        "alice",
        held.expires_at,
    )
    assert "alice" in str(error) and f"{held.expires_at:%Y-%m-%d %H:%M:%S}" in str(error)
    assert stored(db) == ("draft", 0)
    with request_as(app, login["alice"]):
        db.session.get(Page, 1).title = "alice's"
        db.session.commit()
    assert stored(db) == ("alice's", 1)


def test_an_anonymous_users_flush_of_an_unleased_record_is_written(app, make_db, login):
    db = make_db()
    Page = page_model(db)
    with request_as(app):
        db.session.get(Page, 1).title = "anonymous edit"
        db.session.commit()
    assert stored(db) == ("anonymous edit", 1)
    history = Page.__history_mapper__.class_
    assert db.session.scalars(sa.select(history.change_info)).one()["user_id"] is None


def test_an_anonymous_users_flush_of_a_leased_record_raises(app, make_db, login):
    db = make_db()
    Page = page_model(db)
    with request_as(app, login["alice"]):
        held = db.session.get(Page, 1).acquire_lease()
        db.session.commit()
    with request_as(app):
        db.session.get(Page, 1).title = "anonymous edit"
        with pytest.raises(RecordLockedError) as exc_info:
            db.session.flush()
        db.session.rollback()
    assert (exc_info.value.owner, exc_info.value.expires_at) == ("alice", held.expires_at)
    assert stored(db) == ("draft", 0)


def test_a_flush_in_an_app_without_flask_login_is_written(app, make_db):
    db = make_db()
    Page = page_model(db)
    with request_as(app):
        db.session.get(Page, 1).title = "no login manager"
        db.session.commit()
    assert stored(db) == ("no login manager", 1)


def test_config_lock_wait_makes_a_flush_wait_for_the_lock_holder_to_commit(
    app, make_db, clean_database
):
    db = make_db(CHRONONAUT_LOCK_WAIT=3)
    Page = page_model(db)
    page = db.session.get(Page, 1)
    locked, report = procs.CTX.Event(), procs.CTX.Queue()
    args = (clean_database, "FlaskPage", (1,), locked, report, None)
    with procs.child(procs.hold_lock_until_waiter, *args) as holder:
        assert locked.wait(procs.PARENT_WAIT)
        page.title = "mine"
        db.session.commit()  # waits for the holder's lock instead of raising
        assert report.get(timeout=procs.PARENT_WAIT) is True
        assert procs.joined_ok(holder)
    assert stored(db) == ("mine", 1)


def test_config_lock_wait_times_out_on_a_holder_that_never_commits(app, make_db, clean_database):
    db = make_db(CHRONONAUT_LOCK_WAIT=0.5)
    Page = page_model(db)
    page = db.session.get(Page, 1)
    locked, release = procs.CTX.Event(), procs.CTX.Event()
    args = (clean_database, "FlaskPage", (1,), locked, release, None, False, False)
    with procs.child(procs.hold_lock, *args, signals=(release,)) as holder:
        assert locked.wait(procs.PARENT_WAIT)
        page.title = "mine"
        started = time.monotonic()
        with pytest.raises(LockTimeoutError) as exc_info:
            db.session.flush()
        elapsed = time.monotonic() - started
        db.session.rollback()
        release.set()
        assert procs.joined_ok(holder)
    assert isinstance(exc_info.value, RecordLockedError)
    assert (exc_info.value.record, exc_info.value.owner) == ("Page(id=1)", None)
    assert "Page(id=1)" in str(exc_info.value)
    assert 0.4 <= elapsed < 3.0
    assert stored(db) == ("draft", 0)


def test_default_config_refuses_a_flush_of_a_locked_record_at_once(app, make_db, clean_database):
    db = make_db()
    Page = page_model(db)
    page = db.session.get(Page, 1)
    locked, release = procs.CTX.Event(), procs.CTX.Event()
    args = (clean_database, "FlaskPage", (1,), locked, release)
    with procs.child(procs.hold_lock, *args, signals=(release,)) as holder:
        assert locked.wait(procs.PARENT_WAIT)
        page.title = "mine"
        with pytest.raises(RecordLockedError) as exc_info:
            db.session.flush()
        db.session.rollback()
        release.set()
        assert procs.joined_ok(holder)
    assert type(exc_info.value) is RecordLockedError
    assert (exc_info.value.owner, exc_info.value.expires_at) == (None, None)
    assert "Page(id=1)" in str(exc_info.value)
    assert stored(db) == ("draft", 0)
