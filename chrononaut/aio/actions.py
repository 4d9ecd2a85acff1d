"""Awaitable revert, restore and prune: ``await chrononaut.aio.revert_to(record, 3)``.

Each runs :mod:`chrononaut.versioning.revert`, :mod:`~chrononaut.versioning.restore`
or :mod:`~chrononaut.versioning.retention` in the AsyncSession (see
:mod:`chrononaut.aio._run`), with the same arguments, checks and results as
``record.revert_to()``, ``chrononaut.restore()`` and ``chrononaut.prune()``.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from ..versioning import restore as restoring
from ..versioning import retention, revert
from ._run import run, session_argument


async def revert_to(record: Any, version: Any) -> Any:
    """Set ``record``'s tracked columns back to ``version`` (a number or history object);
    commit to write it (``record.revert_to()``)::

        await chrononaut.aio.revert_to(page, 0)
        await session.commit()
    """
    return await run(
        record,
        lambda: revert.revert_to(record, version),
        "chrononaut.aio.revert_to()",
        "record.revert_to()",
    )


async def restore(session: Any, model: type[Any], *primary_key: Any) -> Any:
    """Re-create the deleted ``model`` record ``primary_key`` from its deletion row, added
    to ``session`` (an AsyncSession or async_scoped_session); commit to write it
    (``chrononaut.restore()``)::

        page = await chrononaut.aio.restore(session, WikiPage, 1)
        await session.commit()
    """
    proxy = session_argument(session, "chrononaut.aio.restore()", "chrononaut.restore()")
    return await proxy.run_sync(restoring.restore, model, *primary_key)


async def prune(
    session: Any,
    models: Iterable[type[Any]] | None = None,
    *,
    older_than: timedelta | datetime | None = None,
    keep_last: int | None = None,
    include_deleted: bool = False,
    batch_size: int = retention.DEFAULT_BATCH_SIZE,
    dry_run: bool = False,
) -> dict[type[Any], int]:
    """Delete history rows older than ``older_than`` and/or beyond ``keep_last`` per record,
    on connections of its own, in batches (``chrononaut.prune()``)::

        await chrononaut.aio.prune(session, older_than=timedelta(days=365), keep_last=50)
    """
    proxy = session_argument(session, "chrononaut.aio.prune()", "chrononaut.prune()")
    return await proxy.run_sync(
        lambda sync: retention.prune(
            sync,
            models,
            older_than=older_than,
            keep_last=keep_last,
            include_deleted=include_deleted,
            batch_size=batch_size,
            dry_run=dry_run,
        )
    )
