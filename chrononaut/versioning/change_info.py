"""What a change records, and who made it.

``change_info`` is ``{"user_id": ..., "remote_addr": ...}``, plus ``"extra"``
when extra info was given, ``"hidden_cols_changed"`` when a hidden column
changed and ``"deleted": true`` on the row written when a record is deleted.
The top-level keys chrononaut writes are :data:`RESERVED_KEYS`; a key of
``CHRONONAUT_EXTRA_CHANGE_INFO_FUNC``'s dict that is one of them goes under
``"extra"`` instead, so that the function cannot make an update read as a
deletion or change who made it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm.attributes import NO_VALUE

from .. import context
from ..actor import current_remote_addr, current_user_id
from ..exceptions import ChrononautException
from ..settings import Settings
from .names import VERSION

#: The top-level change_info keys chrononaut writes (the recorder, the lease
#: breaker, the database guard's triggers, revert and restore); nothing else may set them.
RESERVED_KEYS = frozenset(
    {
        "user_id",
        "remote_addr",
        "deleted",
        "extra",
        "hidden_cols_changed",
        "lease_broken",
        "relationships",
        "source",
        "db_user",
        "application_name",
        "reverted_to",
        "restored",
    }
)

_FUNC_NAME = "CHRONONAUT_EXTRA_CHANGE_INFO_FUNC()"


def _func_info(func: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """``func()`` split into (top-level entries, entries colliding with :data:`RESERVED_KEYS`)."""
    value = func()
    if not isinstance(value, dict):
        raise ChrononautException(
            f"{_FUNC_NAME} must return a dict, got {value!r}; return {{}} to add nothing."
        )
    context.ensure_json(value, _FUNC_NAME)
    top = {k: v for k, v in value.items() if k not in RESERVED_KEYS}
    colliding = {k: v for k, v in value.items() if k in RESERVED_KEYS}
    return top, colliding


def has_content(value: Any) -> bool:
    """Whether ``value`` counts as extra info for strict mode: not None, blank or empty."""
    if value is None:
        return False
    if isinstance(value, str):
        return bool(value.strip())
    if isinstance(value, dict | list | tuple):
        return any(has_content(v) for v in (value.values() if isinstance(value, dict) else value))
    return True


#: Key in ``InstanceState.info`` of ``{version: info}``: the appended info each flush
#: put in the history row of that version. The recorder consumes the pending info
#: when it builds the row; until that version is committed (the record's version
#: has moved past it), a rolled-back flush (savepoint, failed commit, a whole
#: transaction that flushed several versions) has not written it, and the next
#: write of that version carries it again, with the info of every later version
#: rolled back with it.
SENT_INFO_KEY = "chrononaut_sent_info"


def _version_written(state: Any) -> int | None:
    """The version the next history row of a versioned ``state`` records, if known."""
    if getattr(state.class_, "__chrononaut__", None) is None:
        return None
    version = state.committed_state.get(VERSION, NO_VALUE)
    if version is NO_VALUE or version is None:
        version = state.dict.get(VERSION, NO_VALUE)
    if version is NO_VALUE and state.obj() is not None:
        version = state.obj().version
    return None if version is NO_VALUE else version


def _unwritten(sent: dict[int, dict[str, Any]], version: int) -> dict[str, Any]:
    """The info sent with ``version`` and later versions, oldest first (later wins)."""
    merged: dict[str, Any] = {}
    for sent_version in sorted(v for v in sent if v >= version):
        merged.update(sent[sent_version])
    return merged


def pending_info(state: Any) -> dict[str, Any] | None:
    """Extra info attached with :func:`chrononaut.append_change_info`, if any,
    including what rolled-back flushes of the same or later versions carried."""
    pending = state.info.get(context.PENDING_INFO_KEY)
    sent = state.info.get(SENT_INFO_KEY)
    if not sent:
        return pending
    version = _version_written(state)
    if version is None:
        return pending
    unwritten = _unwritten(sent, version)  # versions before it were written
    if not unwritten:
        return pending
    return {**unwritten, **(pending or {})}


def _remember_sent(state: Any, info: dict[str, Any] | None) -> None:
    version = _version_written(state)
    sent = state.info.get(SENT_INFO_KEY) or {}
    if version is not None:  # later versions' info is in ``info`` now (pending_info merged it)
        sent = {v: i for v, i in sent.items() if v < version}
        if info:
            sent[version] = info
    if sent:
        state.info[SENT_INFO_KEY] = sent
    else:
        state.info.pop(SENT_INFO_KEY, None)


class ChangeInfoBuilder:
    """Builds the change_info of every row of one flush or bulk statement.

    The config callable runs once per flush; the actor hooks run per object
    so that a model's override of ``_fetch_current_user_id`` is honoured.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.extra = context.current_extra_info()
        self._func: tuple[dict[str, Any], dict[str, Any]] | None = None

    def _func_info(self) -> tuple[dict[str, Any], dict[str, Any]]:
        if self._func is None:
            func = self.settings.extra_change_info_func
            self._func = _func_info(func) if func is not None else ({}, {})
        return self._func

    def top_level(self) -> dict[str, Any]:
        """The config callable's entries that may go at the top level."""
        return self._func_info()[0]

    def has_extra(self, state: Any = None) -> bool:
        """Whether strict mode is satisfied: some extra info that is not None or blank."""
        pending = pending_info(state) if state is not None else None
        return has_content(self.extra) or has_content(pending)

    def build(
        self,
        obj: Any,
        state: Any = None,
        hidden_changed: list[str] | None = None,
        deleted: bool = False,
    ) -> dict[str, Any]:
        if obj is not None:
            info = {
                "user_id": obj._fetch_current_user_id(),
                "remote_addr": obj._fetch_remote_addr(),
            }
        else:
            info = {"user_id": current_user_id(), "remote_addr": current_remote_addr()}
        top, colliding = self._func_info()
        info.update(top)
        extra = {**colliding, **self.extra}
        pending = pending_info(state) if state is not None else None
        if state is not None and obj is not None:
            _remember_sent(state, pending)
        if pending:
            extra = {**extra, **pending}
        if extra:
            info["extra"] = extra
        if state is not None:
            info.update(state.info.get(context.PENDING_TOP_INFO_KEY) or {})
        if hidden_changed:
            info["hidden_cols_changed"] = sorted(hidden_changed)
        if deleted:
            info["deleted"] = True
        return info
