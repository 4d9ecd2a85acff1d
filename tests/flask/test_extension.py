"""The Flask extension: VersionedSQLAlchemy, its config keys and the request actor."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import flask_sqlalchemy
import pytest
import sqlalchemy as sa
from flask import request
from flask_login import LoginManager, UserMixin, login_user
from freezegun import freeze_time
from sqlalchemy.orm import Mapped, mapped_column

from chrononaut import (
    ChrononautException,
    RecordChanges,
    Versioned,
    VersionedSQLAlchemy,
    append_change_info,
    rationale,
)

REPO_ROOT = Path(__file__).resolve().parents[2]


def history_of(db, model) -> list[Any]:
    history_cls = model.__history_mapper__.class_
    return db.session.scalars(sa.select(history_cls).order_by(history_cls.version)).all()


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


class LoginUser(UserMixin):
    def __init__(self, user_id: str) -> None:
        self.id = user_id


def test_versioned_sqlalchemy_app_constructor_versions_classic_models(db):
    class Page(db.Model, Versioned):
        __tablename__ = "page"
        id = db.Column(db.Integer, primary_key=True)
        title = db.Column(db.String(80))

    db.create_all()
    page = Page(title="draft")
    db.session.add(page)
    db.session.commit()
    page.title = "final"
    db.session.commit()

    [old] = history_of(db, Page)
    assert (old.title, old.version, page.version) == ("draft", 0, 1)
    assert old.change_info == {"user_id": None, "remote_addr": None}


def test_init_app_factory_pattern_versions_mapped_column_models(app):
    db = VersionedSQLAlchemy()
    db.init_app(app)

    class Page(db.Model, Versioned):
        __tablename__ = "page"
        id: Mapped[int] = mapped_column(primary_key=True)
        title: Mapped[str]

    with app.app_context():
        db.create_all()
        page = Page(title="draft")
        db.session.add(page)
        db.session.commit()
        with freeze_time("2024-05-01 08:00:00.000123"):
            page.title = "final"
            db.session.commit()
        db.session.expire_all()

        [old] = history_of(db, Page)
        assert old.title == "draft"
        assert old.changed == datetime(2024, 5, 1, 8, 0, 0, 123, tzinfo=timezone.utc)
        assert old.changed.utcoffset() is not None
        db.session.remove()
        db.engine.dispose()


def test_plain_flask_sqlalchemy_sessions_write_no_history(app):
    db = flask_sqlalchemy.SQLAlchemy(app)

    class Page(db.Model, Versioned):
        __tablename__ = "page"
        id = db.Column(db.Integer, primary_key=True)
        title = db.Column(db.String(80))

    with app.app_context():
        db.create_all()
        page = Page(title="draft")
        db.session.add(page)
        db.session.commit()
        page.title = "final"
        db.session.commit()
        db.session.delete(page)
        db.session.commit()

        assert "page_history" in db.metadata.tables
        assert history_of(db, Page) == []
        db.session.remove()
        db.engine.dispose()


def test_logged_in_user_and_remote_addr_are_recorded_in_a_request(app, make_db):
    login_manager = LoginManager(app)
    login_manager.user_loader(LoginUser)
    db = make_db()

    class Page(db.Model, Versioned):
        __tablename__ = "page"
        id = db.Column(db.Integer, primary_key=True)
        title = db.Column(db.String(80))

    db.create_all()
    db.session.add(Page(id=1, title="draft"))
    db.session.commit()
    with app.test_request_context(environ_base={"REMOTE_ADDR": "203.0.113.9"}):
        login_user(LoginUser("42"))
        db.session.get(Page, 1).title = "final"
        db.session.commit()

    [old] = history_of(db, Page)
    assert old.change_info == {"user_id": "42", "remote_addr": "203.0.113.9"}


def test_anonymous_user_gives_user_id_none(app, make_db):
    login_manager = LoginManager(app)
    login_manager.user_loader(LoginUser)
    db = make_db()

    class Page(db.Model, Versioned):
        __tablename__ = "page"
        id = db.Column(db.Integer, primary_key=True)
        title = db.Column(db.String(80))

    db.create_all()
    db.session.add(Page(id=1, title="draft"))
    db.session.commit()
    with app.test_request_context(environ_base={"REMOTE_ADDR": "198.51.100.4"}):
        db.session.get(Page, 1).title = "final"
        db.session.commit()

    [old] = history_of(db, Page)
    assert old.change_info == {"user_id": None, "remote_addr": "198.51.100.4"}


def test_app_without_login_manager_records_no_user(app, make_db):
    db = make_db()

    class Page(db.Model, Versioned):
        __tablename__ = "page"
        id = db.Column(db.Integer, primary_key=True)
        title = db.Column(db.String(80))

    db.create_all()
    db.session.add(Page(id=1, title="draft"))
    db.session.commit()
    with app.test_request_context(environ_base={"REMOTE_ADDR": "192.0.2.77"}):
        db.session.get(Page, 1).title = "final"
        db.session.commit()

    [old] = history_of(db, Page)
    assert old.change_info == {"user_id": None, "remote_addr": "192.0.2.77"}


def test_core_works_without_flask_login_installed(clean_database):
    script = textwrap.dedent(
        """
        import json, sys
        sys.modules["flask_login"] = None  # as if Flask-Login were not installed
        from flask import Flask
        from chrononaut import Versioned, VersionedSQLAlchemy

        app = Flask("no_login")
        app.config["SQLALCHEMY_DATABASE_URI"] = sys.argv[1]
        db = VersionedSQLAlchemy(app)

        class Page(db.Model, Versioned):
            __tablename__ = "page"
            id = db.Column(db.Integer, primary_key=True)
            title = db.Column(db.String(80))

        with app.app_context():
            db.create_all()
            db.session.add(Page(id=1, title="draft"))
            db.session.commit()
            with app.test_request_context(environ_base={"REMOTE_ADDR": "192.0.2.8"}):
                db.session.get(Page, 1).title = "final"
                db.session.commit()
            [old] = db.session.get(Page, 1).versions()
            print(json.dumps(old.change_info))
            db.session.remove()
            db.engine.dispose()
        """
    )
    result = subprocess.run(
        [sys.executable, "-W", "error", "-c", script, clean_database],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    change_info = json.loads(result.stdout.strip().splitlines()[-1])
    assert change_info == {"user_id": None, "remote_addr": "192.0.2.8"}


def test_strict_mode_config_refuses_updates_and_deletes_without_extra_info(make_db):
    db = make_db(CHRONONAUT_REQUIRE_EXTRA_CHANGE_INFO=True)

    class Page(db.Model, Versioned):
        __tablename__ = "page"
        id = db.Column(db.Integer, primary_key=True)
        title = db.Column(db.String(80))

    db.create_all()
    db.session.add_all([Page(id=1, title="draft"), Page(id=2, title="other")])
    db.session.commit()  # inserts are allowed

    db.session.get(Page, 1).title = "final"
    with pytest.raises(ChrononautException) as update_error:
        db.session.commit()
    db.session.rollback()
    db.session.delete(db.session.get(Page, 2))
    with pytest.raises(ChrononautException) as delete_error:
        db.session.flush()
    db.session.rollback()

    for error, changed in ((update_error, "Page (1,)"), (delete_error, "Page (2,)")):
        assert type(error.value) is ChrononautException
        assert str(error.value) == (
            f"{changed} was changed without extra change info, which "
            "CHRONONAUT_REQUIRE_EXTRA_CHANGE_INFO requires; wrap the change in rationale(...) "
            "or extra_change_info(...)."
        )
    assert history_of(db, Page) == []
    assert [
        (p.title, p.version) for p in db.session.scalars(sa.select(Page).order_by(Page.id))
    ] == [
        ("draft", 0),
        ("other", 0),
    ]


def test_strict_mode_config_accepts_changes_with_rationale(make_db):
    db = make_db(CHRONONAUT_REQUIRE_EXTRA_CHANGE_INFO=True)

    class Page(db.Model, Versioned):
        __tablename__ = "page"
        id: Mapped[int] = mapped_column(primary_key=True)
        title: Mapped[str]

    db.create_all()
    db.session.add(Page(id=1, title="draft"))
    db.session.commit()
    with rationale("editor approved"):
        db.session.get(Page, 1).title = "final"
        db.session.commit()

    [old] = history_of(db, Page)
    assert old.change_info["extra"] == {"rationale": "editor approved"}


def test_extra_change_info_func_is_merged_into_the_top_level(app, make_db):
    db = make_db(CHRONONAUT_EXTRA_CHANGE_INFO_FUNC=lambda: {"path": request.path, "app": "cms"})

    class Page(db.Model, Versioned):
        __tablename__ = "page"
        id = db.Column(db.Integer, primary_key=True)
        title = db.Column(db.String(80))

    db.create_all()
    page = Page(id=1, title="draft")
    with app.test_request_context("/pages", environ_base={"REMOTE_ADDR": "192.0.2.3"}):
        db.session.add(page)  # the creation event runs the function too
        db.session.commit()
    with app.test_request_context("/pages/1", environ_base={"REMOTE_ADDR": "192.0.2.3"}):
        with append_change_info(page, reason="typo"):
            page.title = "final"
        db.session.commit()

    [old] = history_of(db, Page)
    assert old.change_info == {
        "user_id": None,
        "remote_addr": "192.0.2.3",
        "path": "/pages/1",
        "app": "cms",
        "extra": {"reason": "typo"},
    }


def test_extra_change_info_func_returning_non_json_raises_before_writing(make_db):
    db = make_db(CHRONONAUT_EXTRA_CHANGE_INFO_FUNC=lambda: {"at": datetime(2024, 1, 1)})

    class Page(db.Model, Versioned):
        __tablename__ = "page"
        id = db.Column(db.Integer, primary_key=True)
        title = db.Column(db.String(80))

    db.create_all()
    db.session.add(Page(id=1, title="draft"))  # its creation event would carry the info
    with pytest.raises(ChrononautException) as exc_info:
        db.session.commit()
    db.session.rollback()

    assert "CHRONONAUT_EXTRA_CHANGE_INFO_FUNC" in str(exc_info.value)
    assert history_of(db, Page) == []
    assert db.session.get(Page, 1) is None


def test_non_callable_extra_change_info_func_raises_type_error_at_init_app(app):
    app.config["CHRONONAUT_EXTRA_CHANGE_INFO_FUNC"] = {"app": "cms"}
    db = VersionedSQLAlchemy()
    with pytest.raises(TypeError) as exc_info:
        db.init_app(app)
    assert "CHRONONAUT_EXTRA_CHANGE_INFO_FUNC must be a callable" in str(exc_info.value)
    assert "{'app': 'cms'}" in str(exc_info.value)


def test_record_changes_records_the_request_actor_on_insert_and_update(app, make_db):
    login_manager = LoginManager(app)
    login_manager.user_loader(LoginUser)
    db = make_db()

    class Invoice(db.Model, RecordChanges):
        __tablename__ = "invoice"
        id = db.Column(db.Integer, primary_key=True)
        total = db.Column(db.Integer)

    db.create_all()
    with app.test_request_context(environ_base={"REMOTE_ADDR": "192.0.2.10"}):
        login_user(LoginUser("7"))
        with freeze_time("2024-02-02 10:00:00"):
            invoice = Invoice(id=1, total=10)
            db.session.add(invoice)
            db.session.commit()
        assert invoice.change_info == {"user_id": "7", "remote_addr": "192.0.2.10"}
        assert invoice.changed == datetime(2024, 2, 2, 10, tzinfo=timezone.utc)

    with app.test_request_context(environ_base={"REMOTE_ADDR": "192.0.2.11"}):
        login_user(LoginUser("8"))
        with freeze_time("2024-02-03 10:00:00"), rationale("discount"):
            invoice.total = 9
            db.session.commit()
        assert invoice.change_info == {
            "user_id": "8",
            "remote_addr": "192.0.2.11",
            "extra": {"rationale": "discount"},
        }
        assert invoice.changed == datetime(2024, 2, 3, 10, tzinfo=timezone.utc)
        assert invoice.changed.tzinfo is not None
