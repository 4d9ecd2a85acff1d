"""Faults (issue 8, item 8): killed clients, a restarted server, eight clients behind PgBouncer.

* A client killed with SIGKILL inside ``lock()`` leaves nothing: the server
  ends its backend when the socket closes, which rolls back its change, its
  history row and its lease, and frees the lock for the next process. A client
  killed while *waiting* in ``lock()`` never writes; the queue moves on.
  Both run straight against the server and behind PgBouncer.
* A PostgreSQL restart (``immediate`` during the workload, ``fast`` while the
  workers' pools hold idle connections) loses no committed write and leaves
  history without gaps or duplicates; lost connections surface as SQLAlchemy's
  ``OperationalError``, the session recovers after ``rollback()``, and
  ``pool_pre_ping=True`` spares the first failure on a pool of dead
  connections. The restarted server is a private one (:mod:`.servers`): the
  shared test server is never restarted.
* Eight clients behind PgBouncer (three server connections) mixing
  ``lock()``, leases and plain writes count every increment, refuse writes
  only for another's lease or ``lock()``, and leave no advisory lock behind.

Steps are ordered by Events, Barriers and the server's own state (``pg_locks``,
``pg_stat_activity``); times are measured and reported, and bounded only
loosely. ``CHRONONAUT_STRESS=10`` runs the workloads ten times longer; each
test prints its figures (see them with ``pytest -rP``).
"""

from __future__ import annotations

import os
import queue
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import sessionmaker

import chrononaut
from chrononaut import acting_as
from chrononaut.locking import keys, leases

from ..conftest import reset_schema
from .procs_faults import (
    CTX,
    SHARED_ID,
    STRESS,
    Base,
    FaultCounter,
    hold_lock,
    lock_and_increment,
    lock_flush_and_hang,
    mixed_client,
    restart_worker,
    take_when_free,
)
from .servers import database_advisory_locks, pgbouncer, private_server, server_pids

#: Longest the parent waits for one step of a child.
WAIT = 30.0
#: Loose bound on "the lock is free within about a second of the kill".
FREED_WITHIN = 5.0

#: ``(classid, objid)`` under which pg_locks shows counter 1's advisory lock.
KEY = keys.split_key(keys.advisory_key(keys.table_name(FaultCounter), (1,)))


# --- fixtures and helpers -------------------------------------------------------------


def create_counters(url: str, ids: list[int], bumped: bool = False) -> sa.Engine:
    """Create the tables at ``url`` and counters ``ids``: value 0 (or 1 after one update)."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    Base.metadata.create_all(engine)
    factory = sessionmaker(engine)
    chrononaut.listen(factory)
    with factory() as session, acting_as("seed"):
        session.add_all([FaultCounter(id=i, value=0) for i in ids])
        session.commit()
        if bumped:
            for i in ids:
                session.get(FaultCounter, i).value = 1
            session.commit()
    return engine


@pytest.fixture
def direct(clean_database: str) -> Iterator[sa.Engine]:
    """The test database, straight (no PgBouncer), with counter 1 at value 1, version 1."""
    engine = create_counters(clean_database, [1], bumped=True)
    yield engine
    engine.dispose()


@pytest.fixture(params=["direct", "pgbouncer"])
def client_url(request: pytest.FixtureRequest, clean_database: str, direct: sa.Engine):
    """Where the children connect: the server itself, or PgBouncer with 3 server connections."""
    if request.param == "direct":
        yield clean_database
    else:
        with pgbouncer(clean_database, pool_size=3) as url:
            yield url


@contextmanager
def running(*processes: Any) -> Iterator[None]:
    """Start ``processes``; always reap them, killing any still alive."""
    try:
        for process in processes:
            process.start()
        yield
    finally:
        for process in processes:
            if process.is_alive():
                process.kill()
                process.join(5)


@contextmanager
def reporting(results: Any) -> Iterator[None]:
    """When a step of the parent fails, show the children's error reports instead, if any.

    A child that failed never reaches the next event or barrier, so its
    traceback, waiting on ``results``, says more than the parent's timeout.
    """
    try:
        yield
    except (AssertionError, threading.BrokenBarrierError, queue.Empty) as failure:
        reports = []
        with suppress(queue.Empty):
            while True:
                reports.append(results.get(timeout=1))
        errors = [f"{name}:\n{payload}" for name, status, payload in reports if status != "ok"]
        if errors:
            raise AssertionError("\n".join(errors)) from failure
        raise


def wait_until(predicate: Any, what: str, timeout: float = WAIT) -> Any:
    """Poll a database state until ``predicate()`` is truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.005)


def record_locks(engine: sa.Engine) -> list[tuple[int, bool]]:
    """``(pid, granted)`` of the advisory locks on counter 1, in this database."""
    return [
        (pid, granted)
        for pid, *key, granted in database_advisory_locks(engine)
        if tuple(key) == KEY
    ]


def backend_alive(engine: sa.Engine, pid: int) -> bool:
    with engine.connect() as connection:
        query = sa.text("SELECT count(*) FROM pg_stat_activity WHERE pid = :p")
        return connection.execute(query, {"p": pid}).scalar_one() == 1


def stored(engine: sa.Engine, record_id: int) -> tuple[int, int]:
    table = FaultCounter.__table__
    with engine.connect() as connection:
        query = sa.select(table.c.value, table.c.version).where(table.c.id == record_id)
        return tuple(connection.execute(query).one())


def history(engine: sa.Engine, record_id: int) -> list[tuple[int, int, str | None]]:
    """``(version, value, user_id)`` of each history row of a counter, oldest first."""
    table = FaultCounter.__history_mapper__.local_table
    with engine.connect() as connection:
        rows = connection.execute(
            sa.select(table.c.version, table.c.value, table.c.change_info["user_id"].as_string())
            .where(table.c.id == record_id)
            .order_by(table.c.version, table.c.changed)
        )
        return [tuple(row) for row in rows]


def history_values(engine: sa.Engine) -> list[tuple[int, str | None]]:
    """(value, user_id) of counter 1's history rows, checking versions are 0, 1, 2, ..."""
    rows = history(engine, 1)
    assert [version for version, _, _ in rows] == list(range(len(rows)))
    return [(value, user) for _, value, user in rows]


def lease_rows(engine: sa.Engine) -> list[tuple[Any, ...]]:
    table = leases.leases_table(Base.metadata)
    with engine.connect() as connection:
        query = sa.select(table.c.table_name, table.c.record_key, table.c.owner)
        return [tuple(row) for row in connection.execute(query)]


def summed(stats: dict[str, dict[str, Any]], key: str) -> int:
    return sum(s[key] for s in stats.values())


def assert_counted(engine: sa.Engine, record_id: int, commits: int) -> list[str | None]:
    """The counter holds ``commits`` increments, and its history one row per increment.

    Versions are exactly ``0 .. commits - 1`` (no gap, no duplicate) and each
    history row holds the value the next change started from. Returns who
    wrote each version.
    """
    assert stored(engine, record_id) == (commits, commits)
    rows = history(engine, record_id)
    assert [version for version, _, _ in rows] == list(range(commits))
    assert [value for _, value, _ in rows] == list(range(commits))
    return [user for _, _, user in rows]


# --- SIGKILL inside lock() -----------------------------------------------------------


def test_client_killed_inside_lock_frees_the_lock_and_leaves_no_change_history_or_lease(
    client_url, direct
):
    flushed, ready, go = CTX.Event(), CTX.Event(), CTX.Event()
    held, taken = CTX.Queue(), CTX.Queue()
    holder = CTX.Process(target=lock_flush_and_hang, args=(client_url, "doomed", flushed, held))
    taker = CTX.Process(target=take_when_free, args=(client_url, ready, go, taken))
    with running(holder, taker):
        assert flushed.wait(WAIT) and ready.wait(WAIT)
        pid = held.get(timeout=WAIT)["pid"]  # it has flushed +100, a history row and a lease
        assert record_locks(direct) == [(pid, True)]
        assert stored(direct, 1) == (1, 1)

        killed_at = time.monotonic()
        os.kill(holder.pid, signal.SIGKILL)
        go.set()  # the taker starts asking, lock(nowait=True) again and again
        wait_until(lambda: (pid, True) not in record_locks(direct), "the server to free the lock")
        freed = time.monotonic() - killed_at
        report = taken.get(timeout=WAIT)
        holder.join(WAIT)
        taker.join(WAIT)
    assert holder.exitcode == -signal.SIGKILL
    assert taker.exitcode == 0
    assert report["event"] == "granted", report
    granted = report["at"] - killed_at
    assert granted < FREED_WITHIN
    # Under the lock, the next process saw neither the change, nor its history, nor its lease.
    assert (report["value"], report["version"]) == (1, 1)
    assert (report["history"], report["lease"]) == ([0], None)
    assert assert_counted(direct, 1, 1) == ["seed"]
    assert lease_rows(direct) == []
    wait_until(lambda: not backend_alive(direct, pid), "the killed client's backend to end")
    assert database_advisory_locks(direct) == []
    print(
        f"SIGKILL in lock(): lock freed after {freed:.3f}s, granted to another process "
        f"after {granted:.3f}s ({report['refusals']} nowait refusals before)"
    )


def test_client_killed_while_waiting_in_lock_never_writes_and_the_queue_moves_on(
    client_url, direct
):
    held, release = CTX.Event(), CTX.Event()
    holder_q, doomed_q, survivor_q = CTX.Queue(), CTX.Queue(), CTX.Queue()
    holder = CTX.Process(target=hold_lock, args=(client_url, 5, held, release, holder_q))
    doomed = CTX.Process(target=lock_and_increment, args=(client_url, "doomed", doomed_q))
    survivor = CTX.Process(target=lock_and_increment, args=(client_url, "survivor", survivor_q))
    with running(holder):
        assert held.wait(WAIT)
        holder_pid = holder_q.get(timeout=WAIT)["pid"]
        with running(doomed):
            doomed_pid = doomed_q.get(timeout=WAIT)["pid"]
            wait_until(lambda: (doomed_pid, False) in record_locks(direct), "doomed to queue")
            with running(survivor):  # started only now, so it queues behind the doomed client
                survivor_pid = survivor_q.get(timeout=WAIT)["pid"]
                wait_until(
                    lambda: (survivor_pid, False) in record_locks(direct), "survivor to queue"
                )
                assert sorted(record_locks(direct)) == sorted(
                    [(holder_pid, True), (doomed_pid, False), (survivor_pid, False)]
                )
                os.kill(doomed.pid, signal.SIGKILL)
                doomed.join(WAIT)
                # A backend waiting for a lock does not watch its socket (unless the
                # server sets client_connection_check_interval), so the doomed one stays
                # first in line: on release it is granted the lock, finds its client
                # gone and rolls back, which frees the lock for the survivor.
                released_at = time.monotonic()
                release.set()
                report = survivor_q.get(timeout=WAIT)
                survivor.join(WAIT)
        assert holder_q.get(timeout=WAIT) == {"event": "committed"}
        holder.join(WAIT)
    assert doomed.exitcode == -signal.SIGKILL
    assert (holder.exitcode, survivor.exitcode) == (0, 0)
    assert report["event"] == "incremented"
    assert report["seen"] == 5  # the holder's committed value; the doomed client wrote nothing
    assert history_values(direct) == [(0, "seed"), (1, "holder"), (5, "survivor")]
    assert stored(direct, 1) == (6, 3)
    wait_until(lambda: not backend_alive(direct, doomed_pid), "the doomed client's backend to end")
    assert database_advisory_locks(direct) == []
    print(
        f"killed waiter: the next waiter got the lock {report['at'] - released_at:.3f}s "
        "after the holder's release"
    )


# --- a PostgreSQL restart during a multi-process workload ------------------------------

WORKERS = 4
PER_PHASE = 25 * STRESS  # two phases: about 50 increments per worker


@pytest.fixture(scope="module")
def private_pg():
    """A PostgreSQL server of this module's own, which its tests may restart."""
    with private_server() as server:
        yield server


@pytest.fixture
def private_engine(private_pg) -> Iterator[sa.Engine]:
    url = private_pg.url()
    reset_schema(url)
    engine = create_counters(url, [SHARED_ID, *range(1, WORKERS + 1)])
    yield engine
    engine.dispose()


@pytest.mark.parametrize("pre_ping", [False, True], ids=["no_pre_ping", "pre_ping"])
def test_server_restart_during_a_multi_process_workload_loses_no_committed_write(
    private_pg, private_engine, pre_ping
):
    url = private_pg.url()
    warmed = [CTX.Event() for _ in range(WORKERS)]
    busy_restarted, resume = CTX.Event(), CTX.Event()
    paused, results = CTX.Barrier(WORKERS + 1), CTX.Queue()
    workers = [
        CTX.Process(
            target=restart_worker,
            args=(url, i, PER_PHASE, pre_ping, warmed[i], busy_restarted, paused, resume, results),
        )
        for i in range(WORKERS)
    ]
    with running(*workers), reporting(results):
        for event in warmed:
            assert event.wait(WAIT * STRESS), "a worker never got going"
        private_pg.restart("immediate")  # every worker is mid-workload: it loops until told
        busy_restarted.set()
        paused.wait(WAIT * STRESS)  # every worker idle, its pool holding dead connections
        private_pg.restart("fast")
        resume.set()
        reports = [results.get(timeout=WAIT * 2 * STRESS) for _ in workers]
        for worker in workers:
            worker.join(WAIT)
    errors = [f"{name}:\n{payload}" for name, status, payload in reports if status != "ok"]
    assert not errors, "\n".join(errors)
    stats = {name: payload for name, _, payload in reports}
    assert [worker.exitcode for worker in workers] == [0] * WORKERS

    # Every commit a worker counted (including COMMITs whose reply was lost but
    # that landed) is in the database exactly once: values, versions and history agree.
    commits = {name: s["commits"] for name, s in stats.items()}
    writers = assert_counted(private_engine, SHARED_ID, sum(commits.values()))
    assert Counter(writers) == commits
    for i in range(WORKERS):
        name = f"worker-{i}"
        assert set(assert_counted(private_engine, i + 1, commits[name])) <= {name}
        assert commits[name] >= 2 * PER_PHASE
    for name, s in stats.items():
        assert s["rollback_failures"] == 0, f"{name}: rollback() after a lost connection failed"

    # Without pre-ping, every worker's pool met the dead connections of both restarts
    # once; with it, only a transaction in flight can fail, and an idle pool never does.
    first_errors = {name: s["first_after_idle_restart_errors"] for name, s in stats.items()}
    if pre_ping:
        assert first_errors == dict.fromkeys(stats, 0)
    else:
        assert all(s["busy_phase_errors"] >= 1 for s in stats.values()), stats
        assert all(errors >= 1 for errors in first_errors.values()), first_errors
    assert private_pg.restarts >= 2
    lost: Counter[str] = Counter()
    unknown: Counter[str] = Counter()
    for s in stats.values():
        lost.update(s["lost"])
        unknown.update(s["commit_outcome_unknown"])
    print(
        f"restart, pool_pre_ping={pre_ping}: {summed(stats, 'commits')} commits in "
        f"{summed(stats, 'attempts')} attempts, {summed(stats, 'conflicts')} conflicts; "
        f"connections lost in {dict(lost)}; COMMIT outcome unknown {dict(unknown)}; "
        f"errors in the busy restart {[s['busy_phase_errors'] for s in stats.values()]}; "
        f"failures of the first transaction after the idle restart "
        f"{list(first_errors.values())}"
    )


# --- eight clients behind PgBouncer --------------------------------------------------

CLIENTS = 8
RECORDS = 3
ITERATIONS = 12 * STRESS


def test_eight_clients_behind_pgbouncer_mixing_lock_leases_and_plain_writes_lose_nothing(
    clean_database,
):
    direct = create_counters(clean_database, list(range(1, RECORDS + 1)))
    try:
        with pgbouncer(clean_database, pool_size=3) as url:
            start, results = CTX.Barrier(CLIENTS), CTX.Queue()
            clients = [
                CTX.Process(
                    target=mixed_client, args=(url, i, ITERATIONS, RECORDS, start, results)
                )
                for i in range(CLIENTS)
            ]
            with running(*clients), reporting(results):
                reports = [results.get(timeout=WAIT * 2 * STRESS) for _ in clients]
                for client in clients:
                    client.join(WAIT)
            servers = server_pids(url)
        errors = [f"{name}:\n{payload}" for name, status, payload in reports if status != "ok"]
        assert not errors, "\n".join(errors)
        stats = {name: payload for name, _, payload in reports}
        assert [client.exitcode for client in clients] == [0] * CLIENTS
        assert 0 < len(servers) <= 3  # eight clients shared at most three server connections

        # Refusals only ever came from another client's lease or lock() holder.
        anomalies = [a for s in stats.values() for a in s["anomalies"]]
        assert anomalies == []
        # Every committed increment is counted, and history has one row for each.
        for record_id in range(1, RECORDS + 1):
            by_client = {
                name: sum(s["successes"][op][record_id] for op in s["successes"])
                for name, s in stats.items()
            }
            writers = assert_counted(direct, record_id, sum(by_client.values()))
            assert Counter(writers) == {n: c for n, c in by_client.items() if c}
        assert sum(sum(map(sum, s["successes"].values())) for s in stats.values()) == (
            CLIENTS * ITERATIONS
        )
        # Nothing is left behind: no advisory lock in this database, no lease.
        assert database_advisory_locks(direct) == []
        assert lease_rows(direct) == []
    finally:
        direct.dispose()
    refusals: dict[str, Counter[str]] = {}
    for s in stats.values():
        for where, kinds in s["refusals"].items():
            refusals.setdefault(where, Counter()).update(kinds)
    print(
        f"pgbouncer, {CLIENTS} clients x {ITERATIONS} operations on {RECORDS} records: "
        f"{summed(stats, 'attempts')} write attempts, {summed(stats, 'conflicts')} conflicts; "
        "refusals by operation "
        f"and kind { ({w: dict(k) for w, k in refusals.items()}) }"
    )


# --- an exhausted connection pool ----------------------------------------------------


def test_conflict_on_an_engine_with_one_pooled_connection_is_still_a_conflict_error(direct):
    engine = sa.create_engine(
        direct.url.render_as_string(hide_password=False),
        pool_size=1,
        max_overflow=0,
        pool_timeout=1,
    )
    factory = sessionmaker(engine)
    chrononaut.listen(factory)
    other = sessionmaker(direct)
    chrononaut.listen(other)
    try:
        with factory() as session:
            counter = session.get(FaultCounter, 1)
            with other() as elsewhere, acting_as("elsewhere"):
                elsewhere.get(FaultCounter, 1).value = 7
                elsewhere.commit()
            counter.value = 2
            with pytest.raises(chrononaut.ConflictError) as exc_info:
                session.commit()
            assert (exc_info.value.expected_version, exc_info.value.current_version) == (1, 2)
            assert [c.user_id for c in exc_info.value.changes] == ["elsewhere"]
    finally:
        engine.dispose()
