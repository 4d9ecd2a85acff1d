"""Raw SQL writers and ORM writers in separate OS processes on a guarded table.

The workers live in :mod:`tests.versioning.procs_database_guard`. Without the
guard an ORM read-modify-write would silently overwrite a raw increment made
after its read; with it, every increment of either kind is kept and history
has one row per version, without a gap.
"""

from __future__ import annotations

from collections import Counter

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import sessionmaker

import chrononaut
from chrononaut import ConflictError

from . import procs_database_guard as procs
from .procs_database_guard import GuardedCounter

M = 15


@pytest.fixture
def counter_url(engine, session, clean_database):
    """The database URL, with counter 1 at value 0, version 0, in a guarded table."""
    procs.Base.metadata.create_all(engine)
    session.add(GuardedCounter(id=1, value=0))
    session.commit()
    return clean_database


def final_state(engine):
    """((value, version), [(version, value, source or user_id)] of its history)."""
    with engine.connect() as connection:
        current = tuple(
            connection.exec_driver_sql(
                "SELECT value, version FROM guarded_counter WHERE id = 1"
            ).one()
        )
        rows = connection.exec_driver_sql(
            "SELECT version, value, coalesce(change_info->>'source', change_info->>'user_id') "
            "FROM guarded_counter_history WHERE id = 1 ORDER BY version"
        )
        return current, [tuple(row) for row in rows]


def test_raw_and_orm_increments_in_parallel_lose_nothing_and_leave_no_gap(counter_url, engine):
    jobs = [
        (procs.raw_increments, "raw-0", M),
        (procs.raw_increments, "raw-1", M),
        (procs.orm_increments, "orm-0", M),
        (procs.orm_increments, "orm-1", M),
    ]

    payloads = procs.run_workers(jobs, counter_url)

    current, history = final_state(engine)
    total = 4 * M
    assert current == (total, total)
    assert [version for version, _, _ in history] == list(range(total))  # no gaps
    assert [value for _, value, _ in history] == list(range(total))  # none overwritten
    assert Counter(who for _, _, who in history) == {"database": 2 * M, "orm-0": M, "orm-1": M}
    assert payloads["orm-0"] >= M and payloads["orm-1"] >= M


def test_orm_write_queued_behind_an_uncommitted_raw_update_raises_conflict(counter_url, engine):
    factory = sessionmaker(engine, expire_on_commit=False)
    chrononaut.listen(factory)
    with factory() as session:
        counter = session.get(GuardedCounter, 1)
        pid = session.connection().exec_driver_sql("SELECT pg_backend_pid()").scalar()
        process, barrier, results = procs.start(
            procs.raw_update_held_until_waited_on, counter_url, "raw", pid
        )
        try:
            barrier.wait(procs.PARENT_WAIT)  # the raw UPDATE holds the row, uncommitted
            counter.value = 1
            with pytest.raises(ConflictError) as exc_info:
                session.commit()  # waits for the row; the raw writer commits on seeing that
            session.rollback()
            assert results.get(timeout=procs.PARENT_WAIT) == ("raw", "ok", "committed")
            process.join(timeout=procs.PARENT_WAIT)
        finally:
            if process.is_alive():
                process.terminate()
                process.join(timeout=5)

    err = exc_info.value
    assert (err.expected_version, err.current_version) == (0, 1)
    assert [(c.version, c.source, c.columns) for c in err.changes] == [(1, "database", ("value",))]
    assert final_state(engine) == ((100, 1), [(0, 0, "database")])
    with engine.connect() as connection:
        assert connection.execute(sa.text("SELECT count(*) FROM guarded_counter")).scalar() == 1
