"""Model and worker processes for the database guard's concurrency tests.

Children are started with the "spawn" context, so everything they run lives
here at module level; each builds its own engine from the URL it is given.
Steps are ordered with a Barrier or the database's own lock state, never with
sleeps. Every child reports exactly one ``(worker, "ok" | "error", payload)``.
"""

from __future__ import annotations

import multiprocessing
import time
import traceback
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, sessionmaker

import chrononaut
from chrononaut import Versioned, acting_as, retry_on_conflict

CTX = multiprocessing.get_context("spawn")
#: Longest a child waits for a barrier or a lock state.
CHILD_WAIT = 15.0
#: Longest the parent waits for a child's report or exit.
PARENT_WAIT = 60.0
MANY_ATTEMPTS = 10_000


class Base(DeclarativeBase):
    pass


class GuardedCounter(Base, Versioned):
    __tablename__ = "guarded_counter"
    __chrononaut_database_guard__ = True
    id: Mapped[int] = mapped_column(primary_key=True)
    value: Mapped[int] = mapped_column(default=0)


def _report(results: Any, worker: str, body: Callable[[], Any]) -> None:
    try:
        results.put((worker, "ok", body()))
    except BaseException:
        results.put((worker, "error", traceback.format_exc()))


def raw_increments(url: str, worker: str, increments: int, barrier: Any, results: Any) -> None:
    """``UPDATE guarded_counter SET value = value + 1`` and COMMIT, ``increments`` times."""

    def body() -> int:
        engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
        try:
            barrier.wait(CHILD_WAIT)
            for _ in range(increments):
                with engine.begin() as connection:
                    connection.exec_driver_sql(
                        "UPDATE guarded_counter SET value = value + 1 WHERE id = 1"
                    )
        finally:
            engine.dispose()
        return increments

    _report(results, worker, body)


def orm_increments(url: str, worker: str, increments: int, barrier: Any, results: Any) -> None:
    """Read-modify-write through the ORM, retried on conflict, ``increments`` times."""

    def body() -> int:
        engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
        factory = sessionmaker(engine)
        chrononaut.listen(factory)
        attempts = 0
        try:
            with factory() as session:

                @retry_on_conflict(attempts=MANY_ATTEMPTS)
                def increment() -> None:
                    nonlocal attempts
                    attempts += 1
                    counter = session.get(GuardedCounter, 1)
                    counter.value += 1
                    with acting_as(worker):
                        session.commit()

                barrier.wait(CHILD_WAIT)
                for _ in range(increments):
                    increment()
        finally:
            engine.dispose()
        return attempts

    _report(results, worker, body)


def raw_update_held_until_waited_on(
    url: str, worker: str, waiter_pid: int, barrier: Any, results: Any
) -> None:
    """UPDATE the counter, then COMMIT only once backend ``waiter_pid`` waits on a lock."""

    def body() -> str:
        engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
        try:
            with engine.begin() as connection:
                connection.exec_driver_sql("UPDATE guarded_counter SET value = 100 WHERE id = 1")
                barrier.wait(CHILD_WAIT)
                with engine.connect() as watcher:
                    deadline = time.monotonic() + CHILD_WAIT
                    while True:
                        waiting = watcher.exec_driver_sql(
                            "SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s",
                            (waiter_pid,),
                        ).scalar()
                        if waiting == "Lock":
                            break
                        if time.monotonic() > deadline:
                            raise TimeoutError(f"backend {waiter_pid} never waited on a lock")
                        watcher.rollback()
        finally:
            engine.dispose()
        return "committed"

    _report(results, worker, body)


def start(target: Callable[..., Any], url: str, worker: str, *args: Any) -> Any:
    """Start ``target`` in a process; returns (process, barrier of 2, results queue)."""
    barrier = CTX.Barrier(2)
    results = CTX.Queue()
    process = CTX.Process(target=target, args=(url, worker, *args, barrier, results))
    process.start()
    return process, barrier, results


def run_workers(jobs: list[tuple[Callable[..., Any], str, int]], url: str) -> dict[str, Any]:
    """Run ``target(url, worker, increments, barrier, results)`` per job, started together.

    Returns each worker's payload; raises AssertionError with the child's
    traceback if one failed. Children are always joined or terminated.
    """
    barrier = CTX.Barrier(len(jobs))
    results = CTX.Queue()
    processes = [
        CTX.Process(target=target, args=(url, worker, increments, barrier, results))
        for target, worker, increments in jobs
    ]
    try:
        for process in processes:
            process.start()
        payloads, errors = {}, []
        for _ in processes:
            worker, status, payload = results.get(timeout=PARENT_WAIT)
            if status == "ok":
                payloads[worker] = payload
            else:
                errors.append(f"{worker}:\n{payload}")
        for process in processes:
            process.join(timeout=PARENT_WAIT)
        assert not errors, "\n".join(errors)
        assert [p.exitcode for p in processes] == [0] * len(processes)
        return payloads
    finally:
        for process in processes:
            if process.is_alive():
                process.terminate()
                process.join(timeout=5)
