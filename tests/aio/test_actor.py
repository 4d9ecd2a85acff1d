"""The acting user per asyncio task: acting_as() and a TaskActor hook, with many tasks
interleaving their flushes on one event loop, never mix actors."""

from __future__ import annotations

import asyncio

import pytest

import chrononaut
from chrononaut import aio

from .models import Doc, history_rows, run, versioned_factory

TASKS = 20


async def _all_started(started: list[int], everyone: asyncio.Event) -> None:
    """Return once every task has reached this point (a barrier for Python 3.10)."""
    started.append(1)
    if len(started) == TASKS:
        everyone.set()
    await everyone.wait()


@pytest.mark.parametrize("hook", ["acting_as", "task_actor"])
def test_concurrent_tasks_never_mix_actors(url, clean_database, hook):
    actor = aio.TaskActor()
    settings = chrononaut.Settings(actor=actor) if hook == "task_actor" else None

    async def edit(factory, number, started, everyone):
        user = f"user-{number}"
        scope = (
            actor.acting(user, remote_addr=f"10.0.0.{number}")
            if hook == "task_actor"
            else (chrononaut.acting_as(user))
        )
        with scope:
            async with factory() as session:
                doc = await session.get(Doc, number)
                doc.title = f"by {user}"
                # every task holds its change and its actor before any of them flushes
                await _all_started(started, everyone)
                await asyncio.sleep(0)
                await session.commit()
                assert (actor.user_id() == user) is (hook == "task_actor")
        return number

    async def main():
        async with versioned_factory(url, settings=settings, pool_size=TASKS) as factory:
            async with factory() as session:
                session.add_all(Doc(id=n, title="v0") for n in range(TASKS))
                await session.commit()
            started: list[int] = []
            everyone = asyncio.Event()
            done = await asyncio.gather(
                *(edit(factory, n, started, everyone) for n in range(TASKS))
            )
            assert actor.user_id() is None  # nothing leaked into the parent task
            return done

    assert run(main()) == list(range(TASKS))
    rows = history_rows(clean_database)
    assert len(rows) == TASKS
    for doc_id, version, title, info in rows:
        assert (version, title) == (0, "v0")
        assert info["user_id"] == f"user-{doc_id}"
        if hook == "task_actor":
            assert info["remote_addr"] == f"10.0.0.{doc_id}"


def test_task_actor_checks_its_arguments():
    actor = aio.TaskActor()
    with pytest.raises(TypeError) as exc_info, actor.acting(object()):
        pass
    assert "TaskActor.acting() takes a str or int user id" in str(exc_info.value)
    with pytest.raises(TypeError), actor.acting(True):
        pass
    with pytest.raises(TypeError), actor.acting("ada", remote_addr=127):
        pass
    assert actor.user_id() is None and actor.remote_addr() is None
