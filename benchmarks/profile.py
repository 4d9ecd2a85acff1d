"""``--profile W1``: where chrononaut's time goes in one workload, with pyinstrument.

Runs the workload once on plain and once on chrononaut, each under the
profiler, and prints both call trees (pyinstrument's text output), so the
extra time can be read off the difference.
"""

from __future__ import annotations

from functools import partial

from . import schema, workloads
from .runner import FULL, QUICK
from .variants import CHRONONAUT, PLAIN, make


def main(url: str, quick: bool, workload: str) -> int:
    try:
        from pyinstrument import Profiler
    except ImportError:
        print("--profile needs pyinstrument: pip install -e '.[bench]'")
        return 2
    sizes = QUICK if quick else FULL
    variants = [make(PLAIN, url), make(CHRONONAUT, url)]
    schema.reset(variants, sizes.seed_rows)
    for variant in variants:
        run = {
            "W1": partial(workloads.one_row_updates, variant, sizes.w1_ops),
            "W2": partial(workloads.batch_updates, variant, sizes.w2_batches),
            "W3": partial(workloads.batch_inserts, variant, sizes.w3_batches),
            "W5": partial(
                workloads.locked_updates
                if variant.name == CHRONONAUT
                else workloads.one_row_updates,
                variant,
                sizes.w5_ops,
            ),
        }[workload]
        run()  # warm up
        profiler = Profiler(interval=0.0005)
        profiler.start()
        seconds = run()
        profiler.stop()
        print(f"=== {workload} on {variant.label}: {seconds * 1000:.1f} ms measured")
        print(profiler.output_text(unicode=False, color=False, show_all=False))
        variant.engine.dispose()
    return 0
