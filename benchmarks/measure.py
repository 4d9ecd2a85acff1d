"""Interleaved repetitions and paired ratios.

Every repetition runs each variant once, in an order rotated from one
repetition to the next, so drift on the machine (other work, autovacuum,
checkpoints) falls on all variants alike. A variant's ratio to the baseline is
taken within each repetition, then the median of those ratios is reported.
"""

from __future__ import annotations

import gc
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field

BASELINE = "plain"


@dataclass
class Entry:
    """One variant of a workload: ``run(size)`` returns the measured seconds."""

    key: str
    label: str
    run: Callable[[int], float]


@dataclass
class Measured:
    name: str
    title: str
    #: operations per repetition, and what one is, for the per-operation column
    ops: int
    unit: str
    times: dict[str, list[float]] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    #: label -> why that variant did not run this workload
    missing: dict[str, str] = field(default_factory=dict)
    baseline: str = BASELINE

    def ratios(self, key: str) -> list[float]:
        base = self.times[self.baseline]
        return [t / b for t, b in zip(self.times[key], base, strict=True)]

    def ratio(self, key: str) -> float | None:
        if key not in self.times:
            return None
        return statistics.median(self.ratios(key))

    def median(self, key: str) -> float:
        return statistics.median(self.times[key])


def measure(
    name: str,
    title: str,
    entries: list[Entry],
    size: int,
    warm_size: int,
    reps: int,
    ops: int,
    unit: str,
    missing: dict[str, str] | None = None,
) -> Measured:
    """Warm every entry up once (``warm_size``), then ``reps`` interleaved repetitions."""
    result = Measured(name, title, ops, unit, missing=dict(missing or {}))
    for entry in entries:
        result.labels[entry.key] = entry.label
        result.times[entry.key] = []
        entry.run(warm_size)
    for rep in range(reps):
        shift = rep % len(entries)
        for entry in entries[shift:] + entries[:shift]:
            gc.collect()
            result.times[entry.key].append(entry.run(size))
    return result
