"""The locking events, registered in one place on the caller's session or factory."""

from __future__ import annotations

from typing import Any

from .. import _events
from . import guard, leases

_EVENTS = (
    ("before_flush", guard.before_flush),
    ("after_soft_rollback", leases.forget_breaks),
    ("after_commit", leases.keep_breaks),
)


def listen(target: Any) -> None:
    """Guard flushes of ``target`` (a Session or sessionmaker) against others' locks and leases.

    The guard runs before every other ``before_flush`` listener, so nothing is
    written for a record it refuses.
    """
    _events.register(target, "locking", _EVENTS, insert=True)


def remove(target: Any) -> None:
    _events.unregister(target, "locking", _EVENTS)
