"""Create the variants' tables afresh and fill them with the same rows."""

from __future__ import annotations

import sqlalchemy as sa

from .variants import AUDIT, AUDIT_SCHEMA, CHRONONAUT, CONTINUUM, Variant

#: The rows every variant's table starts with; ids are 1..n.
SEED_SQL = (
    "INSERT INTO {table} (title, body, counter, updated) "
    "SELECT 'title ' || g, repeat('body text ', 20) || g, 0, now() "
    "FROM generate_series(1, {rows}) AS g"
)


def _create(variant: Variant, connection: sa.Connection) -> None:
    # PostgreSQL-Audit's activity table creates the function its item table's trigger
    # calls: create its schema's tables first.
    tables = variant.metadata.sorted_tables
    for group in ([t for t in tables if t.schema], [t for t in tables if not t.schema]):
        variant.metadata.create_all(connection, tables=group)


def reset(variants: list[Variant], rows: int) -> None:
    """Drop and create every variant's tables, then seed ``rows`` rows in each."""
    for variant in variants:
        with variant.engine.begin() as connection:
            if variant.name == AUDIT:
                connection.exec_driver_sql(f"DROP SCHEMA IF EXISTS {AUDIT_SCHEMA} CASCADE")
            for table in reversed(variant.metadata.sorted_tables):
                if table.schema is None:
                    connection.exec_driver_sql(f'DROP TABLE IF EXISTS "{table.name}" CASCADE')
        with variant.engine.begin() as connection:
            _create(variant, connection)
        seed(variant, rows)


def seed(variant: Variant, rows: int) -> None:
    with variant.engine.begin() as connection:
        if variant.seed_prefix:
            connection.exec_driver_sql(variant.seed_prefix)
        connection.exec_driver_sql(SEED_SQL.format(table=variant.table, rows=rows))
    with variant.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.exec_driver_sql(f"VACUUM ANALYZE {variant.table}")


#: Where each versioning variant writes its history.
HISTORY_TABLES = {
    CHRONONAUT: "bench_chrononaut_history",
    CONTINUUM: "bench_continuum_version",
    AUDIT: f"{AUDIT_SCHEMA}.activity",
}


def history_counts(variants: list[Variant]) -> dict[str, int]:
    """Rows in each variant's history table: proof that every peer really versioned."""
    counts = {}
    for variant in variants:
        table = HISTORY_TABLES.get(variant.name)
        if table is not None:
            with variant.engine.connect() as connection:
                count = connection.exec_driver_sql(f"SELECT count(*) FROM {table}").scalar()
            counts[variant.label] = count
    return counts
