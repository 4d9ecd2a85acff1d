"""A revert racing an edit, and concurrent inserts, in OS processes on a real server.

Workers are in :mod:`tests.versioning.procs_actions`.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

import chrononaut

from ..locking.procs_optimistic import run_workers
from .procs_actions import Base, RaceDoc, insert_batches, revert_or_edit

ROUNDS = 15


@pytest.fixture
def race_url(session_factory, engine, clean_database):
    """race_doc 1 at version 2: titles "original" (v0), "first" (v1), "second" (v2)."""
    Base.metadata.create_all(engine)
    with session_factory() as session:
        doc = RaceDoc(id=1, title="original")
        session.add(doc)
        session.commit()
        for title in ("first", "second"):
            doc.title = title
            session.commit()
    return clean_database


def history(engine):
    table = RaceDoc.__history_mapper__.local_table
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(
                table.c.version,
                table.c.change_info["user_id"].as_string(),
                table.c.change_info["reverted_to"].as_integer(),
            ).order_by(table.c.version)
        )
        current = conn.execute(sa.select(RaceDoc.__table__.c.version)).scalar_one()
        return current, [tuple(r) for r in rows]


def test_stale_revert_racing_an_edit_raises_conflict_and_loses_nothing(race_url, engine):
    payloads = run_workers(revert_or_edit, race_url, 2, ROUNDS, False)

    reverter, editor = payloads["worker-0"], payloads["worker-1"]
    # Each round both loaded the same version: exactly one write wins, the other conflicts.
    assert len(reverter["done"]) + len(editor["done"]) == ROUNDS
    assert len(reverter["conflicts"]) + len(editor["conflicts"]) == ROUNDS
    assert reverter["conflicts"], "the race never made the revert stale; rounds too few?"
    for expected, current in reverter["conflicts"] + editor["conflicts"]:
        assert current == expected + 1
    current, rows = history(engine)
    assert current == 2 + ROUNDS
    assert [v for v, _, _ in rows] == list(range(current))  # no gap, nothing lost
    reverts = [(v, to) for v, who, to in rows if who == "worker-0"]
    assert len(reverts) == len(reverter["done"])
    assert all(to in (0, 1) for _, to in reverts)
    assert all(to is None for _, who, to in rows if who == "worker-1")


def test_revert_and_edit_under_lock_serialise_without_conflict(race_url, engine):
    payloads = run_workers(revert_or_edit, race_url, 2, ROUNDS, True)

    assert all(not p["conflicts"] for p in payloads.values())
    current, rows = history(engine)
    assert current == 2 + 2 * ROUNDS
    assert [v for v, _, _ in rows] == list(range(current))


def test_concurrent_inserts_each_record_one_creation_found_by_its_key(
    session_factory, engine, clean_database
):
    """Batches inserted at once draw interleaved keys from one sequence, so their
    events' key spans overlap; each record must still have exactly one creation
    event, its own inserter's, found by version_at() and the feed.

    CHRONONAUT_STRESS scales the rounds (10 each by default).
    """
    Base.metadata.create_all(engine)
    rounds = 10 * int(os.environ.get("CHRONONAUT_STRESS", "1"))
    workers, size = 3, 40
    started = datetime.now(timezone.utc)
    payloads = run_workers(insert_batches, clean_database, workers, rounds, size)

    inserted = {key: worker for worker, p in payloads.items() for key in p["keys"]}
    assert len(inserted) == workers * rounds * size
    with engine.connect() as conn:
        events = conn.execute(
            sa.text(
                "SELECT k, change_info ->> 'user_id' FROM chrononaut_creations, "
                "unnest(record_keys) AS k WHERE table_name = 'race_doc'"
            )
        ).all()
        overlapping = conn.execute(
            sa.text(
                "SELECT count(*) FROM chrononaut_creations a JOIN chrononaut_creations b "
                "ON a.ctid < b.ctid AND a.key_span && b.key_span"
            )
        ).scalar()
    assert sorted(events) == sorted((f"[{key}]", worker) for key, worker in inserted.items())
    print(
        f"\n{len(inserted)} records in {len(payloads) * rounds} batches; "
        f"{overlapping} pairs of event rows with overlapping key spans"
    )
    with session_factory() as session:
        for key in inserted:
            doc = session.get(RaceDoc, key)
            assert doc.version_at(started - timedelta(seconds=1)) is None
            assert doc.version_at(datetime.now(timezone.utc)) is doc
        feed = chrononaut.activity(session, models=[RaceDoc], limit=1000)
        while feed:
            for entry in feed:
                assert entry.operation == "create"
                assert inserted.pop(entry.identity[0]) == entry.user_id
            feed = chrononaut.activity(session, models=[RaceDoc], limit=1000, before=entry.cursor)
    assert inserted == {}  # the feed listed every record once
