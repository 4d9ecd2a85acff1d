"""The acting user per asyncio task: :class:`TaskActor`, a hook for ``Settings(actor=...)``.

``change_info``'s ``user_id`` and ``remote_addr`` come from
:func:`chrononaut.acting_as`, else from the session settings' actor, both
read when the flush runs. An asyncio task runs with its own copy of the
context variables (and the AsyncSession's greenlet with the task's), so
:func:`~chrononaut.acting_as` and a :class:`TaskActor` set in one task are
never seen by another: set them in middleware, per request, or per job in a
worker.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any


class TaskActor:
    """An actor provider whose user and client address are set per task::

    actor = TaskActor()
    factory = async_sessionmaker(engine)
    chrononaut.listen(factory, settings=chrononaut.Settings(actor=actor))

    async def handle(request):
        with actor.acting(request.user_id, remote_addr=request.client):
            ...  # every change flushed in this task records them
    """

    def __init__(self) -> None:
        self._current: ContextVar[tuple[Any, Any]] = ContextVar(
            f"chrononaut_task_actor_{id(self)}", default=(None, None)
        )

    @contextmanager
    def acting(self, user_id: Any, remote_addr: str | None = None) -> Iterator[None]:
        """Record ``user_id`` (a str, an int or None) and ``remote_addr`` for changes flushed
        by this task inside the block."""
        if user_id is not None and (
            isinstance(user_id, bool) or not isinstance(user_id, str | int)
        ):
            raise TypeError(f"TaskActor.acting() takes a str or int user id, got {user_id!r}")
        if remote_addr is not None and not isinstance(remote_addr, str):
            raise TypeError(
                f"TaskActor.acting() takes remote_addr as a str or None, got {remote_addr!r}"
            )
        token = self._current.set((user_id, remote_addr))
        try:
            yield
        finally:
            self._current.reset(token)

    def user_id(self) -> Any:
        """The user set by the enclosing :meth:`acting` block of this task, else None."""
        return self._current.get()[0]

    def remote_addr(self) -> Any:
        """The client address set by the enclosing :meth:`acting` block, else None."""
        return self._current.get()[1]
