"""chrononaut.listen() on asyncio sessions and factories: everything a flush does works
through AsyncSession exactly as through Session."""

from __future__ import annotations

import asyncio

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import (
    AsyncSession,
    async_scoped_session,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import Session

import chrononaut
from chrononaut import aio

from .models import Doc, history_rows, run, versioned_factory


async def _edit_twice(session: AsyncSession) -> Doc:
    doc = Doc(title="draft")
    session.add(doc)
    await session.commit()
    doc.title = "final"
    await session.commit()
    return doc


def test_async_sessionmaker_versions_with_change_info(url):
    async def main():
        async with versioned_factory(url) as factory, factory() as session:
            with chrononaut.acting_as("ada"), chrononaut.extra_change_info(ticket="T-1"):
                doc = await _edit_twice(session)
            [old] = await aio.versions(doc)
            return doc.version, old.title, old.version, old.change_info

    version, title, old_version, info = run(main())
    assert (version, title, old_version) == (1, "draft", 0)
    assert info["user_id"] == "ada"
    assert info["extra"] == {"ticket": "T-1"}


@pytest.mark.parametrize("form", ["instance", "subclass", "scoped"])
def test_listen_takes_every_async_form(url, form):
    async def main():
        engine = create_async_engine(url)
        try:
            if form == "instance":
                session = AsyncSession(engine, expire_on_commit=False)
                chrononaut.listen(session)
            elif form == "subclass":

                class MySession(AsyncSession):
                    pass

                chrononaut.listen(MySession, settings=None)
                session = MySession(engine, expire_on_commit=False)
            else:
                scoped = async_scoped_session(
                    async_sessionmaker(engine, expire_on_commit=False),
                    scopefunc=asyncio.current_task,
                )
                chrononaut.listen(scoped)
                session = scoped()
            async with session:
                doc = await _edit_twice(session)
                return [v.title for v in await aio.versions(doc)]
        finally:
            await engine.dispose()

    assert run(main()) == ["draft"]


def test_listen_on_a_factory_versions_only_that_factory(url):
    async def main():
        engine = create_async_engine(url)
        try:
            versioned = async_sessionmaker(engine, expire_on_commit=False)
            plain = async_sessionmaker(engine, expire_on_commit=False)
            chrononaut.listen(versioned)
            chrononaut.listen(versioned)  # twice: once
            assert versioned.kw["sync_session_class"] is not Session
            assert issubclass(versioned.kw["sync_session_class"], Session)
            assert "sync_session_class" not in plain.kw
            async with plain() as session:
                doc = await _edit_twice(session)
                return doc.version
        finally:
            await engine.dispose()

    # the unversioned factory's UPDATE leaves the version alone and writes no history
    assert run(main()) == 0


def test_listen_refuses_the_asyncsession_class_itself():
    with pytest.raises(TypeError) as exc_info:
        chrononaut.listen(AsyncSession)
    assert "every AsyncSession of the process" in str(exc_info.value)
    assert AsyncSession.sync_session_class is Session


def test_listen_refuses_other_objects():
    with pytest.raises(TypeError) as exc_info:
        chrononaut.listen(42)
    assert "async_sessionmaker" in str(exc_info.value) and "42" in str(exc_info.value)


def test_settings_reach_the_sync_sessions_and_info_is_kept(url):
    settings = chrononaut.Settings(require_extra_change_info=True)

    async def main():
        async with (
            versioned_factory(url, settings=settings) as factory,
            factory(info={"mine": 1}) as session,
        ):
            assert session.info["mine"] == 1
            doc = Doc(title="a")
            session.add(doc)
            await session.commit()
            doc.title = "b"
            with pytest.raises(chrononaut.ChrononautException) as exc_info:
                await session.commit()
            await session.rollback()
            return str(exc_info.value)

    assert "extra" in run(main())


def test_stale_write_raises_conflict_error_explained_from_history(url):
    async def main():
        async with versioned_factory(url) as factory, factory() as first, factory() as second:
            doc = Doc(title="v0")
            first.add(doc)
            await first.commit()
            other = await second.get(Doc, doc.id)
            with chrononaut.acting_as("bob"):
                doc.title = "bob's"
                await first.commit()
            other.title = "mine"
            with pytest.raises(chrononaut.ConflictError) as exc_info:
                await second.commit()
            await second.rollback()
            return exc_info.value

    error = run(main())
    assert (error.expected_version, error.current_version) == (0, 1)
    assert [(c.version, c.user_id, c.columns) for c in error.changes] == [(1, "bob", ("title",))]


def test_flush_guard_refuses_a_write_to_a_record_another_session_locks(url):
    async def main():
        async with versioned_factory(url) as factory, factory() as holder, factory() as writer:
            doc = Doc(title="v0")
            holder.add(doc)
            await holder.commit()
            other = await writer.get(Doc, doc.id)
            async with aio.lock(doc):
                other.title = "sneaky"
                with pytest.raises(chrononaut.RecordLockedError) as exc_info:
                    await writer.commit()
                await writer.rollback()
            return exc_info.value

    error = run(main())
    assert error.record == "Doc(id=1)"


def test_lease_held_by_another_refuses_the_flush(url):
    async def main():
        async with versioned_factory(url) as factory, factory() as session:
            doc = Doc(title="v0")
            session.add(doc)
            await session.commit()
            await aio.acquire_lease(doc, owner="ada")
            await session.commit()
            with chrononaut.acting_as("bob"):
                doc.title = "bob's"
                with pytest.raises(chrononaut.RecordLockedError) as exc_info:
                    await session.commit()
            await session.rollback()
            return exc_info.value

    error = run(main())
    assert error.owner == "ada"


def test_bulk_update_statement_is_versioned(url):
    async def main():
        async with versioned_factory(url) as factory, factory() as session:
            session.add_all([Doc(id=1, title="a"), Doc(id=2, title="b")])
            await session.commit()
            with chrononaut.acting_as("bulk"):
                await session.execute(sa.update(Doc).where(Doc.id == 1).values(title="A"))
                await session.commit()
            doc = await session.get(Doc, 1)
            await session.refresh(doc)
            old = await aio.versions(doc)
            return doc.version, [(v.title, v.change_info["user_id"]) for v in old]

    assert run(main()) == (1, [("a", "bulk")])


def test_remove_stops_versioning(url):
    async def main():
        async with versioned_factory(url) as factory:
            chrononaut.remove(factory)
            async with factory() as session:
                doc = await _edit_twice(session)
                return doc.version

    assert run(main()) == 0


def test_settings_given_for_an_asyncsession_subclass_reach_its_sessions(url):
    settings = chrononaut.Settings(require_extra_change_info=True)

    class StrictSession(AsyncSession):
        pass

    chrononaut.listen(StrictSession, settings=settings)
    made = StrictSession.sync_session_class

    async def main():
        engine = create_async_engine(url)
        try:
            async with StrictSession(engine, expire_on_commit=False) as session:
                doc = Doc(title="a")
                session.add(doc)
                await session.commit()
                doc.title = "b"
                with pytest.raises(chrononaut.ChrononautException):
                    await session.commit()
                await session.rollback()
                await session.refresh(doc)  # the rollback expired it
                doc.title = "c"
                with chrononaut.rationale("typo"):
                    await session.commit()
                return [v.change_info["extra"] for v in await aio.versions(doc)]
        finally:
            await engine.dispose()

    assert run(main()) == [{"rationale": "typo"}]
    chrononaut.listen(StrictSession)  # again: the same class, not a subclass of it
    assert StrictSession.sync_session_class is made
    assert AsyncSession.sync_session_class is Session


def test_lock_wait_waits_for_the_holder_then_writes(url):
    settings = chrononaut.Settings(lock_wait=5)

    async def main():
        async with versioned_factory(url, settings=settings) as factory, factory() as holder:
            doc = Doc(title="v0")
            holder.add(doc)
            await holder.commit()
            events = []
            locked = asyncio.Event()

            async def hold():
                async with aio.lock(doc):
                    locked.set()
                    await asyncio.sleep(0.3)
                    events.append("holder leaves")

            holding = asyncio.create_task(hold())
            await locked.wait()
            async with factory() as writer:
                other = await writer.get(Doc, doc.id)
                other.title = "writer's"
                await writer.commit()  # waits for the holder's commit, then writes
                events.append("writer committed")
                await holding
                return events, other.version

    assert run(main()) == (["holder leaves", "writer committed"], 1)


def test_bulk_delete_is_versioned_and_bulk_statements_obey_the_guard(url):
    async def main():
        async with versioned_factory(url) as factory, factory() as session:
            session.add_all([Doc(id=1, title="a"), Doc(id=2, title="b")])
            await session.commit()
            async with factory() as other:
                locked = await other.get(Doc, 2)
                async with aio.lock(locked):
                    with pytest.raises(chrononaut.RecordLockedError) as exc_info:
                        await session.execute(sa.update(Doc).values(title="all"))
                    await session.rollback()
            with chrononaut.acting_as("cleaner"):
                await session.execute(sa.delete(Doc).where(Doc.id == 1))
                await session.commit()
            titles = (await session.scalars(sa.select(Doc.title).order_by(Doc.id))).all()
            return exc_info.value.record, titles

    record, titles = run(main())
    assert record == "Doc(id=2)"
    assert titles == ["b"]  # the refused UPDATE wrote nothing


def test_bulk_delete_writes_the_deletion_row(url, clean_database):
    async def main():
        async with versioned_factory(url) as factory, factory() as session:
            session.add(Doc(id=1, title="a"))
            await session.commit()
            with chrononaut.acting_as("cleaner"):
                await session.execute(sa.delete(Doc).where(Doc.id == 1))
                await session.commit()

    run(main())
    [(doc_id, version, title, info)] = history_rows(clean_database)
    assert (doc_id, version, title) == (1, 0, "a")
    assert info["deleted"] is True and info["user_id"] == "cleaner"
