"""Model and worker processes for the optimistic-concurrency counter tests.

Children are started with the "spawn" context, so everything they run lives
here at module level; each child builds its own engine from the URL it is
given. Processes are lined up with a Barrier, never with sleeps. Every child
reports exactly one ``(worker, "ok" | "error", payload)`` on the results queue.
"""

from __future__ import annotations

import multiprocessing
import traceback
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, sessionmaker

import chrononaut
from chrononaut import ConflictError, Versioned, acting_as, retry_on_conflict

CTX = multiprocessing.get_context("spawn")
#: Longest a child waits at a barrier for the others.
CHILD_WAIT = 15.0
#: Longest the parent waits for a child's report or exit.
PARENT_WAIT = 30.0
#: Attempts for the retrying workers: enough that contention never exhausts them.
MANY_ATTEMPTS = 10_000


class Base(DeclarativeBase):
    pass


class OptCounter(Base, Versioned):
    __tablename__ = "opt_counter"
    id: Mapped[int] = mapped_column(primary_key=True)
    value: Mapped[int] = mapped_column(default=0)


def _factory(url: str) -> tuple[sa.Engine, sessionmaker[Any]]:
    engine = sa.create_engine(url, pool_size=1, max_overflow=2)
    factory = sessionmaker(engine)
    chrononaut.listen(factory)
    return engine, factory


def _report(results: Any, worker: str, body: Callable[[], Any]) -> None:
    try:
        results.put((worker, "ok", body()))
    except BaseException:
        results.put((worker, "error", traceback.format_exc()))


def increment_with_retry(url: str, worker: str, increments: int, barrier: Any, results: Any):
    """Increment the counter ``increments`` times, read-modify-write, retried on conflict."""

    def body() -> dict[str, int]:
        engine, factory = _factory(url)
        attempts = 0
        try:
            with factory() as session:

                @retry_on_conflict(attempts=MANY_ATTEMPTS)
                def increment() -> None:
                    nonlocal attempts
                    attempts += 1
                    counter = session.get(OptCounter, 1)
                    counter.value += 1
                    with acting_as(worker):
                        session.commit()

                barrier.wait(CHILD_WAIT)
                for _ in range(increments):
                    increment()
        finally:
            engine.dispose()
        return {"attempts": attempts}

    _report(results, worker, body)


def _conflict_summary(err: ConflictError) -> dict[str, Any]:
    return {
        "expected": err.expected_version,
        "current": err.current_version,
        "changes": [(c.version, c.user_id, c.columns) for c in err.changes],
    }


def increment_plainly(
    url: str, worker: str, increments: int, lockstep: bool, barrier: Any, results: Any
):
    """Read-modify-write with no lock and no retry; count successes and caught conflicts.

    With ``lockstep`` every round waits at the barrier after reading, so all
    workers read the same version before any of them writes; otherwise they
    only start together.
    """

    def body() -> dict[str, Any]:
        engine, factory = _factory(url)
        successes, conflicts = 0, []
        try:
            with factory() as session:
                barrier.wait(CHILD_WAIT)
                for _ in range(increments):
                    counter = session.get(OptCounter, 1)
                    value = counter.value  # loads value and version in one SELECT
                    if lockstep:
                        barrier.wait(CHILD_WAIT)
                    counter.value = value + 1
                    try:
                        with acting_as(worker):
                            session.commit()
                    except ConflictError as err:
                        session.rollback()
                        conflicts.append(_conflict_summary(err))
                    else:
                        successes += 1
        finally:
            engine.dispose()
        return {"successes": successes, "conflicts": conflicts}

    _report(results, worker, body)


def run_workers(
    target: Callable[..., Any], url: str, n: int, *args: Any, wait: float = PARENT_WAIT
) -> dict[str, Any]:
    """Run ``target(url, "worker-<i>", *args, barrier, results)`` in ``n`` processes.

    ``wait`` bounds the wait for each worker's report and exit.

    Returns each worker's payload; raises AssertionError with the child's
    traceback if one failed. Children are always joined or terminated.
    """
    barrier = CTX.Barrier(n)
    results = CTX.Queue()
    processes = [
        CTX.Process(target=target, args=(url, f"worker-{i}", *args, barrier, results))
        for i in range(n)
    ]
    try:
        for process in processes:
            process.start()
        payloads, errors = {}, []
        for _ in processes:
            worker, status, payload = results.get(timeout=wait)
            if status == "ok":
                payloads[worker] = payload
            else:
                errors.append(f"{worker}:\n{payload}")
        for process in processes:
            process.join(timeout=wait)
        assert not errors, "\n".join(errors)
        assert [p.exitcode for p in processes] == [0] * n
        return payloads
    finally:
        for process in processes:
            if process.is_alive():
                process.terminate()
                process.join(timeout=5)


def increment_or_abandon(
    url: str, worker: str, increments: int, abandon_every: int, barrier: Any, results: Any
):
    """Plain read-modify-write with no lock; every ``abandon_every``-th attempt flushes and
    then rolls back instead of committing. Counts commits, conflicts and lock refusals."""

    def body() -> dict[str, Any]:
        engine, factory = _factory(url)
        counts = {"commits": 0, "conflicts": 0, "abandoned": 0, "refusals": []}
        try:
            with factory() as session:
                barrier.wait(CHILD_WAIT)
                for attempt in range(1, increments + 1):
                    counter = session.get(OptCounter, 1)
                    counter.value += 1
                    try:
                        with acting_as(worker):
                            if abandon_every and attempt % abandon_every == 0:
                                session.flush()
                                session.rollback()
                                counts["abandoned"] += 1
                                continue
                            session.commit()
                    except ConflictError:
                        session.rollback()
                        counts["conflicts"] += 1
                    except chrononaut.RecordLockedError as error:
                        session.rollback()
                        counts["refusals"].append(str(error))
                    else:
                        counts["commits"] += 1
        finally:
            engine.dispose()
        return counts

    _report(results, worker, body)
