"""Awaitable edit leases: take or renew, look up and release a record's lease.

Each runs :mod:`chrononaut.locking.leases` in the record's AsyncSession; like
any write, a lease takes effect when the session commits.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from ..locking import leases
from ..locking.leases import Lease
from ._run import run


async def acquire_lease(
    record: Any, ttl: timedelta = leases.DEFAULT_TTL, owner: Any = None, force: bool = False
) -> Lease:
    """Take or renew the edit lease on ``record`` (``record.acquire_lease()``)::

    held = await chrononaut.aio.acquire_lease(doc, ttl=timedelta(minutes=5), owner="ada")
    await session.commit()
    """
    return await run(
        record,
        lambda: leases.acquire_lease(record, ttl=ttl, owner=owner, force=force),
        "chrononaut.aio.acquire_lease()",
        "record.acquire_lease()",
    )


async def lease(record: Any) -> Lease | None:
    """The current unexpired lease on ``record``, or None (``record.lease``)."""
    return await run(
        record, lambda: leases.current_lease(record), "chrononaut.aio.lease()", "record.lease"
    )


async def release_lease(record: Any, force: bool = False) -> None:
    """Release ``record``'s lease; another owner's needs ``force=True``
    (``record.release_lease()``)."""
    await run(
        record,
        lambda: leases.release_lease(record, force=force),
        "chrononaut.aio.release_lease()",
        "record.release_lease()",
    )
