"""Models and helpers of the asyncio tests; importable by spawned child processes."""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import AsyncIterator, Coroutine
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

import chrononaut
from chrononaut import Versioned

#: The async drivers every test runs on.
DRIVERS = ("asyncpg", "psycopg")


class Base(DeclarativeBase):
    pass


class Doc(Base, Versioned):
    __tablename__ = "aio_doc"
    __chrononaut_hidden__ = ["secret"]
    __chrononaut_untracked__ = ["views"]

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(sa.String(80))
    body: Mapped[str | None]
    secret: Mapped[str | None]
    views: Mapped[int] = mapped_column(default=0)


class Counter(Base, Versioned):
    __tablename__ = "aio_counter"
    id: Mapped[int] = mapped_column(primary_key=True)
    value: Mapped[int] = mapped_column(default=0)


def run(coroutine: Coroutine[Any, Any, Any]) -> Any:
    """``asyncio.run(coroutine)``, on a thread of its own (with this context) when this
    thread runs an event loop already: pytest-playwright's sync API keeps one running in
    the main thread once a browser test has started."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    context = contextvars.copy_context()
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(context.run, asyncio.run, coroutine).result()


def async_url(url: str, driver: str) -> str:
    """``url`` (any PostgreSQL URL) with the async ``driver``."""
    return (
        sa.make_url(url)
        .set(drivername=f"postgresql+{driver}")
        .render_as_string(hide_password=False)
    )


@asynccontextmanager
async def versioned_factory(
    url: str, settings: Any = None, **kwargs: Any
) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """A versioned async_sessionmaker on a new engine, disposed of at the end."""
    engine = create_async_engine(url, **kwargs)
    factory = async_sessionmaker(engine, expire_on_commit=False)
    chrononaut.listen(factory, settings=settings)
    try:
        yield factory
    finally:
        await engine.dispose()


def history_rows(sync_url: str) -> list[tuple[int, int, str | None, Any]]:
    """(id, version, title, change_info) of every aio_doc history row, in order."""
    hist = Doc.__history_mapper__.local_table
    engine = sa.create_engine(sync_url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                sa.select(hist.c.id, hist.c.version, hist.c.title, hist.c.change_info).order_by(
                    hist.c.id, hist.c.version
                )
            )
            return [tuple(row) for row in rows]  # type: ignore[misc]
    finally:
        engine.dispose()
