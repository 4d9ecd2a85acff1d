"""Run chrononaut's sync code for a record inside its AsyncSession's greenlet.

Every awaitable form in :mod:`chrononaut.aio` is the sync function run
through :meth:`AsyncSession.run_sync <sqlalchemy.ext.asyncio.AsyncSession.run_sync>`:
one implementation, so the async forms validate, read and write exactly as
the sync ones do. :func:`async_session_of` finds the record's AsyncSession
and refuses a record of a plain Session, naming the sync call to make.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_scoped_session, async_session
from sqlalchemy.orm import InstanceState

T = TypeVar("T")


def async_session_of(obj: Any, form: str, sync_form: str) -> AsyncSession | None:
    """The AsyncSession ``obj`` belongs to, or None if it belongs to no session.

    Raises :class:`TypeError` for anything but a mapped instance, and for a
    record of a plain (not async) Session, naming ``sync_form``::

        async_session_of(doc, "chrononaut.aio.versions()", "record.versions()")
    """
    state = sa.inspect(obj, raiseerr=False)
    if not isinstance(state, InstanceState):
        raise TypeError(f"{form} takes a Versioned record, got {obj!r}")
    session = state.session
    if session is None:
        return None
    proxy = async_session(session)
    if proxy is None:
        raise TypeError(
            f"{form} runs through an AsyncSession, but {type(obj).__name__} instance belongs to "
            f"a plain Session; call {sync_form} instead."
        )
    return proxy


async def run(obj: Any, fn: Callable[[], T], form: str, sync_form: str) -> T:
    """``fn()`` run in the greenlet of ``obj``'s AsyncSession (directly if ``obj`` has no
    session: the sync code then refuses it, or answers without SQL)."""
    proxy = async_session_of(obj, form, sync_form)
    if proxy is None:
        return fn()
    return await proxy.run_sync(lambda _session: fn())


def session_argument(session: Any, form: str, sync_form: str) -> AsyncSession:
    """``session`` as an AsyncSession (an ``async_scoped_session`` gives its current one);
    :class:`TypeError` naming ``sync_form`` for anything else::

        session_argument(db, "chrononaut.aio.restore()", "chrononaut.restore()")
    """
    if isinstance(session, async_scoped_session):
        session = session()
    if not isinstance(session, AsyncSession):
        raise TypeError(
            f"{form} takes an AsyncSession (or async_scoped_session) first, got {session!r}; "
            f"with a Session call {sync_form} instead."
        )
    return session
