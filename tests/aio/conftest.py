"""Fixtures of the asyncio tests: every test runs on asyncpg and on psycopg 3 async.

Tests drive their coroutines with ``asyncio.run`` (no pytest plugin): each run
builds its engine inside its own event loop and disposes of it there.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from .models import DRIVERS, Base, async_url


@pytest.fixture(params=DRIVERS)
def url(request: pytest.FixtureRequest, clean_database: str) -> str:
    """The test database's URL with an async driver, aio_doc's tables created."""
    engine = sa.create_engine(clean_database, poolclass=sa.pool.NullPool)
    Base.metadata.create_all(engine)
    engine.dispose()
    return async_url(clean_database, request.param)
