"""Which sync Session :func:`chrononaut.listen` versions for an asyncio session or factory.

An :class:`~sqlalchemy.ext.asyncio.AsyncSession` runs a plain
:class:`~sqlalchemy.orm.Session` (its ``sync_session``) inside a greenlet,
and SQLAlchemy documents session events for AsyncSession on that sync side:
on ``AsyncSession.sync_session`` for one session, on the
``sync_session_class`` for a factory. chrononaut's listeners, session mixin
and settings go there, so history, change_info, the version counter, the
flush guard and bulk statements run exactly the code they run for a Session.

For an ``async_sessionmaker`` or a subclass of ``AsyncSession``, the sync
class is a fresh subclass made for that factory or class alone (never
``Session`` itself, which every other session of the process shares), with
:class:`~chrononaut.session.ChrononautSessionMixin` mixed in; its sessions
start with the class's own info entries (settings, the guard), merged under
any ``info=`` the caller gives.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_scoped_session, async_sessionmaker
from sqlalchemy.orm import Session

from .._events import CLASS_INFO
from ..session import ChrononautSessionMixin


def _made_here(cls: Any) -> bool:
    return isinstance(cls, type) and CLASS_INFO in vars(cls)


def sync_session_class(base: type[Session]) -> type[Session]:
    """A new subclass of ``base`` with chrononaut's session mixin, whose sessions start
    with the entries of its ``chrononaut_session_info`` dict (filled by :func:`listen`)."""
    defaults: dict[str, Any] = {}

    def __init__(self: Session, *args: Any, **kwargs: Any) -> None:
        kwargs["info"] = {**defaults, **(kwargs.get("info") or {})}
        base.__init__(self, *args, **kwargs)

    namespace = {"__init__": __init__, CLASS_INFO: defaults, "__module__": base.__module__}
    return type(base.__name__, (ChrononautSessionMixin, base), namespace)


def _for_factory(factory: async_sessionmaker[Any], create: bool) -> Any:
    current = factory.kw.get("sync_session_class") or factory.class_.sync_session_class
    if _made_here(current) or not create:
        return current
    made = sync_session_class(current)
    factory.kw["sync_session_class"] = made
    return made


def _for_class(cls: type[AsyncSession], create: bool) -> Any:
    if cls is AsyncSession:
        raise TypeError(
            "listen() on the AsyncSession class itself would version every AsyncSession of "
            "the process; pass an async_sessionmaker, an AsyncSession, or a subclass of "
            "AsyncSession (class MySession(AsyncSession): pass)."
        )
    current = cls.sync_session_class
    if _made_here(current) and "sync_session_class" in vars(cls):
        return current
    if not create:
        return current
    made = sync_session_class(current)
    cls.sync_session_class = made
    return made


def sync_target(target: Any, create: bool) -> Any:
    """The sync-side target :func:`chrononaut.listen` registers on for ``target``.

    ``AsyncSession`` -> its ``sync_session``; ``async_sessionmaker`` and
    ``async_scoped_session`` -> the factory's own sync Session class; a subclass
    of ``AsyncSession`` -> its own ``sync_session_class``. With ``create`` the
    sync class is made (and set on the factory or class) if chrononaut has not
    made it yet. Anything else is returned unchanged::

        sync_target(async_sessionmaker(engine), create=True)  # a Session subclass
    """
    if isinstance(target, AsyncSession):
        return target.sync_session
    if isinstance(target, async_scoped_session):
        factory = target.session_factory
        if not isinstance(factory, async_sessionmaker):
            raise TypeError(
                "listen() takes an async_scoped_session made from an async_sessionmaker, got "
                f"one whose session_factory is {factory!r}"
            )
        return _for_factory(factory, create)
    if isinstance(target, async_sessionmaker):
        return _for_factory(target, create)
    if isinstance(target, type) and issubclass(target, AsyncSession):
        return _for_class(target, create)
    return target
