"""``python -m benchmarks.prune [--url URL] [--records N] [--versions M]``: prune() at scale.

Fills a history table with ``records * versions`` rows (2,000,000 by default:
20,000 records of 100 versions, one week apart, the newest a week ago; 1% of
the records deleted, their deletion row last) straight with ``INSERT ... SELECT
generate_series``, then times ``prune(older_than=365 days, keep_last=50)``:
first as a dry run, then for real. It prints the rows counted and deleted, the
wall time, the number of batches and the longest one (the longest any row lock
is held), and the Python process's peak memory (``tracemalloc`` peak, and the
growth of ``ru_maxrss``). Its tables live in the schema ``bench_prune``, which
it drops and recreates. Not part of ``python -m benchmarks``; never imported by
the library.
"""

from __future__ import annotations

import argparse
import itertools
import os
import resource
import time
import tracemalloc
from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, sessionmaker

import chrononaut
from chrononaut import Versioned

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/chrononaut_bench"
SCHEMA = "bench_prune"


class Base(DeclarativeBase):
    pass


class PruneDoc(Base, Versioned):
    __tablename__ = "prune_doc"
    __table_args__ = {"schema": SCHEMA}
    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(sa.String(80))
    body: Mapped[str] = mapped_column(sa.Text)


FILL = """
INSERT INTO {schema}.prune_doc_history (id, title, body, version, changed, change_info)
SELECT r, 'title ' || r, repeat('x', 100), v,
       now() - ((:versions - v) * interval '7 days'),
       CASE WHEN v = :versions - 1 AND r % 100 = 0
            THEN '{{"user_id": "bench", "deleted": true}}'::jsonb
            ELSE '{{"user_id": "bench", "remote_addr": "127.0.0.1"}}'::jsonb END
FROM generate_series(1, :records) AS r, generate_series(0, :versions - 1) AS v
"""
LIVE = """
INSERT INTO {schema}.prune_doc (id, title, body, version)
SELECT r, 'title ' || r, repeat('x', 100), :versions
FROM generate_series(1, :records) AS r WHERE r % 100 <> 0
"""


def fill(engine: sa.Engine, records: int, versions: int) -> float:
    started = time.perf_counter()
    with engine.begin() as connection:
        connection.exec_driver_sql(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
        connection.exec_driver_sql(f"CREATE SCHEMA {SCHEMA}")
    Base.metadata.create_all(engine)
    params = {"records": records, "versions": versions}
    with engine.begin() as connection:
        connection.execute(sa.text(FILL.format(schema=SCHEMA)), params)
        connection.execute(sa.text(LIVE.format(schema=SCHEMA)), params)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.exec_driver_sql(f"VACUUM ANALYZE {SCHEMA}.prune_doc_history")
    return time.perf_counter() - started


def history_rows(engine: sa.Engine) -> int:
    with engine.connect() as connection:
        return connection.execute(
            sa.text(f"SELECT count(*) FROM {SCHEMA}.prune_doc_history")
        ).scalar_one()


def timed_prune(engine: sa.Engine, dry_run: bool, batch_size: int) -> dict[str, float]:
    commits: list[float] = []
    sa.event.listen(engine, "commit", lambda conn: commits.append(time.perf_counter()))
    factory = sessionmaker(engine)
    chrononaut.listen(factory)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    tracemalloc.start()
    started = time.perf_counter()
    with factory() as session:
        counts = chrononaut.prune(
            session,
            [PruneDoc],
            older_than=timedelta(days=365),
            keep_last=50,
            batch_size=batch_size,
            dry_run=dry_run,
        )
    elapsed = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    marks = [started, *commits]
    longest = max(b - a for a, b in itertools.pairwise(marks)) if commits else 0.0
    return {
        "rows": counts[PruneDoc],
        "seconds": elapsed,
        "batches": len(commits) - 1,  # the first commit ends the has_table check
        "longest_batch_ms": longest * 1000,
        "tracemalloc_peak_mib": peak / 2**20,
        "maxrss_growth_mib": (rss_after - rss_before) / 1024,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.prune", description=__doc__)
    parser.add_argument("--url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL))
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--versions", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=10_000)
    args = parser.parse_args(argv)
    engine = sa.create_engine(args.url)
    try:
        seconds = fill(engine, args.records, args.versions)
        total = history_rows(engine)
        print(f"filled {total:,} history rows in {seconds:.1f} s")
        for dry_run in (True, False):
            result = timed_prune(engine, dry_run, args.batch_size)
            label = "dry run" if dry_run else "prune"
            print(
                f"{label}: {result['rows']:,} rows in {result['seconds']:.1f} s, "
                f"{result['batches']} batches of at most {args.batch_size:,} rows read, "
                f"longest batch {result['longest_batch_ms']:.0f} ms, tracemalloc peak "
                f"{result['tracemalloc_peak_mib']:.1f} MiB, ru_maxrss growth "
                f"{result['maxrss_growth_mib']:.1f} MiB"
            )
        print(f"left: {history_rows(engine):,} history rows")
    finally:
        engine.dispose()


if __name__ == "__main__":
    main()
