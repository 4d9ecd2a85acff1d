"""``chrononaut.activity()``: the feed across models, its filters and keyset paging."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

import chrononaut
from chrononaut import Versioned, acting_as, rationale


@pytest.fixture
def models(Base, engine):
    class Note(Base, Versioned):
        __tablename__ = "note"
        __chrononaut_hidden__ = ["secret"]
        id: Mapped[int] = mapped_column(primary_key=True)
        text: Mapped[str]
        secret: Mapped[str | None]

    class Shelf(Base, Versioned):
        __tablename__ = "shelf"
        region: Mapped[str] = mapped_column(primary_key=True)
        number: Mapped[int] = mapped_column(primary_key=True)
        label: Mapped[str]

    Base.metadata.create_all(engine)
    return Note, Shelf


def test_feed_lists_creations_updates_and_deletions_newest_first(models, session):
    Note, Shelf = models
    with acting_as("alice"):
        note = Note(id=1, text="a")
        session.add(note)
        session.commit()
    with acting_as("bob"), rationale("typo"):
        note.text = "b"
        note.secret = "s"
        session.add(Shelf(region="eu", number=7, label="x"))
        session.commit()
    with acting_as("carol"):
        session.delete(note)
        session.commit()

    feed = chrononaut.activity(session, models=[Note, Shelf])

    assert [(e.model, e.identity, e.operation, e.version, e.user_id) for e in feed] == [
        (Note, (1,), "delete", 1, "carol"),
        # one flush, one `changed`: the tie is broken by branch (history before creations)
        (Note, (1,), "update", 1, "bob"),
        (Shelf, ("eu", 7), "create", 0, "bob"),
        (Note, (1,), "create", 0, "alice"),
    ]
    deleted, update, shelf, created = feed
    assert update.columns == ("text", "secret")  # hidden: named, never its value
    assert update.extra == {"rationale": "typo"}
    assert created.columns == () and created.extra is None
    assert update.transaction_id == shelf.transaction_id != created.transaction_id
    assert deleted.transaction_id not in (update.transaction_id, created.transaction_id)
    assert all(e.changed.tzinfo is timezone.utc for e in feed)
    assert feed[0].changed >= feed[1].changed >= feed[2].changed >= feed[3].changed


def test_feed_filters_by_user_time_model_and_transaction(models, session):
    Note, Shelf = models
    with acting_as("alice"):
        session.add(Note(id=1, text="a"))
        session.commit()
    middle = datetime.now(timezone.utc)
    with acting_as(42):
        session.add(Shelf(region="eu", number=1, label="x"))
        session.get(Note, 1).text = "b"
        session.commit()

    by_alice = chrononaut.activity(session, user_id="alice", models=[Note, Shelf])
    assert [(e.model, e.operation) for e in by_alice] == [(Note, "create")]
    by_42 = chrononaut.activity(session, user_id=42, models=[Note, Shelf])
    assert {(e.model, e.operation) for e in by_42} == {(Shelf, "create"), (Note, "update")}
    after = chrononaut.activity(session, since=middle, models=[Note, Shelf])
    assert {(e.model, e.operation) for e in after} == {(Shelf, "create"), (Note, "update")}
    before = chrononaut.activity(session, until=middle, models=[Note, Shelf])
    assert [(e.model, e.operation) for e in before] == [(Note, "create")]
    naive = chrononaut.activity(session, until=middle.replace(tzinfo=None), models=[Note])
    assert [(e.model, e.operation) for e in naive] == [(Note, "create")]
    only_shelves = chrononaut.activity(session, models=[Shelf])
    assert [(e.model, e.identity) for e in only_shelves] == [(Shelf, ("eu", 1))]
    changeset = chrononaut.activity(
        session, transaction_id=by_42[0].transaction_id, models=[Note, Shelf]
    )
    assert {(e.model, e.operation) for e in changeset} == {(Shelf, "create"), (Note, "update")}


def test_before_pages_through_the_feed_without_repeats_or_gaps(models, session):
    Note, Shelf = models
    for i in range(7):
        session.add(Note(id=i, text="a"))
    session.commit()  # seven creations with one `changed`: ties across a page boundary
    for i in range(7):
        session.get(Note, i).text = f"b{i}"
        session.commit()
    session.add(Shelf(region="eu", number=1, label="x"))
    session.commit()
    everything = chrononaut.activity(session, models=[Note, Shelf], limit=1000)
    assert len(everything) == 15

    pages, cursor = [], None
    while True:
        page = chrononaut.activity(session, models=[Note, Shelf], limit=4, before=cursor)
        if not page:
            break
        pages.append(page)
        cursor = page[-1].cursor
    assert [len(p) for p in pages] == [4, 4, 4, 3]
    assert [e.cursor for p in pages for e in p] == [e.cursor for e in everything]
    # the entry itself works as a cursor too
    assert chrononaut.activity(session, models=[Note, Shelf], before=pages[0][-1]) == (
        chrononaut.activity(session, models=[Note, Shelf], before=pages[0][-1].cursor)
    )


def test_paging_across_branches_at_one_instant_neither_repeats_nor_skips(models, session):
    Note, Shelf = models
    session.add(Note(id=1, text="a"))
    session.commit()
    for i in range(3):  # each flush: a Note update and a Shelf creation at one `changed`
        session.get(Note, 1).text = f"b{i}"
        session.add(Shelf(region="eu", number=i, label="x"))
        session.commit()
    everything = chrononaut.activity(session, models=[Note, Shelf])
    assert len(everything) == 7
    seen, cursor = [], None
    for _ in range(10):  # bounded: a feed that repeats itself must fail, not hang
        page = chrononaut.activity(session, models=[Note, Shelf], limit=1, before=cursor)
        if not page:
            break
        seen += page
        cursor = page[-1].cursor
    assert [(e.model, e.identity, e.operation) for e in seen] == [
        (e.model, e.identity, e.operation) for e in everything
    ]


def test_one_query_per_call_whatever_the_number_of_models(models, session, engine):
    Note, Shelf = models
    session.add_all([Note(id=1, text="a"), Shelf(region="eu", number=1, label="x")])
    session.commit()
    statements = []

    def count(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement)

    sa.event.listen(engine, "before_cursor_execute", count)
    try:
        feed = chrononaut.activity(session, models=[Note, Shelf])
    finally:
        sa.event.remove(engine, "before_cursor_execute", count)
    assert len(feed) == 2
    assert len(statements) == 1
    assert "note_history" in statements[0] and "shelf_history" in statements[0]


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"limit": 0}, ValueError, "limit=...) must be from 1 to 1000, got 0"),
        ({"limit": -5}, ValueError, "got -5"),
        ({"limit": 10**9}, ValueError, "got 1000000000"),
        ({"limit": float("nan")}, TypeError, "takes an int from 1 to 1000, got nan"),
        ({"limit": True}, TypeError, "got True"),
        ({"limit": "10"}, TypeError, "got '10'"),
        ({"since": "2026-01-01"}, TypeError, "since=...) must be a datetime"),
        ({"until": 1700000000}, TypeError, "until=...) must be a datetime"),
        ({"user_id": True}, TypeError, "user_id=...) takes a str or an int"),
        ({"user_id": " "}, ValueError, "must name someone"),
        ({"user_id": 1.5}, TypeError, "got 1.5"),
        ({"transaction_id": 0}, ValueError, "must be a positive bigint, got 0"),
        ({"transaction_id": "7"}, TypeError, "takes an int"),
        ({"transaction_id": float("nan")}, TypeError, "got nan"),
        ({"before": "not a cursor!"}, ValueError, "not a cursor of this feed"),
        ({"before": "bm90IGpzb24"}, ValueError, "not a cursor of this feed"),
        ({"before": 12}, TypeError, "takes an entry's cursor"),
    ],
)
def test_bad_arguments_raise_before_any_sql(models, session, engine, kwargs, error, message):
    Note, Shelf = models
    kwargs.setdefault("models", [Note, Shelf])
    statements = []

    def count(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement)

    sa.event.listen(engine, "before_cursor_execute", count)
    try:
        with pytest.raises(error) as exc_info:
            chrononaut.activity(session, **kwargs)
    finally:
        sa.event.remove(engine, "before_cursor_execute", count)
    assert message in str(exc_info.value)
    assert statements == []


def test_bad_models_and_session_are_refused(models, session):
    Note, _ = models
    with pytest.raises(TypeError) as exc_info:
        chrononaut.activity(session, models=Note)
    assert "pass models=[Document]" in str(exc_info.value)
    with pytest.raises(TypeError) as exc_info:
        chrononaut.activity(session, models=[Note, int])
    assert "got <class 'int'>" in str(exc_info.value)
    with pytest.raises(ValueError) as exc_info:
        chrononaut.activity(session, models=[])
    assert "is empty" in str(exc_info.value)
    with pytest.raises(TypeError) as exc_info:
        chrononaut.activity("session")
    assert "takes a Session" in str(exc_info.value)
    with pytest.raises(ValueError) as exc_info:
        now = datetime.now(timezone.utc)
        chrononaut.activity(session, models=[Note], since=now, until=now - timedelta(1))
    assert "empty range" in str(exc_info.value)


def test_a_cursor_with_a_malformed_key_is_refused_before_sql(models, session):
    Note, _ = models
    session.add(Note(id=1, text="a"))
    session.commit()
    session.get(Note, 1).text = "b"
    session.commit()
    [update, _created] = chrononaut.activity(session, models=[Note])
    forged = chrononaut.versioning.activity._encode_cursor(
        chrononaut.versioning.activity._Cursor(
            update.changed, f"h:{Note.__chrononaut__.history_table.fullname}", '["x"]', 0
        )
    )
    with pytest.raises(ValueError) as exc_info:
        chrononaut.activity(session, models=[Note], before=forged)
    assert "not a cursor of this feed" in str(exc_info.value)
