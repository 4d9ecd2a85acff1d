"""Refuse a blocking call on a record of an ``AsyncSession``, naming its awaitable form.

A record loaded through an :class:`~sqlalchemy.ext.asyncio.AsyncSession`
reaches the database only inside that session's greenlet (``await
session.run_sync(...)``, or the :mod:`chrononaut.aio` forms, which run the
same code there). Called from a coroutine, ``record.versions()`` or ``with
record.lock():`` would fail half way with SQLAlchemy's ``MissingGreenlet``;
:func:`refuse_async` raises :class:`TypeError` first, before any SQL, with
the call to make instead. Inside the greenlet the sync forms work unchanged.

The one SQLAlchemy name without a public equivalent, ``in_greenlet``, is
imported here and nowhere else. ``sqlalchemy.ext.asyncio`` is never imported by
the core: it needs greenlet, which SQLAlchemy 2.1 no longer installs, and until
an application has imported it no AsyncSession can exist.
"""

from __future__ import annotations

import sys
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

try:  # not a documented name; present in SQLAlchemy 2.0 and 2.1
    from sqlalchemy.util.concurrency import in_greenlet
except ImportError:  # pragma: no cover - a future SQLAlchemy without it

    def in_greenlet() -> bool:
        return False


def _asyncio() -> Any:
    """SQLAlchemy's asyncio extension if the application loaded it, else None."""
    return sys.modules.get("sqlalchemy.ext.asyncio")


def is_async(session: Any) -> bool:
    """Whether ``session`` (a sync Session) is the ``sync_session`` of an AsyncSession."""
    asyncio = _asyncio()
    if asyncio is None or not isinstance(session, Session):
        return False
    return asyncio.async_session(session) is not None


def sync_target(target: Any, create: bool) -> Any:
    """``target`` for :func:`chrononaut.listen`, with an asyncio session or factory
    replaced by its sync side (see :mod:`chrononaut.aio.sessions`)."""
    if _asyncio() is None:
        return target
    from .aio.sessions import sync_target as aio_sync_target

    return aio_sync_target(target, create)


def refuse_async_session(session: Any, sync_form: str, async_form: str) -> None:
    """Raise :class:`TypeError` if ``session`` is an ``AsyncSession`` or
    ``async_scoped_session``, or the sync side of an AsyncSession used outside its
    greenlet, naming ``async_form``: for the calls that take a session first."""
    asyncio = _asyncio()
    if asyncio is None:
        return
    if isinstance(session, asyncio.AsyncSession | asyncio.async_scoped_session) or (
        is_async(session) and not in_greenlet()
    ):
        raise TypeError(
            f"{sync_form} takes a Session, got the AsyncSession {session!r}; use {async_form} "
            "instead."
        )


def refuse_async(obj: Any, sync_form: str, async_form: str) -> None:
    """Raise :class:`TypeError` if ``obj`` belongs to an AsyncSession and the caller is
    not inside its greenlet (where the sync form would raise ``MissingGreenlet``)::

        refuse_async(doc, "doc.versions()", "await chrononaut.aio.versions(doc)")
    """
    state = sa.inspect(obj, raiseerr=False)
    session = getattr(state, "session", None)
    if not is_async(session) or in_greenlet():
        return
    raise TypeError(
        f"{sync_form} blocks on the database, but {type(obj).__name__} instance belongs to an "
        f"AsyncSession; use {async_form} instead (or call it inside "
        "await session.run_sync(...))."
    )
