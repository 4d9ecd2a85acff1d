"""Register a set of event listeners once per target, and remove them again.

``sqlalchemy.event.contains`` cannot be trusted for class-level targets (a
sessionmaker's events live on its Session class): SQLAlchemy keys its registry
by ``id()``, and a new class can reuse a dead class's id. So whether a set of
listeners is registered is kept on the target itself.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

#: Name of the dict of info entries every session of a class made by chrononaut starts
#: with (the sync class of an async_sessionmaker or AsyncSession subclass, see
#: :mod:`chrononaut.aio.sessions`), in that class's own namespace.
CLASS_INFO = "chrononaut_session_info"

Events = Sequence[tuple[str, Callable[..., Any]]]


def _markers(target: Any) -> set[str]:
    if isinstance(target, Session):
        return target.info.setdefault("chrononaut_listening", set())
    markers = getattr(target, "_chrononaut_listening", None)
    if markers is None or (
        isinstance(target, type) and "_chrononaut_listening" not in vars(target)
    ):
        markers = set()
        target._chrononaut_listening = markers
    return markers


def session_info(target: Any) -> dict[str, Any]:
    """The info dict ``target``'s sessions start with: a Session's own ``info``, a
    factory's ``info`` keyword, or the :data:`CLASS_INFO` of a class chrononaut made."""
    if isinstance(target, Session):
        return target.info
    if isinstance(target, type):
        info = vars(target).get(CLASS_INFO)
        if info is None:
            raise TypeError(
                f"settings can be given for a Session or a sessionmaker, not the class {target!r}"
            )
        return info
    return target.kw.setdefault("info", {})


def is_registered(target: Any, name: str) -> bool:
    return name in _markers(target)


def register(target: Any, name: str, events: Events, insert: bool = False) -> None:
    """Listen to ``events`` on ``target`` unless the set ``name`` already is."""
    markers = _markers(target)
    if name in markers:
        return
    for identifier, fn in events:
        sa.event.listen(target, identifier, fn, insert=insert)
    markers.add(name)


def unregister(target: Any, name: str, events: Events) -> None:
    markers = _markers(target)
    if name not in markers:
        return
    for identifier, fn in events:
        sa.event.remove(target, identifier, fn)
    markers.discard(name)
