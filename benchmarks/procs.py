"""W6: real processes incrementing records under ``lock()``.

Four worker processes (multiprocessing, spawn) are started once and given
tasks. A task is a number of increments, each ``with item.lock(): item.counter
+= 1``, on one record shared by all workers or on their share of 100 records.
The parent and the workers meet at a barrier; the run ends when the last
worker is done. Each repetition compares four workers against one worker doing
the same total work alone, and checks that no increment was lost.
"""

from __future__ import annotations

import multiprocessing
import queue
import threading
import time
import traceback
from dataclasses import dataclass
from typing import Any

WORKERS = 4


@dataclass(frozen=True)
class Task:
    records: tuple[int, ...]
    ops: int
    offset: int
    parties: int


def _increments(variant: Any, task: Task, barrier: Any) -> float:
    with variant.Session() as session:
        items = [session.get(variant.Item, record_id) for record_id in task.records]
        session.commit()
        barrier.wait(timeout=120)
        for n in range(task.ops):
            item = items[(task.offset + n) % len(items)]
            with item.lock():
                item.counter += 1
        return time.perf_counter()


def _worker(url: str, tasks: Any, results: Any, barriers: dict[int, Any]) -> None:
    try:
        from .variants import make_chrononaut

        variant = make_chrononaut(url)
    except BaseException:
        results.put(("error", traceback.format_exc()))
        return
    results.put(("ready", None))
    while (task := tasks.get()) is not None:
        try:
            results.put(("done", _increments(variant, task, barriers[task.parties])))
        except BaseException:
            barriers[task.parties].abort()  # free the others waiting for this one
            results.put(("error", traceback.format_exc()))
    variant.engine.dispose()


class Pool:
    """The worker processes, started once for all of W6."""

    def __init__(self, url: str) -> None:
        context = multiprocessing.get_context("spawn")
        self.barriers = {n: context.Barrier(n + 1) for n in (1, WORKERS)}
        self.results = context.Queue()
        self.queues = [context.Queue() for _ in range(WORKERS)]
        self.processes = [
            context.Process(target=_worker, args=(url, queue, self.results, self.barriers))
            for queue in self.queues
        ]
        for process in self.processes:
            process.start()

    def _collect(self, count: int, kind: str, timeout: float = 600) -> list[Any]:
        """``count`` results of ``kind``; a worker's error or death raises."""
        out: list[Any] = []
        deadline = time.monotonic() + timeout
        while len(out) < count:
            try:
                got, value = self.results.get(timeout=1)
            except queue.Empty:
                dead = [p.exitcode for p in self.processes if p.exitcode is not None]
                if dead or time.monotonic() > deadline:
                    raise RuntimeError(f"W6 workers died or hung (exit codes {dead})") from None
                continue
            if got == "error":
                raise RuntimeError(f"a W6 worker failed:\n{value}")
            out.append(value)
        return out

    def wait_ready(self) -> None:
        self._collect(len(self.processes), "ready", timeout=120)

    def run(self, records: tuple[int, ...], total_ops: int, workers: int) -> float:
        """Seconds for ``workers`` processes to do ``total_ops`` increments together."""
        share = len(records) // workers
        for index in range(workers):
            ops = total_ops // workers + (index < total_ops % workers)
            self.queues[index].put(Task(records, ops, index * share, workers))
        try:
            self.barriers[workers].wait(timeout=120)
        except threading.BrokenBarrierError:
            self._collect(workers, "done")  # raises the worker's error
            raise
        start = time.perf_counter()
        return max(self._collect(workers, "done")) - start

    def close(self) -> None:
        for tasks in self.queues:
            tasks.put(None)
        for process in self.processes:
            process.join(timeout=60)
            if process.exitcode is None:
                process.terminate()
