"""Model and child-process workers for the fault tests (:mod:`tests.locking.test_faults`).

Children are started with the "spawn" context, so everything they run lives
here at module level; each builds its own engine from the URL it is given.
Steps are ordered with Events and Barriers (and, in the parent, with the
server's own lock state); the only sleeps are back-offs before a retry, which
no outcome depends on. Every long-running worker reports exactly one
``(name, "ok" | "error", payload)`` on its results queue.

``CHRONONAUT_STRESS`` (a positive integer, default 1) multiplies the
iterations of the workloads.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import threading
import time
import traceback
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, sessionmaker

import chrononaut
from chrononaut import ConflictError, RecordLockedError, Versioned, acting_as, retry_on_conflict

CTX = multiprocessing.get_context("spawn")
STRESS = max(1, int(os.environ.get("CHRONONAUT_STRESS", "1") or 1))
#: Longest a child waits at a barrier or for an event (the others may be mid-workload).
CHILD_WAIT = 30.0 * STRESS
#: Longest a worker keeps retrying one increment through connection losses.
RECOVERY = 60.0
#: Attempts for retry_on_conflict: enough that contention never exhausts them.
MANY_ATTEMPTS = 100_000
#: The shared counter of the restart workload; worker ``i`` also owns record ``i + 1``.
SHARED_ID = 0


class Base(DeclarativeBase):
    pass


class FaultCounter(Base, Versioned):
    __tablename__ = "fault_counter"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    value: Mapped[int] = mapped_column(default=0)


def make_factory(url: str, **engine_options: Any) -> tuple[sa.Engine, sessionmaker[Any]]:
    options = engine_options or {"poolclass": sa.pool.NullPool}
    engine = sa.create_engine(url, **options)
    factory = sessionmaker(engine)
    chrononaut.listen(factory)
    return engine, factory


def backend_pid(session: Any) -> int:
    return session.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()


def _report(results: Any, name: str, body: Callable[[], Any]) -> None:
    try:
        results.put((name, "ok", body()))
    except BaseException:
        results.put((name, "error", traceback.format_exc()))


# --- SIGKILL inside lock() ------------------------------------------------------


def lock_flush_and_hang(url: str, owner: str, flushed: Any, results: Any) -> None:
    """Lock counter 1, change it, lease it and flush, signal ``flushed``, then hang.

    The parent kills this process with SIGKILL while it hangs, so its
    transaction (an UPDATE, a history row, a lease row, the advisory lock) is
    never committed. Should nobody kill it, it exits without committing.
    """
    _, factory = make_factory(url)
    with factory() as session, acting_as(owner):
        counter = session.get(FaultCounter, 1)
        with counter.lock():
            counter.value += 100
            counter.acquire_lease()
            session.flush()
            results.put({"event": "flushed", "pid": backend_pid(session)})
            flushed.set()
            threading.Event().wait(CHILD_WAIT * 2)
            os._exit(3)  # never commit: a surviving holder is the test's failure


def hold_lock(url: str, new_value: int, held: Any, release: Any, results: Any) -> None:
    """Lock counter 1, flush ``new_value``, signal ``held``; commit once ``release`` is set."""
    engine, factory = make_factory(url)
    with factory() as session, acting_as("holder"):
        counter = session.get(FaultCounter, 1)
        with counter.lock():
            counter.value = new_value
            session.flush()
            results.put({"event": "holding", "pid": backend_pid(session)})
            held.set()
            if not release.wait(CHILD_WAIT):
                os._exit(3)
    results.put({"event": "committed"})
    engine.dispose()


def lock_and_increment(url: str, name: str, results: Any) -> None:
    """Report the backend pid, wait in ``lock()`` on counter 1, add 1, report what was seen."""
    engine, factory = make_factory(url)
    with factory() as session, acting_as(name):
        counter = session.get(FaultCounter, 1)
        # The pid is read in the transaction that then waits in lock(), so behind
        # PgBouncer it names the server connection doing the waiting.
        results.put({"event": "asking", "pid": backend_pid(session)})
        with counter.lock():
            seen = counter.value
            counter.value = seen + 1
        results.put({"event": "incremented", "seen": seen, "at": time.monotonic()})
    engine.dispose()


def take_when_free(url: str, ready: Any, go: Any, results: Any) -> None:
    """Once ``go`` is set, try ``lock(nowait=True)`` on counter 1 until it is granted.

    Reports the monotonic time of the grant (the parent's clock: Linux's
    CLOCK_MONOTONIC is system-wide), the refusals before it, and what the
    record and its history held under the lock.
    """
    engine, factory = make_factory(url)
    history = FaultCounter.__history_mapper__.local_table
    with factory() as session:
        counter = session.get(FaultCounter, 1)
        session.commit()
        ready.set()
        if not go.wait(CHILD_WAIT):
            results.put({"event": "never told to go"})
            return
        refusals, deadline = 0, time.monotonic() + CHILD_WAIT
        while True:
            try:
                with counter.lock(nowait=True):
                    granted_at = time.monotonic()
                    versions = session.execute(
                        sa.select(history.c.version).where(history.c.id == 1)
                    ).scalars()
                    results.put(
                        {
                            "event": "granted",
                            "at": granted_at,
                            "refusals": refusals,
                            "value": counter.value,
                            "version": counter.version,
                            "history": sorted(versions),
                            "lease": None if counter.lease is None else counter.lease.owner,
                        }
                    )
                break
            except RecordLockedError:
                refusals += 1
                session.rollback()
                if time.monotonic() > deadline:
                    results.put({"event": "still refused", "refusals": refusals})
                    break
                time.sleep(0.005)
    engine.dispose()


# --- a server restart during a multi-process workload -----------------------------


class ConnectionLost(Exception):
    """Test helper: a worker gave up recovering from lost connections."""


def restart_worker(
    url: str,
    index: int,
    per_phase: int,
    pre_ping: bool,
    warmed: Any,
    busy_restarted: Any,
    paused: Any,
    resume: Any,
    results: Any,
) -> None:
    """Increment the shared counter and record ``index + 1`` together, through restarts.

    Each increment is one read-modify-write transaction of both records,
    retried on ``ConflictError`` by :func:`retry_on_conflict`. A lost connection
    (``sqlalchemy.exc.DBAPIError``) is rolled back and retried; when it was
    lost during COMMIT the outcome is unknown, so the worker reads its own
    record back, which only it writes: ``value == commits + 1`` means the
    COMMIT landed before the connection died. Phases:

    * busy: increment until ``per_phase`` commits *and* the parent's first
      restart (``immediate``, during the workload) is over; ``warmed`` is set
      after ``per_phase // 2`` commits, which is when the parent restarts.
    * idle: wait at ``paused`` with the pool's connections open while the
      parent restarts the server again (``fast``), then, on ``resume``, count
      the failures of the first transaction and do ``per_phase`` more.
    """
    name = f"worker-{index}"

    def body() -> dict[str, Any]:
        engine, factory = make_factory(
            url, pool_pre_ping=pre_ping, pool_size=2, max_overflow=2, pool_timeout=CHILD_WAIT
        )
        own_id = index + 1
        stats: dict[str, Any] = {
            "commits": 0,
            "attempts": 0,
            "conflicts": 0,
            "lost": {"read": 0, "flush": 0, "commit": 0},
            "commit_outcome_unknown": {"landed": 0, "not landed": 0},
            "rollback_failures": 0,
            "busy_phase_errors": 0,
        }
        phase = "read"
        session = factory()

        @retry_on_conflict(attempts=MANY_ATTEMPTS)
        def attempt() -> None:
            nonlocal phase
            stats["attempts"] += 1
            phase = "read"
            shared = session.get(FaultCounter, SHARED_ID)
            own = session.get(FaultCounter, own_id)
            shared.value += 1
            own.value += 1
            phase = "flush"
            try:
                session.flush()
            except ConflictError:
                stats["conflicts"] += 1
                raise
            phase = "commit"
            session.commit()

        def rollback() -> None:
            try:
                session.rollback()
            except sa.exc.DBAPIError:
                stats["rollback_failures"] += 1
                session.close()

        def own_record(deadline: float) -> tuple[int, int]:
            """(value, version) of this worker's record, read through any outage."""
            query = sa.select(FaultCounter.value, FaultCounter.version).where(
                FaultCounter.id == own_id
            )
            while True:
                try:
                    value, version = session.execute(query).one()
                    session.rollback()
                    return value, version
                except sa.exc.DBAPIError:
                    rollback()
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)

        def increment() -> int:
            """Commit one increment; return how many lost connections it took."""
            failures, deadline = 0, time.monotonic() + RECOVERY
            while True:
                try:
                    with acting_as(name):
                        attempt()
                    stats["commits"] += 1
                    return failures
                except sa.exc.DBAPIError:
                    failures += 1
                    stats["lost"][phase] += 1
                    failed_in = phase
                    rollback()
                value, version = own_record(deadline)
                if value != version or value not in (stats["commits"], stats["commits"] + 1):
                    raise AssertionError(
                        f"{name}'s record holds value {value}, version {version} after "
                        f"{stats['commits']} commits"
                    )
                if value == stats["commits"] + 1:
                    if failed_in != "commit":
                        raise AssertionError(f"a transaction that failed in {failed_in} landed")
                    stats["commit_outcome_unknown"]["landed"] += 1
                    stats["commits"] += 1
                    return failures
                if failed_in == "commit":
                    stats["commit_outcome_unknown"]["not landed"] += 1
                if time.monotonic() > deadline:
                    raise ConnectionLost(f"{name} could not commit for {RECOVERY}s")
                time.sleep(0.05)

        try:
            warm_at = max(1, per_phase // 2)
            give_up = time.monotonic() + CHILD_WAIT * 4
            while stats["commits"] < per_phase or not busy_restarted.is_set():
                stats["busy_phase_errors"] += increment()
                if stats["commits"] >= warm_at:
                    warmed.set()
                if time.monotonic() > give_up:
                    raise ConnectionLost(f"{name}: the parent never restarted the server")
            stats["busy_commits"] = stats["commits"]
            paused.wait(CHILD_WAIT)  # idle now, the pool's connections open
            if not resume.wait(CHILD_WAIT):
                raise ConnectionLost(f"{name}: the parent never resumed the workload")
            stats["first_after_idle_restart_errors"] = increment()
            for _ in range(per_phase - 1):
                increment()
        finally:
            session.close()
            engine.dispose()
        return stats

    _report(results, name, body)


# --- eight clients behind PgBouncer ---------------------------------------------

OPERATIONS = ("lock", "lease", "plain")
LEASE_TTL = timedelta(minutes=5)


def mixed_client(
    url: str, index: int, iterations: int, records: int, start: Any, results: Any
) -> None:
    """Increment shared records with ``lock()``, under a lease, or plainly, by turns.

    Every refusal is classified by kind from the error's attributes: a lease
    (``owner`` set: it must be another client's) or a ``lock()`` holder
    (``owner`` None). A refusal the operation cannot meet (a lease refusing
    its own owner, a lock refusing its holder, a conflict under ``lock()``)
    is an anomaly, reported to the parent.
    """
    name = f"client-{index}"

    def body() -> dict[str, Any]:
        engine, factory = make_factory(url)
        rng = random.Random(index)
        successes = {op: [0] * (records + 1) for op in OPERATIONS}
        refusals = {
            where: {"lease": 0, "lock": 0}
            for where in ("lock", "lease_acquire", "lease_write", "plain")
        }
        expected_kind = {
            "lock": {"lease"},
            "lease_acquire": {"lease"},
            "lease_write": {"lock"},
            "plain": {"lease", "lock"},
        }
        tally = {"attempts": 0, "conflicts": 0}
        anomalies: list[str] = []
        session = factory()

        def refused(where: str, error: RecordLockedError) -> None:
            session.rollback()
            if error.owner is None:
                kind = "lock"
                if error.expires_at is not None or "locked by another transaction" not in str(
                    error
                ):
                    anomalies.append(f"{where}: {type(error).__name__}: {error}")
            else:
                kind = "lease"
                if error.owner == name or error.expires_at is None:
                    anomalies.append(f"{where}: {name} refused by the lease of {error.owner!r}")
            if kind not in expected_kind[where] or type(error) is not RecordLockedError:
                anomalies.append(f"{where}: unexpected {type(error).__name__}: {error}")
            refusals[where][kind] += 1
            time.sleep(rng.uniform(0.002, 0.02))  # back off; nothing depends on how long

        @retry_on_conflict(attempts=MANY_ATTEMPTS)
        def write(record_id: int) -> None:
            tally["attempts"] += 1
            counter = session.get(FaultCounter, record_id)
            counter.value += 1
            try:
                session.commit()
            except ConflictError:
                tally["conflicts"] += 1
                raise

        def with_lock(record_id: int) -> None:
            while True:
                tally["attempts"] += 1
                counter = session.get(FaultCounter, record_id)
                try:
                    with counter.lock():
                        counter.value += 1
                    return
                except RecordLockedError as error:
                    refused("lock", error)
                except ConflictError as error:
                    session.rollback()
                    anomalies.append(f"lock: a conflict under lock(): {error}")

        def under_lease(record_id: int) -> None:
            while True:
                counter = session.get(FaultCounter, record_id)
                try:
                    counter.acquire_lease(ttl=LEASE_TTL)
                    session.commit()
                    break
                except RecordLockedError as error:
                    refused("lease_acquire", error)
            try:
                while True:
                    try:
                        write(record_id)
                        break
                    except RecordLockedError as error:
                        refused("lease_write", error)
            finally:
                session.get(FaultCounter, record_id).release_lease()
                session.commit()

        def plain(record_id: int) -> None:
            while True:
                try:
                    write(record_id)
                    return
                except RecordLockedError as error:
                    refused("plain", error)

        run = {"lock": with_lock, "lease": under_lease, "plain": plain}
        try:
            with acting_as(name):
                start.wait(CHILD_WAIT)
                for i in range(iterations):
                    op = OPERATIONS[(index + i) % len(OPERATIONS)]
                    record_id = 1 + (index + 2 * i) % records
                    run[op](record_id)
                    successes[op][record_id] += 1
        finally:
            session.close()
            engine.dispose()
        return {
            "successes": successes,
            "refusals": refusals,
            "anomalies": anomalies,
            **tally,
        }

    _report(results, name, body)
