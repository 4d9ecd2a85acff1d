"""Per-context state: extra change info, suppression and the acting user.

Everything here lives in :mod:`contextvars`, so it works the same in a Flask
request, a script, a thread or an asyncio task, and never leaks between them.
Nothing in this module imports Flask.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from types import MappingProxyType
from typing import Any

import sqlalchemy as sa

from .exceptions import ChrononautException

_NO_EXTRA: Mapping[str, Any] = MappingProxyType({})
_extra_info: ContextVar[Mapping[str, Any]] = ContextVar("chrononaut_extra_info", default=_NO_EXTRA)
_suppressed: ContextVar[tuple[bool, bool]] = ContextVar(
    "chrononaut_suppressed", default=(False, False)
)
_acting_user: ContextVar[tuple[bool, Any]] = ContextVar(
    "chrononaut_acting_user", default=(False, None)
)

#: Key of an instance's pending extra info in ``sa.inspect(obj).info``.
PENDING_INFO_KEY = "chrononaut_pending_info"
#: Key of an instance's pending top-level change_info entries (such as a broken lease).
PENDING_TOP_INFO_KEY = "chrononaut_pending_top_info"


def _nul_string(value: Any) -> str | None:
    """The first string (key or value, at any depth) holding a NUL character, if any."""
    if isinstance(value, str):
        return value if "\x00" in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            found = _nul_string(key) or _nul_string(item)
            if found is not None:
                return found
    elif isinstance(value, list | tuple):
        for item in value:
            found = _nul_string(item)
            if found is not None:
                return found
    return None


def ensure_json(value: dict[str, Any], what: str) -> dict[str, Any]:
    """Return ``value`` if PostgreSQL's ``json`` can hold it, else raise
    :class:`ChrononautException`.

    Strict JSON: NaN and infinities are refused, and so are strings (keys
    included) holding a NUL character, which PostgreSQL cannot store::

        ensure_json({"ticket": "OPS-12"}, "extra_change_info()")  # returned as is
        ensure_json({"ratio": float("nan")}, "extra_change_info()")  # ChrononautException
    """
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ChrononautException(
            f"{what} must be JSON-serialisable; got {value!r} ({exc}). "
            "Convert the values to str, int, finite float, bool, None, list or dict first."
        ) from None
    nul = _nul_string(value)
    if nul is not None:
        raise ChrononautException(
            f"{what} must be JSON-serialisable; got {value!r}, whose string {nul!r} holds a "
            "NUL character PostgreSQL cannot store. Remove the \\x00 characters first."
        )
    return value


def current_extra_info() -> dict[str, Any]:
    """The extra change info set by the enclosing :func:`extra_change_info` blocks."""
    return dict(_extra_info.get())


@contextmanager
def extra_change_info(**kwargs: Any) -> Iterator[None]:
    """Add ``kwargs`` to ``change_info["extra"]`` of every version written inside.

    Commit inside the block: what is flushed after it has ended does not get
    the extra info. Blocks nest; inner keys win::

        with extra_change_info(ticket="OPS-12"):
            user.email = "new@example.com"
            db.session.commit()
    """
    ensure_json(kwargs, "extra_change_info()")
    token = _extra_info.set({**_extra_info.get(), **kwargs})
    try:
        yield
    finally:
        _extra_info.reset(token)


def rationale(text: str) -> Any:
    """Shorthand for ``extra_change_info(rationale=text)``::

    with rationale("Customer asked by phone"):
        user.name = "Ada"
        db.session.commit()
    """
    if not isinstance(text, str):
        raise TypeError(f"rationale() takes a str, got {text!r}")
    return extra_change_info(rationale=text)


@contextmanager
def append_change_info(obj: Any, **kwargs: Any) -> Iterator[None]:
    """Attach ``kwargs`` to ``change_info["extra"]`` of ``obj``'s next version.

    Unlike :func:`extra_change_info`, the commit may come after the block:
    the info stays with the object until its next version is written (a flush
    rolled back by a savepoint or a failed commit wrote none, so it waits for
    the next). If the block raises, the object's pending info is restored::

        with append_change_info(user, reason="merge of duplicate accounts"):
            user.email = other.email
        db.session.commit()
    """
    ensure_json(kwargs, "append_change_info()")
    state_info = sa.inspect(obj).info
    previous = state_info.get(PENDING_INFO_KEY)
    state_info[PENDING_INFO_KEY] = {**(previous or {}), **kwargs}
    try:
        yield
    except BaseException:
        if previous is None:
            state_info.pop(PENDING_INFO_KEY, None)
        else:
            state_info[PENDING_INFO_KEY] = previous
        raise


def versioning_suppressed() -> bool:
    """True inside :func:`suppress_versioning`."""
    return _suppressed.get()[0]


def history_deletion_allowed() -> bool:
    """True inside ``suppress_versioning(allow_deleting_history=True)``."""
    return _suppressed.get()[1]


@contextmanager
def suppress_versioning(allow_deleting_history: bool = False) -> Iterator[None]:
    """Write no history for changes flushed inside the block. Unsafe.

    Versions are neither written nor bumped, so the changes made inside are
    invisible to ``versions()`` and ``diff()``: use it for data migrations and
    backfills, never for user edits. With ``allow_deleting_history=True``,
    history rows may also be deleted through the session (for example to purge
    personal data)::

        with suppress_versioning(allow_deleting_history=True):
            for old in user.versions():
                db.session.delete(old)
            db.session.commit()
    """
    token = _suppressed.set((True, bool(allow_deleting_history)))
    try:
        yield
    finally:
        _suppressed.reset(token)


def acting_user() -> tuple[bool, Any]:
    """``(True, user_id)`` inside :func:`acting_as`, else ``(False, None)``."""
    return _acting_user.get()


@contextmanager
def acting_as(user_id: Any) -> Iterator[None]:
    """Record ``user_id`` as the actor of every change made inside the block.

    For scripts and workers, where there is no logged-in user::

        with acting_as("worker-7"):
            job.status = "done"
            session.commit()
    """
    if user_id is not None and not isinstance(user_id, (str, int)):
        raise TypeError(f"acting_as() takes a str or int user id, got {user_id!r}")
    token = _acting_user.set((True, user_id))
    try:
        yield
    finally:
        _acting_user.reset(token)
