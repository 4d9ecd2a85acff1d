"""Child processes of the asyncio multi-process tests: each runs one event loop.

Started with the "spawn" context by :func:`tests.locking.procs_optimistic.run_workers`
(which lines them up with a Barrier and collects one report per child); each
builds its own async engine from the URL it is given.
"""

from __future__ import annotations

import asyncio
from typing import Any

from chrononaut import ConflictError, acting_as, aio

from ..locking.procs_optimistic import CHILD_WAIT, MANY_ATTEMPTS, _report
from .models import Counter, versioned_factory


async def _lock_increments(url: str, worker: str, increments: int, barrier: Any) -> dict:
    async with versioned_factory(url, pool_size=1) as factory, factory() as session:
        counter = await session.get(Counter, 1)
        barrier.wait(CHILD_WAIT)
        for _ in range(increments):
            with acting_as(worker):
                async with aio.lock(counter):
                    counter.value += 1  # refreshed by the lock: the latest committed value
    return {}


def lock_increments(url: str, worker: str, increments: int, barrier: Any, results: Any):
    """Increment the counter ``increments`` times, each under ``async with aio.lock()``."""
    _report(
        results, worker, lambda: asyncio.run(_lock_increments(url, worker, increments, barrier))
    )


async def _retry_increments(url: str, worker: str, increments: int, barrier: Any) -> dict:
    attempts = 0
    async with versioned_factory(url, pool_size=1) as factory, factory() as session:

        @aio.retry_on_conflict(attempts=MANY_ATTEMPTS)
        async def increment() -> None:
            nonlocal attempts
            attempts += 1
            counter = await session.get(Counter, 1, populate_existing=True)
            counter.value += 1
            with acting_as(worker):
                await session.commit()

        barrier.wait(CHILD_WAIT)
        for _ in range(increments):
            await increment()
    return {"attempts": attempts}


def retry_increments(url: str, worker: str, increments: int, barrier: Any, results: Any):
    """Read-modify-write ``increments`` times, retried by ``aio.retry_on_conflict``."""
    _report(
        results, worker, lambda: asyncio.run(_retry_increments(url, worker, increments, barrier))
    )


async def _lockstep(url: str, worker: str, increments: int, barrier: Any) -> dict:
    successes, conflicts = 0, []
    async with versioned_factory(url, pool_size=1) as factory, factory() as session:
        barrier.wait(CHILD_WAIT)
        for _ in range(increments):
            counter = await session.get(Counter, 1, populate_existing=True)
            value = counter.value
            barrier.wait(CHILD_WAIT)  # everyone has read this round's version
            counter.value = value + 1
            try:
                with acting_as(worker):
                    await session.commit()
            except ConflictError as err:
                await session.rollback()
                conflicts.append(
                    {
                        "expected": err.expected_version,
                        "current": err.current_version,
                        "changes": [(c.version, c.user_id, c.columns) for c in err.changes],
                    }
                )
            else:
                successes += 1
    return {"successes": successes, "conflicts": conflicts}


def lockstep_increments(url: str, worker: str, increments: int, barrier: Any, results: Any):
    """Plain read-modify-write, all workers reading the same version every round."""
    _report(results, worker, lambda: asyncio.run(_lockstep(url, worker, increments, barrier)))
