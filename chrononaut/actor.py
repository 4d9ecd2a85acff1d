"""Who is acting: :func:`chrononaut.acting_as`, else the session settings' actor."""

from __future__ import annotations

from typing import Any

from . import context
from .settings import active_settings


def current_user_id() -> Any:
    """The acting user: :func:`chrononaut.acting_as`, else the settings' actor, else None."""
    explicit, user_id = context.acting_user()
    if explicit:
        return user_id
    actor = active_settings().actor
    return actor.user_id() if actor is not None else None


def current_remote_addr() -> Any:
    """The client address from the settings' actor, else None."""
    actor = active_settings().actor
    return actor.remote_addr() if actor is not None else None
