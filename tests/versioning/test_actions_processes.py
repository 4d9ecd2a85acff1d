"""A revert racing an edit, in two OS processes on a real server.

Workers are in :mod:`tests.versioning.procs_actions`.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from ..locking.procs_optimistic import run_workers
from .procs_actions import Base, RaceDoc, revert_or_edit

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
