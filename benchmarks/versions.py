"""W4: reading history, ``versions()`` and ``version_at()``, as history grows.

The history is written straight into the history tables with ``INSERT ...
SELECT generate_series``: record ``RECORD_ID`` gets 1,000 versions, and more
records of 1,000 versions each fill the table to the size wanted (their rows
have short bodies to keep the tables small; the measured record's rows look
like the plain table's rows it is compared with).
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from .schema import HISTORY_TABLES
from .variants import CHRONONAUT, CONTINUUM, Variant

#: The measured record; history records are RECORD_ID, RECORD_ID + 1, ...
RECORD_ID = 1_000_001
VERSIONS = 1000
#: ``changed`` of version v is EPOCH + v minutes.
EPOCH = datetime(2024, 1, 1, tzinfo=timezone.utc)
#: version_at() asks for the middle of the record's history.
AT = EPOCH + timedelta(minutes=VERSIONS // 2, seconds=30)

_BODY = "CASE WHEN r = 0 THEN repeat('body text ', 20) || v ELSE 'b' END"
_CHRONONAUT_FILL = f"""
INSERT INTO bench_chrononaut_history
    (id, title, body, counter, updated, version, changed, change_info)
SELECT {RECORD_ID} + r, 'title ' || v, {_BODY}, v, ts, v, ts,
       '{{"user_id": null, "remote_addr": null}}'::jsonb
FROM generate_series(CAST(%(first)s AS integer), CAST(%(last)s AS integer)) AS r,
     generate_series(0, {VERSIONS - 1}) AS v,
     LATERAL (SELECT timestamptz '{EPOCH.isoformat()}' + v * interval '1 minute') AS t (ts)
"""
_CONTINUUM_FILL = f"""
INSERT INTO bench_continuum_version
    (id, title, body, counter, updated, transaction_id, end_transaction_id, operation_type)
SELECT {RECORD_ID} + r, 'title ' || v, {_BODY}, v,
       timestamptz '{EPOCH.isoformat()}' + v * interval '1 minute',
       1000000000 + r * {VERSIONS} + v,
       CASE WHEN v < {VERSIONS - 1} THEN 1000000000 + r * {VERSIONS} + v + 1 END,
       CASE WHEN v = 0 THEN 0 ELSE 1 END
FROM generate_series(CAST(%(first)s AS integer), CAST(%(last)s AS integer)) AS r,
     generate_series(0, {VERSIONS - 1}) AS v
"""
_RECORD = (
    "INSERT INTO {table} (id, title, body, counter, updated{extra_columns}) "
    "VALUES (%(id)s, 'title', repeat('body text ', 20), 0, now(){extra_values})"
)


def grow_history(variant: Variant, target_rows: int) -> int:
    """Add records of 1,000 versions until the history table holds about ``target_rows``
    rows (earlier workloads' rows count); returns the row count."""
    table = HISTORY_TABLES[variant.name]
    fill = {CHRONONAUT: _CHRONONAUT_FILL, CONTINUUM: _CONTINUUM_FILL}[variant.name]
    with variant.engine.begin() as connection:
        rows, built = connection.exec_driver_sql(
            f"SELECT count(*), count(DISTINCT id) FILTER (WHERE id >= {RECORD_ID}) FROM {table}"
        ).one()
        if built == 0:
            extra = (", version", f", {VERSIONS}") if variant.name == CHRONONAUT else ("", "")
            sql = _RECORD.format(
                table=variant.table, extra_columns=extra[0], extra_values=extra[1]
            )
            connection.exec_driver_sql(sql, {"id": RECORD_ID})
        new = max(1 if built == 0 else 0, -(-(target_rows - rows) // VERSIONS))  # ceiling
        if new:
            connection.exec_driver_sql(fill, {"first": built, "last": built + new - 1})
    with variant.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.exec_driver_sql(f"VACUUM ANALYZE {table}")
        return connection.exec_driver_sql(f"SELECT count(*) FROM {table}").scalar()


def _timed(variant: Variant, calls: int, warm_id: int, call) -> float:
    """Sum of ``calls`` timings of ``call(session, record)``, each in a fresh session.

    The session first loads a record (untimed), so every timed call runs on an
    open connection and transaction, the same for every variant.
    """
    elapsed = 0.0
    for _ in range(calls):
        with variant.Session() as session:
            record = session.get(variant.Item, warm_id)
            start = time.perf_counter()
            result = call(session, record)
            elapsed += time.perf_counter() - start
            if result is None:
                raise AssertionError(f"{variant.label}: the measured read returned nothing")
    return elapsed


def plain_load(variant: Variant, calls: int) -> float:
    """Load 1,000 rows of the plain table, ordered by primary key."""
    item = variant.Item
    query = sa.select(item).where(item.id <= VERSIONS).order_by(item.id)

    def call(session, record):
        rows = session.scalars(query).all()
        assert len(rows) == VERSIONS
        return rows

    return _timed(variant, calls, VERSIONS + 1, call)


def plain_get(variant: Variant, calls: int) -> float:
    """Get one row by primary key (not yet in the session)."""
    return _timed(variant, calls, 1, lambda session, _: session.get(variant.Item, 2))


def chrononaut_versions(variant: Variant, calls: int) -> float:
    def call(session, record):
        rows = record.versions()
        assert len(rows) == VERSIONS
        return rows

    return _timed(variant, calls, RECORD_ID, call)


def chrononaut_version_at(variant: Variant, calls: int) -> float:
    return _timed(variant, calls, RECORD_ID, lambda session, record: record.version_at(AT))


def continuum_versions(variant: Variant, calls: int) -> float:
    def call(session, record):
        rows = record.versions.all()
        assert len(rows) == VERSIONS
        return rows

    return _timed(variant, calls, RECORD_ID, call)


def explain(variant: Variant) -> list[str]:
    """EXPLAIN ANALYZE of chrononaut's versions() and version_at() queries."""
    out = []
    with variant.Session() as session:
        record = session.get(variant.Item, RECORD_ID)
        queries = {
            "versions()": record.versions(return_query=True),
            "version_at()": record.versions(after=AT, return_query=True).limit(1),
        }
        for name, query in queries.items():
            sql = query.statement.compile(
                dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}
            )
            plan = session.execute(sa.text(f"EXPLAIN (ANALYZE, COSTS OFF) {sql}")).scalars()
            out.append(f"{name}: {' '.join(str(sql).split())}")
            out.extend(f"    {line}" for line in plan)
    return out
