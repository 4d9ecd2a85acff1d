"""Stale writes SQLAlchemy refuses itself answer 409 like any other conflict.

A stale ``merge()`` and a flush after a bulk statement run with
``synchronize_session=False`` raise ConflictError, which the handler of
:func:`~chrononaut.register_error_handlers` answers.
"""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from chrononaut import Versioned, VersionedSQLAlchemy, acting_as, register_error_handlers


@pytest.fixture
def web(app):
    db = VersionedSQLAlchemy(app)
    register_error_handlers(app)

    class Memo(db.Model, Versioned):
        __tablename__ = "config_memo"
        id = db.Column(db.Integer, primary_key=True)
        title = db.Column(db.String(80))

    stale: dict[str, Any] = {}

    @app.post("/merge")
    def merge() -> str:
        db.session.merge(stale["memo"])
        db.session.commit()
        return "merged"

    @app.post("/bulk")
    def bulk() -> str:
        memo = db.session.get(Memo, 1)
        db.session.execute(
            sa.update(Memo).values(title="bulk"), execution_options={"synchronize_session": False}
        )
        memo.title = "mine"
        db.session.commit()
        return "saved"

    with app.app_context():
        db.create_all()
        db.session.add(Memo(id=1, title="first"))
        db.session.commit()
        stale["memo"] = db.session.get(Memo, 1)
        db.session.expunge(stale["memo"])
        with acting_as("bob"):
            db.session.get(Memo, 1).title = "bob's"
            db.session.commit()
        db.session.remove()
    yield app.test_client()
    with app.app_context():
        for engine in db.engines.values():
            engine.dispose()


def test_a_stale_merge_answers_409(web):
    response = web.post("/merge", headers={"Accept": "application/json"})
    assert response.status_code == 409
    body = response.get_json()
    assert (body["record"], body["expected_version"], body["current_version"]) == (
        "Memo(id=1)",
        0,
        1,
    )
    assert [(c["user_id"], c["columns"]) for c in body["changes"]] == [("bob", ["title"])]


def test_a_flush_after_an_unsynchronised_bulk_update_answers_409(web):
    response = web.post("/bulk", headers={"Accept": "application/json"})
    assert response.status_code == 409
    body = response.get_json()
    assert (body["record"], body["expected_version"], body["changes"]) == ("Memo(id=1)", 1, [])
