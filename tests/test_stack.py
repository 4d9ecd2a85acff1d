"""The run tests the stack it means to: SQLAlchemy series and driver.

``.ci/run`` runs the suite twice, on SQLAlchemy 2.0 with psycopg2 and on 2.1
with psycopg 3, and says which in ``CHRONONAUT_TEST_STACK`` (``2.1/psycopg``):
a second run that silently fell back to the first stack fails here.
"""

from __future__ import annotations

import os

import sqlalchemy as sa

from chrononaut import _compat

from .conftest import STACK_VARIABLE


def test_the_engine_runs_on_the_stack_the_run_names(engine):
    with engine.connect() as connection:
        driver_module = type(connection.connection.dbapi_connection).__module__.split(".")[0]
    assert engine.dialect.driver in ("psycopg2", "psycopg")
    assert driver_module == engine.dialect.driver
    wanted = os.environ.get(STACK_VARIABLE)
    if wanted:
        series, driver = wanted.split("/")
        assert (_compat.sqlalchemy_series(), engine.dialect.driver) == (series, driver), (
            f"{STACK_VARIABLE}={wanted!r}, but this run has SQLAlchemy {sa.__version__} "
            f"and driver {engine.dialect.driver!r}"
        )
