"""Session support: the session mixin and :func:`listen`, which wires everything up.

Two behaviours need the Session itself rather than events: a flush that
fails on a stale version, and a ``merge()`` of a stale detached record, raise
:class:`~chrononaut.ConflictError` explained from history; and ``commit()``,
``rollback()``, ``close()`` and ``reset()`` inside a ``lock()`` block (leaving
``with session:`` there too) are refused instead of silently releasing the lock.
"""

from __future__ import annotations

import weakref
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, scoped_session, sessionmaker
from sqlalchemy.orm.exc import StaleDataError

from . import _events, async_check
from .context import versioning_suppressed
from .exceptions import ChrononautException, ConflictError
from .locking import advisory, optimistic
from .locking import listeners as locking_listeners
from .settings import Settings
from .versioning import listeners as versioning_listeners
from .versioning.history import HistoryBase
from .versioning.recorder import refuse_history_insert


class ChrononautSessionMixin:
    """Mixed into the Session class of every session chrononaut listens to."""

    def flush(self, objects: Any = None) -> None:
        deleting = self.deleted  # type: ignore[attr-defined]  # a failed flush empties it
        try:
            super().flush(objects)  # type: ignore[misc]
        except ConflictError:
            raise
        except StaleDataError as error:
            conflict = optimistic.explain_stale_flush(self, error, deleting)  # type: ignore[arg-type]
            if conflict is None:
                raise
            raise conflict from error

    def bulk_update_mappings(self, mapper: Any, mappings: Any) -> None:
        cls = sa.inspect(mapper).class_
        if issubclass(cls, HistoryBase):
            raise ChrononautException(
                f"Refusing to update {cls.__name__}: history rows are immutable."
            )
        _refuse_unversioned_bulk(cls, "bulk_update_mappings()")
        super().bulk_update_mappings(mapper, mappings)  # type: ignore[misc]

    def bulk_insert_mappings(self, mapper: Any, mappings: Any, *args: Any, **kwargs: Any) -> None:
        cls = sa.inspect(mapper).class_
        if issubclass(cls, HistoryBase):
            refuse_history_insert(cls.__name__)
        super().bulk_insert_mappings(mapper, mappings, *args, **kwargs)  # type: ignore[misc]

    def bulk_save_objects(self, objects: Any, *args: Any, **kwargs: Any) -> None:
        objects = list(objects)
        for obj in objects:
            if isinstance(obj, HistoryBase):
                refuse_history_insert(repr(obj))
            if sa.inspect(obj).key is not None:  # an UPDATE, not an INSERT
                _refuse_unversioned_bulk(type(obj), "bulk_save_objects() of existing rows")
        super().bulk_save_objects(objects, *args, **kwargs)  # type: ignore[misc]

    def merge(self, instance: Any, *, load: bool = True, options: Any = None) -> Any:
        if load:
            optimistic.load_version_for_merge(self, instance)  # type: ignore[arg-type]
        try:
            return super().merge(instance, load=load, options=options)  # type: ignore[misc]
        except ConflictError:
            raise
        except StaleDataError as error:
            conflict = optimistic.explain_stale_merge(self, instance)  # type: ignore[arg-type]
            if conflict is None:
                raise
            raise conflict from error

    def commit(self) -> None:
        advisory.refuse_inside_lock(self, "commit")  # type: ignore[arg-type]
        super().commit()  # type: ignore[misc]

    def rollback(self) -> None:
        advisory.refuse_inside_lock(self, "rollback")  # type: ignore[arg-type]
        super().rollback()  # type: ignore[misc]

    def close(self) -> None:
        advisory.refuse_inside_lock(self, "close")  # type: ignore[arg-type]
        super().close()  # type: ignore[misc]

    def reset(self) -> None:
        advisory.refuse_inside_lock(self, "reset")  # type: ignore[arg-type]
        super().reset()  # type: ignore[misc]

    def __exit__(self, type_: Any, value: Any, traceback: Any) -> None:
        if value is not None and advisory.lock_depth(self) > 0:  # type: ignore[arg-type]
            # An exception leaving ``with session:`` inside a lock() block on the same
            # session: let it propagate unchanged; the lock() block it passes through
            # next rolls back, which releases the lock and the connection.
            return
        self.close()


def _refuse_unversioned_bulk(cls: type[Any], what: str) -> None:
    if getattr(cls, "__chrononaut__", None) is not None and not versioning_suppressed():
        raise ChrononautException(
            f"{what} on {cls.__name__} would skip history; use update(...).where(...) "
            "statements or load the objects (or wrap it in suppress_versioning())."
        )


_instance_classes: weakref.WeakKeyDictionary[type[Session], type[Session]] = (
    weakref.WeakKeyDictionary()
)


def session_class(base: type[Session]) -> type[Session]:
    """``base`` with :class:`ChrononautSessionMixin` mixed in."""
    if issubclass(base, ChrononautSessionMixin):
        return base
    return type(base.__name__, (ChrononautSessionMixin, base), {"__module__": base.__module__})


def listen(session_or_factory: Any, settings: Settings | Any = None) -> None:
    """Version and guard everything flushed through ``session_or_factory``.

    Takes a ``sessionmaker``, a ``scoped_session`` or a ``Session``, or their
    asyncio forms: an ``async_sessionmaker``, an ``async_scoped_session``, an
    ``AsyncSession`` or a subclass of it (see :mod:`chrononaut.aio.sessions`);
    ``settings`` is a :class:`~chrononaut.Settings` or a callable returning one::

        Session = sessionmaker(engine)
        chrononaut.listen(Session)
    """
    target = async_check.sync_target(session_or_factory, create=True)
    if isinstance(target, scoped_session):
        target = target.session_factory
    if isinstance(target, type) and _events.CLASS_INFO in vars(target):
        pass  # the sync Session class chrononaut made for an async factory: mixed in already
    elif isinstance(target, sessionmaker):
        target.class_ = session_class(target.class_)
    elif isinstance(target, Session):
        cls = type(target)
        if cls not in _instance_classes:
            _instance_classes[cls] = session_class(cls)
        target.__class__ = _instance_classes[cls]
    else:
        raise TypeError(
            "listen() takes a sessionmaker, a scoped_session, a Session, an "
            "async_sessionmaker, an async_scoped_session, an AsyncSession or a subclass of "
            f"AsyncSession, got {session_or_factory!r}"
        )
    versioning_listeners.listen(target, settings=settings)
    locking_listeners.listen(target)


def remove(session_or_factory: Any) -> None:
    """Undo :func:`listen`'s events (the session class keeps its mixin)."""
    target = async_check.sync_target(session_or_factory, create=False)
    if isinstance(target, scoped_session):
        target = target.session_factory
    versioning_listeners.remove(target)
    locking_listeners.remove(target)
