"""W8: what the database guard costs, a guarded model against the same model unguarded.

Both variants are chrononaut with default Settings on fresh tables of their own
(``bench_unguarded`` and ``bench_guarded``, same columns and seed rows as the
others); only ``__chrononaut_database_guard__`` differs. The ratio is
guarded/unguarded, paired per repetition:

- ``W8 update``: W1's one-row ORM update + commit. The ORM sets ``version``,
  so the guard's UPDATE trigger is skipped by its ``WHEN`` clause.
- ``W8 batch``: W2's 1,000 loaded rows updated in one commit.
- ``W8 delete``: ``session.delete()`` of one row + commit; the deferred
  delete trigger runs at commit and finds chrononaut's deletion row.
- ``W8 raw``: a raw SQL ``UPDATE`` + ``COMMIT`` outside the ORM (psycopg2
  through SQLAlchemy's connection): unguarded, it writes no history; guarded,
  the trigger bumps ``version`` and writes the history row. This is what the
  guard costs a writer outside the ORM.
- ``W8 raw batch``: one raw ``UPDATE`` of 1,000 rows + ``COMMIT``, as a
  migration script would: the trigger's cost per row, with little round-trip
  noise.

Then ``EXPLAIN ANALYZE`` of 1,000-row statements on both tables (rolled back)
gives the cost inside the server, free of the client and of COMMIT's fsync:
a raw UPDATE (the trigger runs), an UPDATE that sets ``version`` as
chrononaut's writes do (only the trigger's ``WHEN`` clause runs), and a raw
DELETE with its deletion rows written at once (``SET CONSTRAINTS ALL
IMMEDIATE``).
"""

from __future__ import annotations

import itertools
import statistics
import time
from functools import partial
from typing import Any

from sqlalchemy.orm import DeclarativeBase, sessionmaker

from . import schema, workloads
from .measure import Entry, measure
from .variants import Variant, _engine, _model

UNGUARDED = "unguarded"
GUARDED = "guarded"


def make(url: str, guard: bool) -> Variant:
    import chrononaut

    class Base(DeclarativeBase):
        pass

    name = GUARDED if guard else UNGUARDED
    item = _model(
        Base,
        f"{name.title()}Item",
        f"bench_{name}",
        chrononaut.Versioned,
        __chrononaut_database_guard__=guard,
    )
    engine = _engine(url)
    factory = sessionmaker(engine)
    chrononaut.listen(factory)
    label = "chrononaut, database guard" if guard else "chrononaut, no database guard"
    return Variant(name, label, engine, factory, item, Base.metadata)


def deletes(variant: Variant, ids: Any, ops: int) -> float:
    """``ops`` times: load one row, ``session.delete()`` it, commit."""
    with variant.Session() as session:
        start = time.perf_counter()
        for _ in range(ops):
            session.delete(session.get(variant.Item, next(ids)))
            session.commit()
        return time.perf_counter() - start


def raw_updates(variant: Variant, ops: int) -> float:
    """``ops`` times: a raw SQL UPDATE of one row, then COMMIT."""
    sql = f"UPDATE {variant.table} SET counter = counter + 1 WHERE id = %s"
    with variant.engine.connect() as connection:
        cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        start = time.perf_counter()
        for row_id in range(1, ops + 1):
            cursor.execute(sql, (row_id,))
            connection.connection.dbapi_connection.commit()  # type: ignore[union-attr]
        elapsed = time.perf_counter() - start
        cursor.close()
        return elapsed


def raw_statements(variant: Variant, statements: int, rows: int = 1000) -> float:
    """``statements`` times: one raw SQL UPDATE of ``rows`` rows, then COMMIT."""
    sql = f"UPDATE {variant.table} SET counter = counter + 1 WHERE id <= %s"
    with variant.engine.connect() as connection:
        cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        start = time.perf_counter()
        for _ in range(statements):
            cursor.execute(sql, (rows,))
            connection.connection.dbapi_connection.commit()  # type: ignore[union-attr]
        elapsed = time.perf_counter() - start
        cursor.close()
        return elapsed


#: Statements EXPLAIN ANALYZE runs on both tables, each in a transaction rolled back.
_EXPLAINED = (
    ("raw UPDATE of 1,000 rows", "UPDATE {table} SET counter = counter + 1 WHERE id <= 1000"),
    (
        "UPDATE of 1,000 rows setting version, as chrononaut's writes do",
        "UPDATE {table} SET counter = counter + 1, version = version + 1 WHERE id <= 1000",
    ),
    (
        "raw DELETE of 1,000 rows, deletion rows written at once",
        "SET CONSTRAINTS ALL IMMEDIATE; DELETE FROM {table} WHERE id <= 1000",
    ),
)


def _explain(connection: Any, sql: str) -> tuple[float, float, int]:
    """(execution ms, trigger ms, trigger calls) of ``sql``'s last statement, rolled back."""
    *before, last = sql.split("; ")
    for statement in before:
        connection.exec_driver_sql(statement)
    plan = connection.exec_driver_sql(f"EXPLAIN (ANALYZE, FORMAT JSON) {last}").scalar()[0]
    connection.rollback()
    triggers = plan.get("Triggers", [])
    return (
        plan["Execution Time"],
        sum(t["Time"] for t in triggers),
        sum(t["Calls"] for t in triggers),
    )


def server_side(variants: list[Variant], reps: int) -> list[str]:
    """The guard's cost inside the server, from EXPLAIN ANALYZE: median of ``reps``."""
    lines = ["W8  inside the server (EXPLAIN ANALYZE, median of each statement's runs):"]
    for title, sql in _EXPLAINED:
        cells = []
        for variant in variants:
            with variant.engine.connect() as connection:
                runs = [_explain(connection, sql.format(table=variant.table)) for _ in range(reps)]
            total = statistics.median(r[0] for r in runs)
            trigger = statistics.median(r[1] for r in runs)
            calls = runs[0][2]
            cells.append(
                f"{variant.name} {total:.2f} ms"
                + (f" (triggers {trigger:.2f} ms, {calls:,} calls)" if calls else "")
            )
        lines.append(f"    {title}: " + "; ".join(cells))
    return lines


def w8(run: Any) -> None:
    sizes = run.sizes
    variants = [make(run.url, guard=False), make(run.url, guard=True)]
    try:
        schema.reset(variants, sizes.seed_rows)
        with variants[1].engine.connect() as connection:
            found = connection.exec_driver_sql(
                "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'bench_guarded'::regclass "
                "AND NOT tgisinternal"
            ).scalar()
        if found != 2:
            raise AssertionError(f"W8: bench_guarded has {found} triggers, expected the guard's 2")
        _measure(run, variants)
    finally:
        for variant in variants:
            variant.engine.dispose()


def _measure(run: Any, variants: list[Variant]) -> None:
    sizes = run.sizes

    def entries(make_run: Any) -> list[Entry]:
        return [Entry(v.name, v.label, make_run(v)) for v in variants]

    def record(found: Any) -> None:
        found.baseline = UNGUARDED  # ratios are guarded/unguarded
        run.record(found)

    ops = sizes.w1_ops
    record(
        measure(
            "W8 update",
            "one-row ORM update + commit, guarded vs unguarded",
            entries(lambda v: partial(workloads.one_row_updates, v)),
            ops,
            10,
            run.reps,
            ops,
            "op",
        ),
    )
    rows, batches = sizes.batch_rows, sizes.w2_batches
    record(
        measure(
            "W8 batch",
            f"{rows:,} loaded rows updated in one commit, guarded vs unguarded",
            entries(lambda v: partial(workloads.batch_updates, v, rows=rows)),
            batches,
            1,
            run.reps,
            batches,
            "batch",
        ),
    )
    # Each variant deletes its rows from the top of the seeded range down.
    counters = {v.name: itertools.count(sizes.seed_rows, -1) for v in variants}
    ops = sizes.w5_ops
    record(
        measure(
            "W8 delete",
            "one-row ORM delete + commit, guarded vs unguarded",
            entries(lambda v: partial(deletes, v, counters[v.name])),
            ops,
            10,
            run.reps,
            ops,
            "op",
        ),
    )
    ops = sizes.w1_ops
    record(
        measure(
            "W8 raw",
            "raw SQL UPDATE + COMMIT outside the ORM (guarded: the trigger versions it)",
            entries(lambda v: partial(raw_updates, v)),
            ops,
            10,
            run.reps,
            ops,
            "op",
        ),
    )
    statements = 5 * sizes.w2_batches
    record(
        measure(
            "W8 raw batch",
            f"one raw SQL UPDATE of {rows:,} rows + COMMIT (guarded: {rows:,} history rows)",
            entries(lambda v: partial(raw_statements, v, rows=rows)),
            statements,
            1,
            run.reps,
            statements,
            "statement",
        ),
    )
    with variants[1].engine.connect() as connection:
        sources = connection.exec_driver_sql(
            "SELECT change_info->>'source', count(*) FROM bench_guarded_history GROUP BY 1 "
            "ORDER BY 1"
        ).all()
    run.out(server_side(variants, max(run.reps, 5)))
    run.out(
        "W8  bench_guarded_history rows by source: "
        + ", ".join(f"{source or 'chrononaut'} {count:,}" for source, count in sources)
    )
    run.out()
