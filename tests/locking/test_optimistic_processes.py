"""N OS processes increment one counter M times on a real server (issue 3, section 5 b and c).

The workers live in :mod:`tests.locking.procs_optimistic`; each builds its own
engine and session from the database URL.
"""

from __future__ import annotations

import os
from collections import Counter

import pytest
import sqlalchemy as sa

from . import procs_optimistic as procs
from .procs_optimistic import OptCounter

N = 4
M = 25


@pytest.fixture
def counter_url(session_factory, engine, clean_database):
    """The database URL, with table opt_counter holding counter 1 at value 0, version 0."""
    procs.Base.metadata.create_all(engine)
    with session_factory() as s:
        s.add(OptCounter(id=1, value=0))
        s.commit()
    return clean_database


def final_state(engine):
    """((value, version) of the counter, [(version, value, user_id)] of its history)."""
    table = OptCounter.__table__
    hist = OptCounter.__history_mapper__.local_table
    with engine.connect() as conn:
        current = tuple(
            conn.execute(sa.select(table.c.value, table.c.version).where(table.c.id == 1)).one()
        )
        rows = conn.execute(
            sa.select(hist.c.version, hist.c.value, hist.c.change_info["user_id"].as_string())
            .where(hist.c.id == 1)
            .order_by(hist.c.version)
        )
        return current, [tuple(row) for row in rows]


def test_optimistic_increments_with_retry_on_conflict_lose_nothing(counter_url, engine):
    payloads = procs.run_workers(procs.increment_with_retry, counter_url, N, M)

    current, history = final_state(engine)
    assert current == (N * M, N * M)
    assert [version for version, _, _ in history] == list(range(N * M))  # no gaps
    assert [value for _, value, _ in history] == list(range(N * M))  # each saw the last
    assert Counter(user for _, _, user in history) == {f"worker-{i}": M for i in range(N)}
    assert all(p["attempts"] >= M for p in payloads.values())


def test_plain_read_modify_write_in_lockstep_catches_every_lost_update(counter_url, engine):
    # Every round all workers read the same version before any writes, so
    # exactly one write per round can succeed; the others must be refused.
    payloads = procs.run_workers(procs.increment_plainly, counter_url, N, M, True)

    successes = sum(p["successes"] for p in payloads.values())
    conflicts = [(w, c) for w, p in payloads.items() for c in p["conflicts"]]
    current, history = final_state(engine)
    assert current == (successes, successes)
    assert [version for version, _, _ in history] == list(range(successes))
    assert [value for _, value, _ in history] == list(range(successes))
    assert Counter(user for _, _, user in history) == {
        w: p["successes"] for w, p in payloads.items() if p["successes"]
    }
    assert len(conflicts) > 0
    assert (successes, len(conflicts)) == (M, (N - 1) * M)
    for worker, conflict in conflicts:
        [(version, user, columns)] = conflict["changes"]
        assert conflict["current"] == conflict["expected"] + 1 == version
        assert user != worker
        assert columns == ("value",)


def test_plain_read_modify_write_free_running_never_loses_an_update_silently(counter_url, engine):
    # Started together, then unsynchronised: however the writes interleave,
    # every increment either lands or is reported as a conflict.
    payloads = procs.run_workers(procs.increment_plainly, counter_url, N, M, False)

    successes = sum(p["successes"] for p in payloads.values())
    conflicts = sum(len(p["conflicts"]) for p in payloads.values())
    current, history = final_state(engine)
    assert successes + conflicts == N * M
    assert current == (successes, successes)
    assert [version for version, _, _ in history] == list(range(successes))
    assert [value for _, value, _ in history] == list(range(successes))
    for payload in payloads.values():
        for conflict in payload["conflicts"]:
            assert conflict["current"] > conflict["expected"]
            assert [v for v, _, _ in conflict["changes"]] == list(
                range(conflict["expected"] + 1, conflict["current"] + 1)
            )


#: Multiplies the contended attempts of the stress tests (CHRONONAUT_STRESS=10 for 10x).
STRESS = int(os.environ.get("CHRONONAUT_STRESS", "1"))


@pytest.mark.parametrize("abandon_every", [0, 3], ids=["committing", "some-rolling-back"])
def test_plain_writers_are_never_refused_as_locked_by_each_other(
    counter_url, engine, abandon_every
):
    # Plain writers (no lock(), no lease) of one record, some of them flushing and
    # then rolling back: a writer may lose to another (ConflictError), but must
    # never be told the record is locked.
    increments = 150 * STRESS
    payloads = procs.run_workers(
        procs.increment_or_abandon,
        counter_url,
        N,
        increments,
        abandon_every,
        wait=procs.PARENT_WAIT * 4 * STRESS,
    )

    refusals = [r for p in payloads.values() for r in p["refusals"]]
    assert refusals == []
    commits = sum(p["commits"] for p in payloads.values())
    conflicts = sum(p["conflicts"] for p in payloads.values())
    abandoned = sum(p["abandoned"] for p in payloads.values())
    print(  # the figures, with pytest -s
        f"\n{N * increments} contended attempts: {commits} committed, {conflicts} conflicts, "
        f"{abandoned} rolled back, {len(refusals)} refused as locked"
    )
    assert commits + conflicts + abandoned == N * increments
    current, history = final_state(engine)
    assert current == (commits, commits)
    assert [version for version, _, _ in history] == list(range(commits))  # gapless
    assert [value for _, value, _ in history] == list(range(commits))
