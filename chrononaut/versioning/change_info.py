"""What a change records, and who made it.

``change_info`` is ``{"user_id": ..., "remote_addr": ...}``, plus ``"extra"``
when extra info was given, ``"hidden_cols_changed"`` when a hidden column
changed and ``"deleted": true`` on the row written when a record is deleted.
"""

from __future__ import annotations

from typing import Any

from .. import context
from ..actor import current_remote_addr, current_user_id
from ..settings import Settings


def pending_info(state: Any) -> dict[str, Any] | None:
    """Extra info attached with :func:`chrononaut.append_change_info`, if any."""
    return state.info.get(context.PENDING_INFO_KEY)


class ChangeInfoBuilder:
    """Builds the change_info of every row of one flush or bulk statement.

    The config callable runs once per flush; the actor hooks run per object
    so that a model's override of ``_fetch_current_user_id`` is honoured.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.extra = context.current_extra_info()
        self._top: dict[str, Any] | None = None

    def top_level(self) -> dict[str, Any]:
        if self._top is None:
            func = self.settings.extra_change_info_func
            self._top = (
                context.ensure_json(func(), "CHRONONAUT_EXTRA_CHANGE_INFO_FUNC()")
                if (func is not None)
                else {}
            )
        return self._top

    def has_extra(self, state: Any = None) -> bool:
        return bool(self.extra) or (state is not None and bool(pending_info(state)))

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
        info.update(self.top_level())
        extra = self.extra
        pending = pending_info(state) if state is not None else None
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
