"""Run the workloads W1..W7 on every variant and print the report."""

from __future__ import annotations

import statistics
import sys
import time
from dataclasses import dataclass, field
from functools import partial

import sqlalchemy as sa

from . import features, guard, memory, procs, report, schema, targets, versions, workloads
from .floors import Floors
from .measure import Entry, Measured, measure
from .sizes import FULL, QUICK, Sizes
from .variants import AUDIT, CHRONONAUT, CONTINUUM, PLAIN, Variant, make_all

PEERS = (CONTINUUM, AUDIT)
NO_LOCK_API = "no record lock API"


@dataclass
class Run:
    url: str
    sizes: Sizes
    reps: int
    variants: dict[str, Variant]
    floors: Floors
    results: dict[str, Measured]
    profiles: dict[str, memory.MemoryProfile] = field(default_factory=dict)

    def out(self, lines: list[str] | str = "") -> None:
        for line in [lines] if isinstance(lines, str) else lines:
            print(line, flush=True)

    def missing(self, reason: str | None = None, keys: tuple[str, ...] = PEERS) -> dict:
        out = {}
        for key in keys:
            variant = self.variants[key]
            out[variant.label] = variant.unavailable or reason
        return {label: why for label, why in out.items() if why}

    def runnable(self, keys: tuple[str, ...] = (PLAIN, CHRONONAUT, *PEERS)) -> list[Variant]:
        return [self.variants[k] for k in keys if not self.variants[k].unavailable]

    def record(self, result: Measured) -> None:
        self.results[result.name] = result
        self.out(report.table(result))
        self.out()


def w1(run: Run) -> None:
    entries = [
        Entry(v.name, v.label, partial(workloads.one_row_updates, v)) for v in run.runnable()
    ]
    entries += [
        Entry("floor", "floor: psycopg2 UPDATE+COMMIT", run.floors.one_row),
        Entry(
            "floor+history",
            "floor: psycopg2 UPDATE+history INSERT+COMMIT",
            partial(run.floors.one_row, history=True),
        ),
    ]
    ops = run.sizes.w1_ops
    title = "one-row update + commit (get by id, change, commit)"
    run.record(measure("W1", title, entries, ops, 10, run.reps, ops, "op", run.missing()))


def w2(run: Run) -> None:
    rows = run.sizes.batch_rows
    entries = [
        Entry(v.name, v.label, partial(workloads.batch_updates, v, rows=rows))
        for v in run.runnable()
    ]
    entries += [
        Entry(
            "floor",
            "floor: psycopg2 UPDATE..FROM VALUES+COMMIT",
            partial(run.floors.many_rows, rows=rows),
        ),
        Entry(
            "floor+history",
            "floor: same + multi-row history INSERT",
            partial(run.floors.many_rows, rows=rows, history=True),
        ),
    ]
    batches = run.sizes.w2_batches
    title = f"{rows:,} loaded rows updated in one commit (change + commit timed)"
    result = measure("W2", title, entries, batches, 1, run.reps, batches, "batch", run.missing())
    run.record(result)


def w3(run: Run) -> None:
    rows = run.sizes.batch_rows
    entries = [
        Entry(v.name, v.label, partial(workloads.batch_inserts, v, rows=rows))
        for v in run.runnable()
    ]
    batches = run.sizes.w3_batches
    title = f"{rows:,} inserts in one commit"
    result = measure("W3", title, entries, batches, 1, run.reps, batches, "batch", run.missing())
    run.record(result)


def w4(run: Run) -> None:
    plain, chron = run.variants[PLAIN], run.variants[CHRONONAUT]
    growing = [chron, *run.runnable((CONTINUUM,))]
    audit_missing = run.missing(
        "no per-record history API (activity rows keyed by JSONB)", (AUDIT,)
    )
    for target in run.sizes.w4_history_rows:
        started = time.perf_counter()
        counts = {v.label: versions.grow_history(v, target) for v in growing}
        built = ", ".join(f"{label} {rows:,}" for label, rows in counts.items())
        run.out(
            f"W4  history rows: {built} (built in {time.perf_counter() - started:.1f} s "
            "with INSERT ... SELECT generate_series)"
        )
        run.out(versions.explain(chron))
        run.out()
        label = f"{target / 1e6:g}M" if target >= 1e6 else f"{target // 1000}k"
        calls = run.sizes.w4_list_calls
        entries = [
            Entry(PLAIN, "plain: load 1,000 rows", partial(versions.plain_load, plain)),
            Entry(
                CHRONONAUT, "chrononaut: versions()", partial(versions.chrononaut_versions, chron)
            ),
        ]
        if not run.variants[CONTINUUM].unavailable:
            entries.append(
                Entry(
                    CONTINUUM,
                    "Continuum: record.versions.all()",
                    partial(versions.continuum_versions, run.variants[CONTINUUM]),
                )
            )
        title = f"versions() of a record with 1,000 versions, {label} history rows"
        run.record(
            measure(
                f"W4 versions {label}",
                title,
                entries,
                calls,
                1,
                run.reps,
                calls,
                "call",
                audit_missing,
            )
        )
        calls = run.sizes.w4_get_calls
        entries = [
            Entry(PLAIN, "plain: get by primary key", partial(versions.plain_get, plain)),
            Entry(
                CHRONONAUT,
                "chrononaut: version_at()",
                partial(versions.chrononaut_version_at, chron),
            ),
        ]
        missing = run.missing("no point-in-time API", (CONTINUUM,)) | audit_missing
        title = f"version_at() of that record, {label} history rows"
        run.record(
            measure(
                f"W4 version_at {label}",
                title,
                entries,
                calls,
                5,
                run.reps,
                calls,
                "call",
                missing,
            )
        )


def w5(run: Run) -> None:
    plain, chron = run.variants[PLAIN], run.variants[CHRONONAUT]
    entries = [
        Entry(PLAIN, plain.label, partial(workloads.one_row_updates, plain)),
        Entry(
            CHRONONAUT, "chrononaut: with item.lock()", partial(workloads.locked_updates, chron)
        ),
        Entry(
            "for update",
            "plain: get(with_for_update=True) (reference)",
            partial(workloads.for_update_updates, plain),
        ),
    ]
    ops = run.sizes.w5_ops
    title = "lock(), edit, commit vs plain get, edit, commit"
    run.record(
        measure("W5", title, entries, ops, 10, run.reps, ops, "op", run.missing(NO_LOCK_API))
    )


def _counters(variant: Variant, records: tuple[int, ...]) -> int:
    with variant.engine.connect() as connection:
        query = sa.select(sa.func.sum(variant.Item.counter)).where(variant.Item.id.in_(records))
        return connection.execute(query).scalar()


def w6(run: Run) -> None:
    chron = run.variants[CHRONONAUT]
    started = time.perf_counter()
    pool = procs.Pool(run.url)
    pool.wait_ready()
    run.out(
        f"W6  {procs.WORKERS} worker processes started in {time.perf_counter() - started:.1f} s"
    )
    try:
        for name, records in (("one record", (1,)), ("100 records", tuple(range(1, 101)))):
            before = _counters(chron, records)
            entries = [
                Entry(PLAIN, "1 process alone", partial(pool.run, records, workers=1)),
                Entry(
                    "4 processes",
                    f"{procs.WORKERS} processes",
                    partial(pool.run, records, workers=procs.WORKERS),
                ),
            ]
            ops = run.sizes.w6_ops
            title = f"increments under lock(), {name} (time for the same total work)"
            result = measure(
                f"W6 {name}",
                title,
                entries,
                ops,
                8,
                run.reps,
                ops,
                "increment",
                run.missing(NO_LOCK_API),
            )
            result.labels[PLAIN] = "1 process alone"
            done = _counters(chron, records) - before
            expected = 2 * (run.reps * ops + 8)  # two entries, each warmed up with 8
            if done != expected:
                raise AssertionError(f"W6 {name}: {done} increments counted, {expected} made")
            run.record(result)
            speedup = [1 / r for r in result.ratios("4 processes")]
            alone = ops / result.median(PLAIN)
            together = ops / result.median("4 processes")
            run.out(
                f"    throughput: 1 process {alone:,.0f}/s, {procs.WORKERS} processes "
                f"{together:,.0f}/s; paired ratio {statistics.median(speedup):.2f}x "
                f"[{min(speedup):.2f}..{max(speedup):.2f}]; all {done:,} increments counted"
            )
            run.out()
    finally:
        pool.close()


def w7(run: Run) -> None:
    chunk = run.sizes.w7_chunk
    run.out(
        f"W7  peak memory (tracemalloc) per chunk while flushing updates in chunks of "
        f"{chunk:,}, one transaction"
    )
    run.out(
        f"    {'variant':<32} {'updates':>8} {'chunk 1':>9} {'chunk 2':>9} {'last':>9} "
        f"{'max':>9} {'growth':>7} {'held after last':>16}"
    )
    for variant in run.runnable():
        updates = run.sizes.w7_updates.get(variant.name)
        if updates is None:
            run.out(f"    {variant.label:<32} not run: too slow for this run's time budget")
            continue
        profile = memory.chunked_updates(variant, updates, chunk)
        run.profiles[variant.name] = profile
        mib = [f"{b / 2**20:.2f}MB" for b in (*profile.peaks[:2], profile.peaks[-1])]
        run.out(
            f"    {variant.label:<32} {updates:>8,} {mib[0]:>9} {mib[1]:>9} {mib[2]:>9} "
            f"{max(profile.peaks) / 2**20:>7.2f}MB {profile.growth:>6.2f}x "
            f"{profile.held[-1] / 2**20:>14.2f}MB"
        )
    for label, reason in run.missing().items():
        run.out(f"    {label:<32} not run: {reason}")
    run.out(
        "    growth: median peak of the last tenth of the chunks over that of the first "
        "tenth after chunk 1; flat means <= 1.10x"
    )
    run.out()


WORKLOADS = {
    "W1": w1,
    "W2": w2,
    "W3": w3,
    "W4": w4,
    "W5": w5,
    "W6": w6,
    "W7": w7,
    "W8": guard.w8,
    "W9": features.w9,
}


def main(url: str, quick: bool, only: list[str], reps: int) -> int:
    sizes = QUICK if quick else FULL
    started = time.perf_counter()
    variants = {v.name: v for v in make_all(url)}
    plain = variants[PLAIN]
    run = Run(url, sizes, reps, variants, Floors(url), {})
    run.out(f"chrononaut benchmarks ({'quick' if quick else 'full'} run)")
    run.out(report.machine(plain.engine))
    run.out()
    run.out("variants:")
    for variant in variants.values():
        status = f"NOT RUN: {variant.unavailable}" if variant.unavailable else variant.note
        run.out(f"    {variant.label}: {status}")
    run.out()
    schema.reset(run.runnable(), sizes.seed_rows)
    run.floors.setup(sizes.seed_rows)
    try:
        for name in only:
            workload_started = time.perf_counter()
            WORKLOADS[name](run)
            run.out(f"({name} took {time.perf_counter() - workload_started:.1f} s)")
            run.out()
        counts = schema.history_counts(run.runnable())
        run.out("history rows at the end: " + ", ".join(f"{k} {v:,}" for k, v in counts.items()))
        run.out()
    finally:
        run.floors.close()
        for variant in run.runnable():
            variant.engine.dispose()
    run.out(targets.summary(run))
    run.out(f"total time {time.perf_counter() - started:.0f} s; at the end, {report.load()}")
    run.out(targets.last_line(run.results))
    sys.stdout.flush()
    return 0
