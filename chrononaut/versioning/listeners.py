"""Every versioning event, registered in one place on the caller's session or factory."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session, scoped_session, sessionmaker

from .. import _events
from ..settings import SESSION_INFO_KEY, Settings
from . import bulk, database_guard_events, recorder

_EVENTS = (
    ("before_flush", recorder.before_flush),
    ("after_flush", recorder.after_flush),
    ("after_soft_rollback", recorder.after_soft_rollback),
    ("do_orm_execute", bulk.do_orm_execute),
    # suppress_versioning() with the database guard's triggers (no statements otherwise)
    ("before_flush", database_guard_events.before_flush),
    ("after_flush", database_guard_events.after_flush),
    ("do_orm_execute", database_guard_events.do_orm_execute),
)


def _target(session_or_factory: Any) -> Any:
    if isinstance(session_or_factory, scoped_session):
        return session_or_factory.session_factory
    if isinstance(session_or_factory, sessionmaker | Session) or (
        isinstance(session_or_factory, type) and issubclass(session_or_factory, Session)
    ):
        return session_or_factory
    raise TypeError(
        "listen() takes a Session, a Session subclass, a sessionmaker or a scoped_session, "
        f"got {session_or_factory!r}"
    )


def _set_settings(target: Any, settings: Any) -> None:
    if settings is not None:
        _events.session_info(target)[SESSION_INFO_KEY] = settings


def listen(session_or_factory: Any, settings: Settings | Any = None) -> None:
    """Version ``Versioned`` models flushed through ``session_or_factory``.

    ``settings`` is a :class:`chrononaut.Settings` or a zero-argument callable
    returning one (read at every flush)::

        Session = sessionmaker(engine)
        chrononaut.versioning.listen(Session)
    """
    target = _target(session_or_factory)
    _set_settings(target, settings)
    _events.register(target, "versioning", _EVENTS)


def remove(session_or_factory: Any) -> None:
    """Undo :func:`listen`."""
    _events.unregister(_target(session_or_factory), "versioning", _EVENTS)


def is_listening(session_or_factory: Any) -> bool:
    return _events.is_registered(_target(session_or_factory), "versioning")
