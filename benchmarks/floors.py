"""Raw psycopg2 floors: the least a client can send for W1 and W2, written by hand.

One-row UPDATE + COMMIT; the same plus a history INSERT; and both for 1,000
rows (one ``UPDATE ... FROM (VALUES ...)`` and one multi-row INSERT). They
show how close an ORM-level library can get to the limit.
"""

from __future__ import annotations

import itertools
import time
from datetime import datetime, timezone

import psycopg2
import psycopg2.extras
import sqlalchemy as sa

from .schema import SEED_SQL

TABLE = "bench_floor"
HISTORY = "bench_floor_history"

_DDL = f"""
DROP TABLE IF EXISTS {TABLE}, {HISTORY};
CREATE TABLE {TABLE} (
    id serial PRIMARY KEY, title varchar(80) NOT NULL, body text NOT NULL,
    counter integer NOT NULL, updated timestamptz NOT NULL
);
CREATE TABLE {HISTORY} (
    id integer NOT NULL, title varchar(80), body text, counter integer,
    updated timestamptz, version integer NOT NULL, changed timestamptz NOT NULL,
    change_info jsonb NOT NULL, PRIMARY KEY (id, version)
);
"""
_UPDATE = f"UPDATE {TABLE} SET counter = counter + 1, updated = %s WHERE id = %s"
_INSERT = (
    f"INSERT INTO {HISTORY} (id, title, body, counter, updated, version, changed, change_info) "
    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
)
_UPDATE_MANY = (
    f"UPDATE {TABLE} AS t SET counter = v.counter, updated = v.updated "
    "FROM (VALUES %s) AS v (id, counter, updated) WHERE t.id = v.id"
)
_INSERT_MANY = (
    f"INSERT INTO {HISTORY} (id, title, body, counter, updated, version, changed, change_info) "
    "VALUES %s"
)
_CHANGE_INFO = '{"user_id": null, "remote_addr": null}'


class Floors:
    """A psycopg2 connection and the floor measurements; ``setup()`` first."""

    def __init__(self, url: str) -> None:
        args = sa.engine.make_url(url).translate_connect_args(username="user", database="dbname")
        self.connection = psycopg2.connect(**args)
        self._versions = itertools.count()

    def setup(self, rows: int) -> None:
        with self.connection.cursor() as cursor:
            cursor.execute(_DDL)
            cursor.execute(SEED_SQL.format(table=TABLE, rows=rows))
        self.connection.commit()

    def close(self) -> None:
        self.connection.close()

    def _history_row(self, row_id: int, now: datetime) -> tuple:
        return (row_id, "title", "body", 0, now, next(self._versions), now, _CHANGE_INFO)

    def one_row(self, ops: int, history: bool = False) -> float:
        """``ops`` times: UPDATE one row (and INSERT its history row), COMMIT."""
        cursor = self.connection.cursor()
        start = time.perf_counter()
        for row_id in range(1, ops + 1):
            now = datetime.now(timezone.utc)
            cursor.execute(_UPDATE, (now, row_id))
            if history:
                cursor.execute(_INSERT, self._history_row(row_id, now))
            self.connection.commit()
        elapsed = time.perf_counter() - start
        cursor.close()
        return elapsed

    def many_rows(self, batches: int, rows: int = 1000, history: bool = False) -> float:
        """``batches`` times: UPDATE ``rows`` rows in one statement (and INSERT their
        history in another), COMMIT."""
        cursor = self.connection.cursor()
        elapsed = 0.0
        for batch in range(batches):
            start = time.perf_counter()
            now = datetime.now(timezone.utc)
            values = [(row_id, batch, now) for row_id in range(1, rows + 1)]
            psycopg2.extras.execute_values(cursor, _UPDATE_MANY, values, page_size=rows)
            if history:
                history_rows = [self._history_row(row_id, now) for row_id in range(1, rows + 1)]
                psycopg2.extras.execute_values(cursor, _INSERT_MANY, history_rows, page_size=rows)
            self.connection.commit()
            elapsed += time.perf_counter() - start
        cursor.close()
        return elapsed
