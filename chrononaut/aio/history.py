"""Awaitable history queries: ``await chrononaut.aio.versions(record)`` and friends.

Each is :mod:`chrononaut.versioning.queries` run in the record's
AsyncSession (see :mod:`chrononaut.aio._run`): the same arguments, checks
and results as the ``Versioned`` methods of the same name.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa

from ..versioning import queries
from ._run import run


async def versions(
    record: Any, before: datetime | None = None, after: datetime | None = None
) -> list[Any]:
    """Prior versions of ``record``, oldest first (``record.versions()``)::

    first = (await chrononaut.aio.versions(doc))[0]
    """
    return await run(
        record,
        lambda: queries.versions(record, before=before, after=after),
        "chrononaut.aio.versions()",
        "record.versions()",
    )


def versions_select(
    record: Any, before: datetime | None = None, after: datetime | None = None
) -> sa.Select[Any]:
    """A ``select()`` of ``record``'s history objects, ordered by version, to refine and run
    on the AsyncSession (``record.versions(return_query=True)``); runs no SQL itself::

        recent = await session.scalars(chrononaut.aio.versions_select(doc).limit(5))
    """
    return queries.versions_query(record, before=before, after=after).statement  # type: ignore[return-value]


async def version_at(record: Any, at: datetime) -> Any:
    """``record`` as it was at ``at``: a history object, or ``record`` if unchanged since."""
    return await run(
        record,
        lambda: queries.version_at(record, at),
        "chrononaut.aio.version_at()",
        "record.version_at()",
    )


async def has_changed_since(record: Any, since: datetime) -> bool:
    """Whether a version of ``record`` was written at or after ``since``."""
    return await run(
        record,
        lambda: queries.has_changed_since(record, since),
        "chrononaut.aio.has_changed_since()",
        "record.has_changed_since()",
    )


async def previous_version(record: Any) -> Any:
    """The latest history object of ``record``, or None."""
    return await run(
        record,
        lambda: queries.previous_version(record),
        "chrononaut.aio.previous_version()",
        "record.previous_version()",
    )


async def diff(
    record: Any, from_model: Any, to: Any = None, include_hidden: bool = False
) -> dict[str, tuple[Any, Any]]:
    """``{column: (old, new)}`` between history object ``from_model`` and ``to`` (default
    ``record``); only ``include_hidden=True`` reads the database (``record.diff()``)."""
    return await run(
        record,
        lambda: queries.diff(record, from_model, to=to, include_hidden=include_hidden),
        "chrononaut.aio.diff()",
        "record.diff()",
    )
