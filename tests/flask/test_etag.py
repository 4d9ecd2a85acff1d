"""record.etag, set_etag and check_if_match: optimistic concurrency for JSON APIs over HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
import sqlalchemy as sa
from flask import jsonify, request
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from werkzeug.exceptions import PreconditionFailed
from werkzeug.http import parse_etags, unquote_etag

from chrononaut import (
    Versioned,
    VersionedSQLAlchemy,
    acting_as,
    check_if_match,
    rationale,
    register_error_handlers,
    set_etag,
)

JSON = {"Accept": "application/json"}

# --- record.etag, in plain SQLAlchemy ------------------------------------------------------


@pytest.fixture
def models(Base: type[DeclarativeBase], engine: sa.Engine) -> SimpleNamespace:
    class Memo(Base, Versioned):
        __tablename__ = "etag_memo"
        __chrononaut_untracked__ = ["views"]
        id: Mapped[int] = mapped_column(primary_key=True)
        text: Mapped[str]
        views: Mapped[int] = mapped_column(default=0)

    class Shelf(Base, Versioned):
        __tablename__ = "etag_shelf"
        region: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
        number: Mapped[int] = mapped_column(primary_key=True)
        label: Mapped[str | None]

    Base.metadata.create_all(engine)
    return SimpleNamespace(Memo=Memo, Shelf=Shelf)


def test_etag_names_model_key_and_version_and_changes_with_each_version(models, session):
    memo = models.Memo(id=42, text="a")
    session.add(memo)
    session.commit()
    tags = [memo.etag]
    for text in ("b", "c"):
        memo.text = text
        session.commit()
        tags.append(memo.etag)
    assert tags == ['"Memo-42-0"', '"Memo-42-1"', '"Memo-42-2"']
    memo.views = 10  # untracked: no new version, so the same ETag
    session.commit()
    assert memo.etag == '"Memo-42-2"'


def test_etag_joins_a_composite_key_with_dashes(models, session):
    shelf = models.Shelf(region="eu", number=7, label="x")
    session.add(shelf)
    session.commit()
    assert shelf.etag == '"Shelf-eu-7-0"'
    shelf.label = "y"
    session.commit()
    assert shelf.etag == '"Shelf-eu-7-1"'


def test_etag_percent_encodes_what_an_etag_cannot_hold(models, session):
    shelf = models.Shelf(region='a "b"%\\ ü', number=1)
    session.add(shelf)
    session.commit()
    assert shelf.etag == '"Shelf-a%20%22b%22%25%5C%20%C3%BC-1-0"'
    assert parse_etags(shelf.etag).as_set() == {unquote_etag(shelf.etag)[0]}


def test_a_record_not_yet_in_the_database_has_no_etag(models, session):
    memo = models.Memo(id=1, text="a")
    session.add(memo)
    with pytest.raises(ValueError) as exc_info:
        _ = memo.etag
    assert "Memo instance has no ETag until it is in the database" in str(exc_info.value)


# --- set_etag and check_if_match in a Flask JSON API ---------------------------------------


@pytest.fixture
def api(app) -> Iterator[SimpleNamespace]:
    db = VersionedSQLAlchemy(app)
    register_error_handlers(app)

    class Doc(db.Model, Versioned):
        __tablename__ = "etag_doc"
        id = db.Column(db.Integer, primary_key=True)
        title = db.Column(db.String(80))

    def bob_renames(title: str) -> None:
        """Bob's change, committed by another session (and app context)."""
        with (
            app.app_context(),
            db.session.session_factory() as other,
            acting_as("bob"),
            rationale("house style"),
        ):
            other.get(Doc, 1).title = title
            other.commit()

    @app.get("/docs/<int:doc_id>")
    def show(doc_id: int) -> Any:
        doc = db.get_or_404(Doc, doc_id)
        return set_etag(jsonify(title=doc.title), doc)

    @app.put("/docs/<int:doc_id>")
    def update(doc_id: int) -> Any:
        doc = db.get_or_404(Doc, doc_id)
        check_if_match(doc, required=request.args.get("required") != "no")
        if request.args.get("interfere"):
            bob_renames("Bob's, between the check and the flush")
        doc.title = request.json["title"]
        db.session.commit()
        return set_etag(jsonify(title=doc.title, version=doc.version), doc)

    with app.app_context():
        db.create_all()
        db.session.add(Doc(id=1, title="Draft"))
        db.session.commit()
    yield SimpleNamespace(
        app=app, db=db, Doc=Doc, client=app.test_client(), bob_renames=bob_renames
    )
    with app.app_context():
        for engine in db.engines.values():
            engine.dispose()


def stored(api: SimpleNamespace) -> tuple[Any, ...]:
    with api.app.app_context(), api.db.engine.connect() as connection:
        return tuple(connection.execute(sa.text("SELECT title, version FROM etag_doc")).one())


def put(api: SimpleNamespace, if_match: str | None, query: str = "", **headers: str) -> Any:
    if if_match is not None:
        headers["If-Match"] = if_match
    return api.client.put(f"/docs/1{query}", json={"title": "Mine"}, headers=headers)


def test_set_etag_sends_the_records_etag(api):
    response = api.client.get("/docs/1")
    assert response.status_code == 200
    assert response.headers["ETag"] == '"Doc-1-0"'


def test_the_current_etag_passes_and_the_response_carries_the_new_one(api):
    etag = api.client.get("/docs/1").headers["ETag"]
    response = put(api, etag)
    assert response.status_code == 200
    assert response.get_json() == {"title": "Mine", "version": 1}
    assert response.headers["ETag"] == '"Doc-1-1"'
    assert stored(api) == ("Mine", 1)


def test_a_missing_if_match_answers_428(api):
    response = put(api, None)
    assert response.status_code == 428
    page = response.get_data(as_text=True)
    assert "Send an If-Match header with the ETag of Doc(id=1)" in page
    assert "Doc-1-0" in page
    assert stored(api) == ("Draft", 0)


def test_a_stale_etag_answers_412_saying_who_changed_what_since_its_version(api):
    etag = api.client.get("/docs/1").headers["ETag"]
    api.bob_renames("Bob's")
    response = put(api, etag)
    assert response.status_code == 412
    page = response.get_data(as_text=True)
    assert "Doc(id=1) changed since you loaded version 0: version 1 by bob" in page
    assert "changed title." in page and "Reload it and retry" in page
    assert stored(api) == ("Bob's", 1)


def test_an_etag_that_is_not_ours_answers_412_naming_the_current_one(api):
    response = put(api, '"something-else"')
    assert response.status_code == 412
    page = response.get_data(as_text=True)
    assert "Doc(id=1) does not match If-Match" in page and "Doc-1-0" in page
    assert stored(api) == ("Draft", 0)


def test_a_weak_etag_never_matches_if_match(api):
    response = put(api, 'W/"Doc-1-0"')
    assert response.status_code == 412
    assert "only weak ETags" in response.get_data(as_text=True)
    assert stored(api) == ("Draft", 0)


def test_any_current_etag_in_a_list_passes(api):
    api.bob_renames("Bob's")
    response = put(api, '"Doc-1-0", "Doc-1-1"')
    assert response.status_code == 200
    assert stored(api) == ("Mine", 2)


def test_a_star_passes(api):
    response = put(api, "*")
    assert response.status_code == 200
    assert stored(api) == ("Mine", 1)


def test_without_required_a_missing_if_match_passes(api):
    response = put(api, None, "?required=no")
    assert response.status_code == 200
    assert stored(api) == ("Mine", 1)


def test_without_required_a_stale_etag_still_answers_412(api):
    api.bob_renames("Bob's")
    response = put(api, '"Doc-1-0"', "?required=no")
    assert response.status_code == 412
    assert stored(api) == ("Bob's", 1)


def test_a_commit_between_the_check_and_the_flush_answers_409(api):
    response = put(api, '"Doc-1-0"', "?interfere=1", **JSON)
    assert response.status_code == 409
    body = response.get_json()
    assert (body["expected_version"], body["current_version"]) == (0, 1)
    assert [(c["user_id"], c["columns"]) for c in body["changes"]] == [("bob", ["title"])]
    assert stored(api) == ("Bob's, between the check and the flush", 1)


def test_check_if_match_explains_from_committed_history_leaving_the_session_alone(api):
    api.bob_renames("Bob's")
    with api.app.test_request_context(headers={"If-Match": '"Doc-1-0"'}):
        doc = api.db.session.get(api.Doc, 1)  # loaded at version 1
        api.bob_renames("Bob's again")  # version 2, which this session has not seen
        doc.title = "unsaved"
        with pytest.raises(PreconditionFailed) as exc_info:
            check_if_match(doc)
        description = exc_info.value.description
        assert "since you loaded version 0: version 1 by bob" in description
        assert "version 2 by bob" in description
        assert (doc.title, doc.version) == ("unsaved", 1)  # not refreshed by the explanation
        api.db.session.rollback()
    assert stored(api) == ("Bob's again", 2)
