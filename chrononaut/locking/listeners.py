"""The locking events, registered in one place on the caller's session or factory."""

from __future__ import annotations

from typing import Any

from .. import _events
from ..flush_writes import GUARD_INFO_KEY
from . import guard, leases

_EVENTS = (
    ("before_flush", guard.before_flush),
    ("after_soft_rollback", leases.forget_breaks),
    ("after_commit", leases.keep_breaks),
)


def _set_guard(target: Any, guard: Any) -> None:
    info = _events.session_info(target)
    if guard is None:
        info.pop(GUARD_INFO_KEY, None)
    else:
        info[GUARD_INFO_KEY] = guard


def listen(target: Any) -> None:
    """Guard flushes of ``target`` (a Session or sessionmaker) against others' locks and leases.

    The guard runs before every other ``before_flush`` listener, so nothing is
    written for a record it refuses.
    """
    _set_guard(target, guard.GUARD)
    _events.register(target, "locking", _EVENTS, insert=True)


def remove(target: Any) -> None:
    _set_guard(target, None)
    _events.unregister(target, "locking", _EVENTS)
