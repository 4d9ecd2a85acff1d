"""OS processes, each on its own event loop and async driver connection, contend for one
counter on a real server: ``aio.lock()`` serialises them, ``aio.retry_on_conflict``
loses nothing, and without either every lost update is reported as a ConflictError."""

from __future__ import annotations

from collections import Counter as Tally

import pytest
import sqlalchemy as sa

from ..locking.procs_optimistic import run_workers
from . import procs_aio
from .models import Counter

N = 3
M = 12


@pytest.fixture
def counter_url(url, clean_database):
    """The async URL, with counter 1 at value 0, version 0 (written without versioning)."""
    engine = sa.create_engine(clean_database, poolclass=sa.pool.NullPool)
    with engine.begin() as connection:
        connection.execute(sa.insert(Counter.__table__).values(id=1, value=0, version=0))
    engine.dispose()
    return url


def final_state(sync_url):
    table, hist = Counter.__table__, Counter.__history_mapper__.local_table
    engine = sa.create_engine(sync_url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            current = tuple(conn.execute(sa.select(table.c.value, table.c.version)).one())
            rows = conn.execute(
                sa.select(hist.c.version, hist.c.value, hist.c.change_info["user_id"].as_string())
                .where(hist.c.id == 1)
                .order_by(hist.c.version)
            )
            return current, [tuple(row) for row in rows]
    finally:
        engine.dispose()


@pytest.mark.parametrize("worker", ["lock_increments", "retry_increments"])
def test_locked_or_retried_increments_lose_nothing(counter_url, clean_database, worker):
    run_workers(getattr(procs_aio, worker), counter_url, N, M)

    current, history = final_state(clean_database)
    assert current == (N * M, N * M)
    assert [version for version, _, _ in history] == list(range(N * M))  # no gaps
    assert [value for _, value, _ in history] == list(range(N * M))  # each saw the last
    assert Tally(user for _, _, user in history) == {f"worker-{i}": M for i in range(N)}


def test_lockstep_read_modify_write_catches_every_lost_update(counter_url, clean_database):
    payloads = run_workers(procs_aio.lockstep_increments, counter_url, N, M)

    successes = sum(p["successes"] for p in payloads.values())
    conflicts = [(w, c) for w, p in payloads.items() for c in p["conflicts"]]
    current, history = final_state(clean_database)
    assert (successes, len(conflicts)) == (M, (N - 1) * M)  # one write per round lands
    assert current == (successes, successes)
    assert [value for _, value, _ in history] == list(range(successes))
    for worker, conflict in conflicts:
        [(version, user, columns)] = conflict["changes"]
        assert conflict["current"] == conflict["expected"] + 1 == version
        assert user != worker
        assert columns == ("value",)
