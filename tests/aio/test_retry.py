"""``@chrononaut.aio.retry_on_conflict`` on coroutine functions."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy.ext.asyncio import async_scoped_session

import chrononaut
from chrononaut import aio

from .models import Doc, run, versioned_factory
from .test_locking import _committed_doc


def test_retry_on_conflict_reruns_the_coroutine_after_an_awaited_rollback(url):
    async def main():
        async with versioned_factory(url) as factory, factory() as session, factory() as other:
            doc = await _committed_doc(session, body="0")
            doc_id, attempts = doc.id, 0

            @aio.retry_on_conflict(attempts=3)
            async def append():
                nonlocal attempts
                attempts += 1
                mine = await session.get(Doc, doc_id)
                if attempts == 1:  # someone else writes between read and write
                    theirs = await other.get(Doc, doc_id)
                    theirs.body += "+theirs"
                    await other.commit()
                mine.body += "+mine"
                await session.commit()

            await append()
            await session.refresh(doc)
            return attempts, doc.body, doc.version

    assert run(main()) == (2, "0+theirs+mine", 2)


def test_retry_on_conflict_gives_up_and_never_retries_lock_errors():
    calls = []

    @aio.retry_on_conflict(attempts=2)
    async def conflicting():
        calls.append("conflict")
        raise chrononaut.ConflictError(
            model="Doc",
            identity=(1,),
            record="Doc(id=1)",
            expected_version=0,
            current_version=1,
            changes=[],
        )

    @aio.retry_on_conflict
    async def locked():
        calls.append("locked")
        raise chrononaut.RecordLockedError("Doc(id=1) is locked.", record="Doc(id=1)")

    with pytest.raises(chrononaut.ConflictError):
        run(conflicting())
    with pytest.raises(chrononaut.RecordLockedError):
        run(locked())
    assert calls == ["conflict", "conflict", "locked"]


def test_retry_on_conflict_forms_refuse_the_other_kind_of_function():
    async def coroutine_function():
        pass

    def plain_function():
        pass

    with pytest.raises(TypeError) as sync_form:
        chrononaut.retry_on_conflict(coroutine_function)
    with pytest.raises(TypeError) as async_form:
        aio.retry_on_conflict(plain_function)
    with pytest.raises(ValueError):
        aio.retry_on_conflict(attempts=0)
    assert "chrononaut.aio.retry_on_conflict" in str(sync_form.value)
    assert "coroutine_function" in str(sync_form.value)
    assert "chrononaut.retry_on_conflict" in str(async_form.value)


def test_retry_on_conflict_rolls_back_the_session_it_is_given(url):
    async def main():
        async with versioned_factory(url) as factory:
            scoped = async_scoped_session(factory, scopefunc=asyncio.current_task)
            async with factory() as other:
                doc = Doc(title="v0")
                scoped.add(doc)
                await scoped.commit()
                doc_id, attempts = doc.id, 0

                @aio.retry_on_conflict(attempts=2, session=scoped)
                async def rename():
                    nonlocal attempts
                    attempts += 1
                    mine = await scoped.get(Doc, doc_id)
                    if attempts == 1:
                        theirs = await other.get(Doc, doc_id)
                        theirs.title = "theirs"
                        await other.commit()
                    mine.title = f"{mine.title}+mine"
                    await scoped.commit()

                await rename()
                await scoped.remove()
                return attempts

    assert run(main()) == 2
