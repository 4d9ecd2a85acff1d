"""Argument checks shared by the calls that act on history: revert, restore, prune.

Each raises :class:`TypeError` or :class:`ValueError` (or, for a record in the
wrong state, :class:`~chrononaut.ChrononautException`) naming the call, the
value with ``!r`` and the fix, before any SQL runs.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, scoped_session

from ..async_check import refuse_async_session
from ..exceptions import ChrononautException


def session_of(session: Any, call: str) -> Session:
    """``session`` as a :class:`~sqlalchemy.orm.Session` (a ``scoped_session`` gives its own)."""
    name = call.removesuffix("()")
    refuse_async_session(session, call, f"await chrononaut.aio.{name}(session, ...)")
    if isinstance(session, scoped_session):
        return session()
    if not isinstance(session, Session):
        raise TypeError(
            f"{call} takes a SQLAlchemy Session (or Flask-SQLAlchemy's db.session) first, "
            f"got {session!r}."
        )
    return session


def versioned_class(model: Any, call: str) -> type[Any]:
    """``model`` if it is a mapped ``Versioned`` class, else :class:`TypeError`."""
    if not isinstance(model, type) or getattr(model, "__chrononaut__", None) is None:
        raise TypeError(
            f"{call} takes a mapped Versioned model class, got {model!r}; pass the class "
            "itself (Document), not an instance or its name."
        )
    sa.inspect(model)  # configures it if it is mapped but not configured yet
    return model


def persistent_record(obj: Any, call: str) -> Any:
    """The ``InstanceState`` of ``obj``, a versioned record loaded in a session and not deleted."""
    if getattr(type(obj), "__chrononaut__", None) is None:
        raise TypeError(f"{call} works on Versioned records, got {obj!r}.")
    state = sa.inspect(obj)
    name = type(obj).__name__
    if state.transient or state.pending:
        raise ChrononautException(
            f"{call}: this {name} is not saved yet, so it has no history; commit it first."
        )
    if state.deleted or state.was_deleted:
        raise ChrononautException(
            f"{call}: {name} {tuple(state.identity)!r} is deleted; bring it back with "
            f"chrononaut.restore(session, {name}, ...) first."
        )
    if state.detached:
        raise ChrononautException(
            f"{call}: {name} {tuple(state.identity)!r} is not attached to a session; "
            "load it again or session.merge() it first."
        )
    if obj in state.session.deleted:
        raise ChrononautException(
            f"{call}: {name} {tuple(state.identity)!r} is marked for deletion in this "
            "session; roll back or expunge the deletion first."
        )
    return state


def whole_number(value: Any, what: str, minimum: int) -> int:
    """``value`` if it is an ``int`` (not a bool) of at least ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be an int, got {value!r}.")
    if value < minimum:
        raise ValueError(f"{what} must be at least {minimum}, got {value!r}.")
    return value
