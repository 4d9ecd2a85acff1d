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
