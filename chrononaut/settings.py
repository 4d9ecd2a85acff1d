"""Settings the core reads at flush time, with their defaults in one place.

The Flask extension fills them from ``app.config`` (keys ``CHRONONAUT_*``);
without Flask, pass a :class:`Settings` to :func:`chrononaut.listen`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Protocol

#: Key of the settings (or a zero-argument callable returning them) in ``Session.info``.
SESSION_INFO_KEY = "chrononaut_settings"


class ActorProvider(Protocol):
    """Where change_info's ``user_id`` and ``remote_addr`` come from."""

    def user_id(self) -> Any: ...

    def remote_addr(self) -> Any: ...


@dataclass(frozen=True)
class Settings:
    """Behaviour switches of a versioned session.

    ``require_extra_change_info`` (config ``CHRONONAUT_REQUIRE_EXTRA_CHANGE_INFO``,
    default False): refuse a versioned update or delete flushed without extra
    change info. ``extra_change_info_func`` (config
    ``CHRONONAUT_EXTRA_CHANGE_INFO_FUNC``, default None): a callable whose dict is
    merged into the top level of every change_info. ``actor``: who is acting,
    by default nobody (``user_id`` and ``remote_addr`` None). ``lock_wait``
    (config ``CHRONONAUT_LOCK_WAIT``, default 0): seconds a flush waits for
    another transaction's ``lock()`` on a record it writes before raising
    :class:`~chrononaut.RecordLockedError`; 0 refuses at once.
    """

    require_extra_change_info: bool = False
    extra_change_info_func: Callable[[], dict[str, Any]] | None = None
    actor: ActorProvider | None = None
    lock_wait: float = 0.0

    def __post_init__(self) -> None:
        check_seconds(self.lock_wait, "lock_wait (CHRONONAUT_LOCK_WAIT)", allow_zero=True)


#: The longest wait PostgreSQL's ``lock_timeout`` (an int of milliseconds) can express.
MAX_WAIT_SECONDS = 2_147_483.647


def check_seconds(value: Any, what: str, allow_zero: bool = False) -> float:
    """``value`` as seconds PostgreSQL can wait; :class:`ValueError` naming ``what`` otherwise.

    Waits become ``lock_timeout``, a whole number of milliseconds up to
    2147483647: a positive wait under a millisecond waits one millisecond, a
    longer one than :data:`MAX_WAIT_SECONDS` is refused, and so are NaN,
    infinities, booleans, non-numbers, negative waits and (unless
    ``allow_zero``) zero::

        check_seconds(2.5, "timeout")  # 2.5
        check_seconds(float("nan"), "timeout")  # ValueError
    """
    number = isinstance(value, int | float) and not isinstance(value, bool)
    valid = (
        number
        and (isinstance(value, int) or math.isfinite(value))
        and (value > 0 or (allow_zero and value == 0))
        and round(value * 1000) <= 2_147_483_647
    )
    if not valid:
        kind = "a number of seconds >= 0" if allow_zero else "a positive number of seconds"
        raise ValueError(
            f"{what} must be {kind}, at most {MAX_WAIT_SECONDS} (PostgreSQL's lock_timeout "
            f"limit), got {value!r}."
        )
    return float(value)


DEFAULT_SETTINGS = Settings()

_active: ContextVar[Settings] = ContextVar("chrononaut_active_settings", default=DEFAULT_SETTINGS)


def settings_for(session: Any) -> Settings:
    """The settings of ``session``: its own, or the defaults."""
    source = session.info.get(SESSION_INFO_KEY)
    if source is None:
        return DEFAULT_SETTINGS
    return source() if callable(source) else source


def active_settings() -> Settings:
    """The settings of the session being flushed right now (defaults outside a flush)."""
    return _active.get()


def activate(settings: Settings) -> Any:
    """Make ``settings`` active; returns a token for :func:`deactivate`."""
    return _active.set(settings)


def deactivate(token: Any) -> None:
    _active.reset(token)
