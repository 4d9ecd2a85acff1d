"""``chrononaut.activity()`` at 2,000,000 history rows across 5 models.

A separate script, not one of ``python -m benchmarks``' workloads (it needs
no peers and takes a few minutes to fill)::

    python -m benchmarks.activity [--url URL] [--rows 2000000] [--calls 30]

It drops and recreates its own ``bench_feed_*`` tables (and empties
``chrononaut_creations``) in the database at ``--url`` (default
``$BENCH_DATABASE_URL``, else ``postgresql://postgres@127.0.0.1:5432/chrononaut_bench``),
fills five versioned models' history tables with ``INSERT ... SELECT
generate_series`` (each record 20 versions one minute apart, 50 users, one
transaction id per minute and model), gives each record a creation event,
runs ``VACUUM ANALYZE``, then times calls of :func:`chrononaut.activity` in
fresh sessions whose connection is already open, and prints the median and
the worst of ``--calls`` calls per query, and the plan of the first page.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from datetime import datetime, timedelta, timezone
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, sessionmaker

import chrononaut
from chrononaut.versioning.activity import _Filters
from chrononaut.versioning.activity_sql import compiled

MODELS = 5
VERSIONS = 20
USERS = 50
EPOCH = datetime(2024, 1, 1, tzinfo=timezone.utc)
DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/chrononaut_bench"


class Base(DeclarativeBase):
    pass


def _model(index: int) -> type[Any]:
    return type(
        f"BenchFeed{index}",
        (Base, chrononaut.Versioned),
        {
            "__tablename__": f"bench_feed_{index}",
            "__annotations__": {"id": Mapped[int], "title": Mapped[str], "counter": Mapped[int]},
            "id": mapped_column(primary_key=True),
            "title": mapped_column(),
            "counter": mapped_column(),
        },
    )


FEED_MODELS = [_model(i) for i in range(MODELS)]

_HISTORY = """
INSERT INTO {history} (id, title, counter, version, changed, change_info, transaction_id)
SELECT r, 'title ' || v, v, v, ts,
       jsonb_build_object('user_id', 'user' || mod(r + v, {users}), 'remote_addr', NULL),
       {model} * 100000000 + (r / 50) * {versions} + v
FROM generate_series(1, %(records)s) AS r,
     generate_series(0, {versions} - 1) AS v,
     LATERAL (SELECT timestamptz '{epoch}' + (r / 50 * {versions} + v) * interval '1 minute'
              + {model} * interval '1 second' + mod(r, 50) * interval '1 millisecond') AS t (ts)
"""
_RECORDS = """
INSERT INTO {table} (id, title, counter, version)
SELECT r, 'title', {versions}, {versions} FROM generate_series(1, %(records)s) AS r
"""
_CREATIONS = """
INSERT INTO chrononaut_creations
    (table_name, record_keys, key_span, version, changed, change_info, transaction_id)
SELECT '{table}', ARRAY['[' || r || ']'], int8range(r, r, '[]'), 0,
       timestamptz '{epoch}' + (r / 50 * {versions}) * interval '1 minute'
       - interval '30 seconds' + mod(r, 50) * interval '1 millisecond',
       jsonb_build_object('user_id', 'user' || mod(r, {users}), 'remote_addr', NULL),
       {model} * 100000000 + (r / 50) * {versions}
FROM generate_series(1, %(records)s) AS r
"""


def fill(engine: sa.Engine, rows: int) -> None:
    records = rows // MODELS // VERSIONS
    Base.metadata.drop_all(engine)
    Base.metadata.create_all(engine)
    started = time.perf_counter()
    with engine.begin() as connection:
        for index, cls in enumerate(FEED_MODELS):
            names = {
                "history": cls.__chrononaut__.history_table.name,
                "table": cls.__table__.name,
                "model": index + 1,
                "users": USERS,
                "versions": VERSIONS,
                "epoch": EPOCH.isoformat(),
            }
            params = {"records": records}
            connection.exec_driver_sql(_HISTORY.format(**names), params)
            connection.exec_driver_sql(_RECORDS.format(**names), params)
            connection.exec_driver_sql(_CREATIONS.format(**names), params)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        for cls in FEED_MODELS:
            connection.exec_driver_sql(f"VACUUM ANALYZE {cls.__chrononaut__.history_table.name}")
            connection.exec_driver_sql(f"VACUUM ANALYZE {cls.__table__.name}")
        connection.exec_driver_sql("VACUUM ANALYZE chrononaut_creations")
        total = sum(
            connection.scalar(sa.text(f"SELECT count(*) FROM {c.__chrononaut__.history_table}"))
            for c in FEED_MODELS
        )
        creations = connection.scalar(sa.text("SELECT count(*) FROM chrononaut_creations"))
    elapsed = time.perf_counter() - started
    print(f"filled {total:,} history rows and {creations:,} creation events in {elapsed:.0f} s")


def _time(factory: Any, calls: int, **kwargs: Any) -> tuple[float, float, int]:
    times = []
    found = 0
    for _ in range(calls):
        with factory() as session:
            session.connection()
            started = time.perf_counter()
            found = len(chrononaut.activity(session, models=FEED_MODELS, **kwargs))
            times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000, max(times) * 1000, found


def measure(engine: sa.Engine, calls: int) -> None:
    factory = sessionmaker(engine)
    chrononaut.listen(factory)
    with factory() as session:
        first = chrononaut.activity(session, models=FEED_MODELS)
        deep = first[-1].cursor
        for _ in range(49):  # 50 pages of 100 in
            deep = chrononaut.activity(session, models=FEED_MODELS, before=deep)[-1].cursor
        newest = first[0].changed
        middle = EPOCH + (newest - EPOCH) / 2
        transaction = chrononaut.activity(session, models=FEED_MODELS, until=middle, limit=1)
    cases = [
        ("first page, limit 100", {}),
        ("page 51 (before= the cursor of entry 5,000)", {"before": deep}),
        ("limit 1000", {"limit": 1000}),
        ("user_id='user7' (one user in 50)", {"user_id": "user7"}),
        ("since 1 hour before the newest change", {"since": newest - timedelta(hours=1)}),
        ("until halfway through the history", {"until": middle}),
        ("transaction_id of one changeset", {"transaction_id": transaction[0].transaction_id}),
    ]
    print(f"{'query':<48} {'median':>10} {'worst':>10} {'entries':>8}")
    for label, kwargs in cases:
        median, worst, found = _time(factory, calls, **kwargs)
        print(f"{label:<48} {median:>8.2f}ms {worst:>8.2f}ms {found:>8}")
    with engine.connect() as connection:
        hierarchies = tuple((cls, (cls,)) for cls in FEED_MODELS)
        filters = _Filters(None, None, None, None, 100, None)
        statement, constants = compiled(hierarchies, filters.shape())
        explain = sa.text(f"EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) {statement.text}")
        plan = connection.execute(explain, {**constants, **filters.values()})
        lines = [row[0] for row in plan]
    print("plan of the first page (excerpt):")
    for line in lines:
        if "Index" in line or "Execution" in line or "Planning" in line:
            print("   ", line.strip())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.activity")
    parser.add_argument("--url", default=os.environ.get("BENCH_DATABASE_URL") or DEFAULT_URL)
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--calls", type=int, default=30)
    parser.add_argument("--no-fill", action="store_true", help="reuse the last run's tables")
    args = parser.parse_args(argv)
    engine = sa.create_engine(args.url)
    try:
        if not args.no_fill:
            fill(engine, args.rows)
        measure(engine, args.calls)
    finally:
        engine.dispose()


if __name__ == "__main__":
    main()
