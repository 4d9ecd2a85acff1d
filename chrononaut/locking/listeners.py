"""The locking events, registered in one place on the caller's session or factory."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from . import guard

_EVENTS = (("before_flush", guard.before_flush),)


def listen(target: Any) -> None:
    """Guard flushes of ``target`` (a Session or sessionmaker) against others' locks and leases.

    The guard runs before every other ``before_flush`` listener, so nothing is
    written for a record it refuses.
    """
    for name, fn in _EVENTS:
        if not sa.event.contains(target, name, fn):
            sa.event.listen(target, name, fn, insert=True)


def remove(target: Any) -> None:
    for name, fn in _EVENTS:
        if sa.event.contains(target, name, fn):
            sa.event.remove(target, name, fn)
