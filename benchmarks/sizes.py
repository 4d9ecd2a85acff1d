"""How much each workload does, in a full run and in ``--quick``."""

from __future__ import annotations

from dataclasses import dataclass, field

from .variants import AUDIT, CHRONONAUT, CONTINUUM, PLAIN


@dataclass(frozen=True)
class Sizes:
    seed_rows: int  # rows each variant's table starts with
    w1_ops: int
    w2_batches: int  # per repetition
    w3_batches: int
    batch_rows: int  # rows per W2 / W3 batch
    w4_history_rows: tuple[int, ...]  # history sizes, in order
    w4_list_calls: int  # versions() calls per repetition
    w4_get_calls: int  # version_at() calls per repetition
    w5_ops: int
    w6_ops: int  # increments per run, shared by the processes
    w7_chunk: int
    #: updates per variant; a variant not listed is skipped for time, and says so
    w7_updates: dict[str, int] = field(default_factory=dict)


FULL = Sizes(
    seed_rows=100_000,
    w1_ops=2000,
    w2_batches=2,
    w3_batches=2,
    batch_rows=1000,
    w4_history_rows=(200_000, 2_000_000),
    w4_list_calls=10,
    w4_get_calls=150,
    w5_ops=400,
    w6_ops=600,
    w7_chunk=1000,
    # The 100,000 updates for chrononaut; fewer for the others, whose growth
    # (or its absence) shows in fewer chunks, to keep the run near ten minutes.
    # Continuum keeps every flushed row until commit and is slow under tracemalloc.
    w7_updates={CHRONONAUT: 100_000, PLAIN: 20_000, AUDIT: 20_000, CONTINUUM: 5_000},
)
QUICK = Sizes(
    seed_rows=10_000,
    w1_ops=60,
    w2_batches=1,
    w3_batches=1,
    batch_rows=100,
    w4_history_rows=(20_000, 100_000),
    w4_list_calls=3,
    w4_get_calls=50,
    w5_ops=60,
    w6_ops=60,
    w7_chunk=250,
    w7_updates={PLAIN: 2000, CHRONONAUT: 2000, AUDIT: 2000},
)
