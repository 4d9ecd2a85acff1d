"""Awaitable locking and the version counter: ``async with chrononaut.aio.lock(...)``.

:func:`lock` drives :func:`chrononaut.lock`'s own context manager, entering
and leaving it inside the records' AsyncSession: the same lock keys, order,
refresh, timeouts, nesting and commit on leaving (rollback on an exception,
cancellation included). ``await session.commit()`` or ``rollback()`` inside
the block is refused as in the sync form. The others run their sync
function through :mod:`chrononaut.aio._run`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from ..locking import advisory, optimistic
from ._run import async_session_of, run


@asynccontextmanager
async def lock(
    *records: Any, nowait: bool = False, timeout: float | None = None, shared: bool = False
) -> AsyncIterator[None]:
    """Lock ``records`` until the block ends, refreshed from the database, then commit
    (``with chrononaut.lock(*records)`` / ``with record.lock()``)::

        async with chrononaut.aio.lock(source, target, timeout=5):
            source.balance -= 10
            target.balance += 10
    """
    sync = advisory.lock(*records, nowait=nowait, timeout=timeout, shared=shared)
    if not records:
        sync.__enter__()  # raises ValueError: no record
    session = async_session_of(records[0], "chrononaut.aio.lock()", "chrononaut.lock()")
    if session is None:
        sync.__enter__()  # a record of no session: refused before any SQL
        raise AssertionError("unreachable: lock() took a record of no session")
    await session.run_sync(lambda _session: sync.__enter__())
    try:
        yield
    except BaseException as error:
        suppressed = await session.run_sync(_leave, sync, error)
        if not suppressed:
            raise
    else:
        await session.run_sync(_leave, sync, None)


def _leave(_session: Any, sync: Any, error: BaseException | None) -> bool | None:
    if error is None:
        return sync.__exit__(None, None, None)
    return sync.__exit__(type(error), error, error.__traceback__)


async def is_locked(record: Any) -> bool:
    """Whether another transaction holds ``record``'s ``lock()`` (``record.is_locked()``)."""
    return await run(
        record,
        lambda: advisory.is_locked(record),
        "chrononaut.aio.is_locked()",
        "record.is_locked()",
    )


async def check_version(record: Any, expected: int) -> None:
    """Raise :class:`~chrononaut.ConflictError` unless ``record`` is at ``expected``
    (``record.check_version()``)::

        await chrononaut.aio.check_version(doc, form_version)
    """
    await run(
        record,
        lambda: optimistic.check_version(record, expected),
        "chrononaut.aio.check_version()",
        "record.check_version()",
    )


async def apply_changes(record: Any, changes: dict[str, Any], base_version: int) -> None:
    """Apply a stale form's ``changes`` if none of those columns changed since
    ``base_version``, else raise :class:`~chrononaut.ConflictError`
    (``record.apply_changes()``)."""
    await run(
        record,
        lambda: optimistic.apply_changes(record, changes, base_version),
        "chrononaut.aio.apply_changes()",
        "record.apply_changes()",
    )
