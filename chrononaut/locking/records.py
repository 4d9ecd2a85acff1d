"""Which records ``lock()`` can take: checked before anything touches the database.

``lock()`` takes the advisory lock, then refreshes the record from the
database. A record that is not a plain, unchanged row of the session's
transaction would go wrong half way: a record marked for deletion autoflushes
its DELETE and then fails to refresh, an unflushed change is discarded by the
refresh, a deleted or detached record cannot be refreshed at all, and each
failure would leave the lock held. :func:`check_lockable` refuses them first,
with the reason and the fix.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from ..exceptions import ChrononautException
from . import keys


def check_lockable(session: Session | None, obj: Any) -> tuple[Any, ...]:
    """``obj``'s normalised primary key if ``lock()`` can take it in ``session``; else raise why.

    Raises :class:`TypeError` for a record that is not :class:`~chrononaut.Versioned`,
    :class:`ValueError` for one detached, of another session or of none (``session``
    None: the caller found no session on ``obj``), and
    :class:`~chrononaut.ChrononautException` for one not in the database yet,
    deleted, marked for deletion, or with unflushed changes. It never touches
    the database::

        identity = check_lockable(session, document)  # (42,)
    """
    if getattr(type(obj), "__chrononaut__", None) is None:
        raise TypeError(f"lock() takes Versioned records, got {obj!r}")
    state = sa.inspect(obj)
    if state.transient or state.pending:
        raise ChrononautException(
            f"{type(obj).__name__} instance is not in the database yet; commit it before "
            "locking it."
        )
    identity = keys.identity_of(obj)
    described = keys.describe(obj, identity)
    if state.detached and state.was_deleted:
        raise ChrononautException(
            f"{described} was deleted and the deletion committed; there is no record left to lock."
        )
    if state.detached:
        raise ValueError(
            f"{described} is detached from its session; merge it into the session "
            "(session.merge()) or load it again before locking it."
        )
    if session is None:
        raise ValueError(f"{described} is not attached to a session")
    if state.session is not session:
        raise ValueError("lock() takes records of one session; merge them into it first")
    if state.deleted:
        raise ChrononautException(
            f"{described} was deleted in this transaction (its DELETE is flushed), so there "
            "is nothing to lock; lock a record before deleting it."
        )
    if obj in session.deleted:
        raise ChrononautException(
            f"{described} is marked for deletion (session.delete()), and locking it would "
            "flush the DELETE; lock a record before deleting it."
        )
    if session.is_modified(obj):
        raise ChrononautException(
            f"{described} has unflushed changes, which the refresh after locking would "
            "discard; lock it before changing it."
        )
    return identity
