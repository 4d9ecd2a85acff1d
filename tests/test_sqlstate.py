"""chrononaut.sqlstate reads the SQLSTATE of real PostgreSQL errors from every driver.

Each driver gets the same errors from the test database: PostgreSQL raises
them with a chosen SQLSTATE (``RAISE ... USING ERRCODE``) and for real (a
duplicate key), and the helper must read the same code from psycopg2's
``pgcode``, psycopg 3's ``sqlstate`` and asyncpg's error as SQLAlchemy wraps it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from chrononaut import sqlstate as codes
from chrononaut.sqlstate import sqlstate

RAISED = [
    codes.LOCK_NOT_AVAILABLE,
    codes.DEADLOCK_DETECTED,
    codes.SERIALIZATION_FAILURE,
    codes.QUERY_CANCELED,
    "P0001",
]


def _raise_sql(code: str) -> str:
    return f"DO $$ BEGIN RAISE EXCEPTION 'chrononaut test' USING ERRCODE = '{code}'; END $$"


def _url(database_url: str, driver: str) -> sa.URL:
    return sa.make_url(database_url).set(drivername=f"postgresql+{driver}")


def _sync_errors(url: sa.URL) -> list[sa.exc.DBAPIError]:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    errors = []
    try:
        for sql in [_raise_sql(code) for code in RAISED] + ["SELECT 1/0"]:
            with engine.connect() as connection:
                with pytest.raises(sa.exc.DBAPIError) as exc_info:
                    connection.exec_driver_sql(sql)
                errors.append(exc_info.value)
        with engine.begin() as connection:
            connection.exec_driver_sql("CREATE TABLE sqlstate_probe (id int PRIMARY KEY)")
            connection.exec_driver_sql("INSERT INTO sqlstate_probe VALUES (1)")
        with engine.connect() as connection:
            with pytest.raises(sa.exc.IntegrityError) as exc_info:
                connection.exec_driver_sql("INSERT INTO sqlstate_probe VALUES (1)")
            errors.append(exc_info.value)
    finally:
        engine.dispose()
    return errors


async def _async_errors(url: sa.URL) -> list[sa.exc.DBAPIError]:
    engine = create_async_engine(url, poolclass=sa.pool.NullPool)
    errors = []
    try:
        for sql in [_raise_sql(code) for code in RAISED] + ["SELECT 1/0"]:
            async with engine.connect() as connection:
                with pytest.raises(sa.exc.DBAPIError) as exc_info:
                    await connection.exec_driver_sql(sql)
                errors.append(exc_info.value)
        async with engine.begin() as connection:
            await connection.exec_driver_sql("CREATE TABLE sqlstate_probe (id int PRIMARY KEY)")
            await connection.exec_driver_sql("INSERT INTO sqlstate_probe VALUES (1)")
        async with engine.connect() as connection:
            with pytest.raises(sa.exc.IntegrityError) as exc_info:
                await connection.exec_driver_sql("INSERT INTO sqlstate_probe VALUES (1)")
            errors.append(exc_info.value)
    finally:
        await engine.dispose()
    return errors


def _run_async_errors(url: sa.URL) -> list[sa.exc.DBAPIError]:
    """``_async_errors`` in a thread of its own: the browser tests' Playwright leaves an
    event loop running in the main thread, where ``asyncio.run`` is refused."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(lambda: asyncio.run(_async_errors(url))).result(timeout=120)


EXPECTED = [*RAISED, "22012", codes.UNIQUE_VIOLATION]  # 22012: division_by_zero


@pytest.mark.parametrize("driver", ["psycopg2", "psycopg"])
def test_sqlstate_of_sync_driver_errors(clean_database, driver):
    errors = _sync_errors(_url(clean_database, driver))
    assert [type(e.orig).__module__.split(".")[0] for e in errors] == [driver] * len(EXPECTED)
    assert [sqlstate(e) for e in errors] == EXPECTED
    # the driver's own exception, without SQLAlchemy's wrapper, gives the same
    assert [sqlstate(e.orig) for e in errors] == EXPECTED


@pytest.mark.parametrize("driver", ["asyncpg", "psycopg"])
def test_sqlstate_of_async_driver_errors(clean_database, driver):
    errors = _run_async_errors(_url(clean_database, driver))
    assert [sqlstate(e) for e in errors] == EXPECTED
    assert [sqlstate(e.orig) for e in errors] == EXPECTED


def test_asyncpg_lock_errors_are_not_operational_errors_so_callers_catch_dbapi_error(
    clean_database,
):
    """Why chrononaut catches DBAPIError, not OperationalError, around lock waits."""
    errors = _run_async_errors(_url(clean_database, "asyncpg"))
    lock_error = errors[RAISED.index(codes.LOCK_NOT_AVAILABLE)]
    assert not isinstance(lock_error, sa.exc.OperationalError)
    assert sqlstate(lock_error) == codes.LOCK_NOT_AVAILABLE


def test_sqlstate_of_an_error_without_a_code_is_none(clean_database):
    url = sa.make_url(clean_database).set(port=1, host="127.0.0.1")  # nothing listens there
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    with pytest.raises(sa.exc.OperationalError) as exc_info:
        engine.connect()
    engine.dispose()
    assert sqlstate(exc_info.value) is None
    assert sqlstate(ValueError("not a database error")) is None


def test_sqlstate_refuses_what_is_not_an_exception():
    with pytest.raises(TypeError, match="sqlstate\\(\\) takes an exception, got '55P03'"):
        sqlstate("55P03")  # type: ignore[arg-type]
