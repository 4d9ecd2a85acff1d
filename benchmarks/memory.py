"""W7: peak memory while flushing many updates in chunks, measured with tracemalloc.

One session and one transaction: each chunk loads 1,000 rows, changes them and
flushes; the transaction commits after the last chunk. ``tracemalloc``'s peak
is reset at the start of every chunk, so each chunk reports its own peak, and
the memory still held after it. A library that keeps something per flushed
row or per flush until commit shows as growth from chunk to chunk.
"""

from __future__ import annotations

import gc
import statistics
import tracemalloc
from dataclasses import dataclass
from datetime import datetime, timezone

import sqlalchemy as sa

from .variants import Variant

CHUNK = 1000


@dataclass
class MemoryProfile:
    label: str
    peaks: list[int]  # bytes, per chunk
    held: list[int]  # bytes still allocated after each chunk

    @property
    def growth(self) -> float:
        """Peak of the last tenth of the chunks over the peak of the first tenth (after
        the first chunk, which warms caches)."""
        tenth = max(1, (len(self.peaks) - 1) // 10)
        first = statistics.median(self.peaks[1 : 1 + tenth])
        last = statistics.median(self.peaks[-tenth:])
        return last / first

    @property
    def flat(self) -> bool:
        return self.growth <= 1.10


def chunked_updates(
    variant: Variant, updates: int, chunk: int = CHUNK, first_id: int = 1
) -> MemoryProfile:
    item_cls = variant.Item
    peaks, held = [], []
    gc.collect()
    tracemalloc.start()
    try:
        with variant.Session() as session:
            for chunk_start in range(first_id, first_id + updates, chunk):
                tracemalloc.reset_peak()
                query = sa.select(item_cls).where(
                    item_cls.id >= chunk_start, item_cls.id < chunk_start + chunk
                )
                items = session.scalars(query).all()
                now = datetime.now(timezone.utc)
                for item in items:
                    item.counter += 1
                    item.updated = now
                session.flush()
                del items
                current, peak = tracemalloc.get_traced_memory()
                peaks.append(peak)
                held.append(current)
            session.commit()
    finally:
        tracemalloc.stop()
    return MemoryProfile(variant.label, peaks, held)
