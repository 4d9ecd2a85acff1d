"""Awaitable revert, restore and prune, and their sync forms refused on AsyncSessions."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy.ext.asyncio import async_scoped_session

import chrononaut
from chrononaut import aio

from .models import Doc, history_rows, run, versioned_factory


async def _doc_with_versions(session, *titles):
    doc = Doc(id=1, title=titles[0], secret="s")
    session.add(doc)
    await session.commit()
    for title in titles[1:]:
        doc.title = title
        await session.commit()
    return doc


def test_revert_to_writes_a_new_version_marked_reverted_to(url):
    async def main():
        async with versioned_factory(url) as factory, factory() as session:
            doc = await _doc_with_versions(session, "v0", "v1", "spam")
            first = (await aio.versions(doc))[0]
            assert await aio.revert_to(doc, first) is doc
            await session.commit()
            newest = await aio.previous_version(doc)
            with pytest.raises(chrononaut.VersionNotFoundError) as missing:
                await aio.revert_to(doc, 99)
            with pytest.raises(TypeError):
                await aio.revert_to(doc, True)
            return doc.title, doc.version, newest.change_info["reverted_to"], missing.value

    title, version, reverted_to, missing = run(main())
    assert (title, version, reverted_to) == ("v0", 3, 0)
    assert missing.version == 99


def test_restore_recreates_a_deleted_record_through_the_session_or_its_scope(url):
    async def main():
        async with versioned_factory(url) as factory:
            scoped = async_scoped_session(factory, scopefunc=asyncio.current_task)
            doc = await _doc_with_versions(scoped, "v0", "v1")
            await scoped.delete(doc)
            await scoped.commit()
            restored = await aio.restore(scoped, Doc, 1)
            await scoped.commit()
            result = restored.title, restored.version, restored.secret
            with pytest.raises(chrononaut.ChrononautException) as exists:
                await aio.restore(scoped(), Doc, 1)
            with pytest.raises(TypeError) as bad_model:
                await aio.restore(scoped, "Doc", 1)
            await scoped.remove()
            return result, str(exists.value), str(bad_model.value)

    (title, version, secret), exists, bad_model = run(main())
    assert (title, version, secret) == ("v1", 2, None)  # hidden: back to its default
    assert "Doc(id=1) exists" in exists
    assert "takes a mapped Versioned model class, got 'Doc'" in bad_model


def test_prune_deletes_old_history_through_the_async_engine(url, clean_database):
    async def main():
        async with versioned_factory(url) as factory, factory() as session:
            await _doc_with_versions(session, "v0", "v1", "v2", "v3")
            would = await aio.prune(session, [Doc], keep_last=1, dry_run=True)
            done = await aio.prune(session, [Doc], keep_last=1)
            with pytest.raises(ValueError):
                await aio.prune(session, [Doc])
            return would, done

    would, done = run(main())
    assert would == done == {Doc: 2}
    assert [(version, title) for _, version, title, _ in history_rows(clean_database)] == [
        (2, "v2")
    ]


def test_sync_forms_given_an_async_session_name_the_async_form(url):
    async def main():
        async with versioned_factory(url) as factory, factory() as session:
            errors = []
            for call in (
                lambda: chrononaut.restore(session, Doc, 1),
                lambda: chrononaut.restore(session.sync_session, Doc, 1),
                lambda: chrononaut.prune(session, keep_last=1),
            ):
                with pytest.raises(TypeError) as exc_info:
                    call()
                errors.append(str(exc_info.value))
            assert not session.in_transaction()
            return errors

    restore_async, restore_sync_side, prune_async = run(main())
    assert "restore() takes a Session, got the AsyncSession" in restore_async
    assert "use await chrononaut.aio.restore(session, ...) instead" in restore_async
    assert "await chrononaut.aio.restore(session, ...)" in restore_sync_side
    assert "use await chrononaut.aio.prune(session, ...) instead" in prune_async


def test_async_forms_given_a_plain_session_name_the_sync_form(session):
    async def main():
        with pytest.raises(TypeError) as exc_info:
            await aio.restore(session, Doc, 1)
        return str(exc_info.value)

    message = run(main())
    assert message.startswith("chrononaut.aio.restore() takes an AsyncSession")
    assert message.endswith("with a Session call chrononaut.restore() instead.")
