"""``@chrononaut.aio.retry_on_conflict``: re-run a coroutine after a rollback on a conflict.

The coroutine form of :func:`chrononaut.retry_on_conflict`, with the same
rules: only :class:`~chrononaut.ConflictError` is retried (never
:class:`~chrononaut.RecordLockedError`), the function loads what it changes
itself, and the session rolled back is ``session`` (an AsyncSession, an
async_scoped_session, or a callable returning one) or else the one that
raised, awaited.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import async_session

from ..exceptions import ConflictError, RecordLockedError

F = TypeVar("F", bound=Callable[..., Awaitable[Any]])


async def _roll_back(session: Any, error: ConflictError) -> None:
    target = session
    if callable(target) and not hasattr(target, "rollback"):
        target = target()
    if target is None and error.session is not None:
        target = async_session(error.session) or error.session
    if target is None:
        return
    result = target.rollback()
    if inspect.isawaitable(result):
        await result


def retry_on_conflict(attempts: int | Callable[..., Any] = 3, session: Any = None) -> Any:
    """Re-run the decorated coroutine function up to ``attempts`` times on ConflictError::

    @chrononaut.aio.retry_on_conflict(attempts=5)
    async def bump(doc_id):
        doc = await session.get(Document, doc_id)
        doc.views_total += 1
        await session.commit()
    """
    if callable(attempts) and not isinstance(attempts, int):
        return retry_on_conflict()(attempts)
    if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 1:
        raise ValueError(f"retry_on_conflict() needs attempts >= 1, got {attempts!r}")

    def decorate(fn: F) -> F:
        if not inspect.iscoroutinefunction(fn):
            raise TypeError(
                f"chrononaut.aio.retry_on_conflict decorates coroutine functions (async def), "
                f"got {fn!r}; decorate plain functions with chrononaut.retry_on_conflict."
            )

        @functools.wraps(fn)
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            for attempt in range(1, attempts + 1):
                try:
                    return await fn(*args, **kwargs)
                except RecordLockedError:
                    raise
                except ConflictError as error:
                    await _roll_back(session, error)
                    if attempt == attempts:
                        raise
            raise AssertionError("unreachable")

        return wrapper  # type: ignore[return-value]

    return decorate
