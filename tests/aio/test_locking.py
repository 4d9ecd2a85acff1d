"""``async with chrononaut.aio.lock(...)``, is_locked, check_version and apply_changes on
AsyncSession records, in one process with several sessions (the multi-process tests are
in test_processes.py)."""

from __future__ import annotations

import asyncio
import time

import pytest
import sqlalchemy as sa

import chrononaut
from chrononaut import aio

from .models import Doc, run, versioned_factory


async def _committed_doc(session, **values):
    doc = Doc(title="v0", **values)
    session.add(doc)
    await session.commit()
    return doc


def test_lock_refreshes_commits_on_leaving_and_is_seen_by_others(url):
    async def main():
        async with versioned_factory(url) as factory, factory() as session, factory() as other:
            doc = await _committed_doc(session)
            seen = await other.get(Doc, doc.id)
            seen.title = "other's"
            await other.commit()
            async with aio.lock(doc, timeout=5):
                refreshed = doc.title
                locked_for_other = await aio.is_locked(seen)
                locked_for_self = await aio.is_locked(doc)
                doc.title = "mine"
            committed = session.in_transaction()
            await other.refresh(seen)
            return refreshed, locked_for_other, locked_for_self, committed, seen.title

    refreshed, for_other, for_self, in_transaction, stored = run(main())
    assert refreshed == "other's"  # the lock refreshed the record
    assert (for_other, for_self) == (True, False)
    assert in_transaction is False  # leaving the block committed
    assert stored == "mine"


def test_lock_rolls_back_on_an_exception_and_on_cancellation(url):
    async def main():
        async with versioned_factory(url) as factory, factory() as session:
            doc = await _committed_doc(session)
            with pytest.raises(KeyError):
                async with aio.lock(doc):
                    doc.title = "lost"
                    raise KeyError("boom")
            after_error = session.in_transaction()

            started = asyncio.Event()

            async def edit_forever():
                async with aio.lock(doc):
                    doc.title = "cancelled"
                    await session.flush()
                    started.set()
                    await asyncio.sleep(3600)

            task = asyncio.create_task(edit_forever())
            await started.wait()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            after_cancel = session.in_transaction()
            await session.refresh(doc)
            return after_error, after_cancel, doc.title, doc.version

    assert run(main()) == (False, False, "v0", 0)


def test_nested_locks_commit_at_the_outermost_and_commit_inside_is_refused(url):
    async def main():
        async with versioned_factory(url) as factory, factory() as session:
            a = await _committed_doc(session)
            b = await _committed_doc(session)
            async with aio.lock(a, b):
                async with aio.lock(b):
                    b.title = "inner"
                still_open = session.in_transaction()
                with pytest.raises(chrononaut.ChrononautException) as exc_info:
                    await session.commit()
                a.title = "outer"
            return still_open, str(exc_info.value), a.version, b.version

    still_open, message, a_version, b_version = run(main())
    assert still_open is True
    assert message.startswith("session.commit() inside a lock() block")
    assert (a_version, b_version) == (1, 1)


def test_nowait_and_timeout_raise_the_lock_errors(url):
    async def main():
        async with versioned_factory(url) as factory, factory() as holder, factory() as waiter:
            doc = await _committed_doc(holder)
            mine = await waiter.get(Doc, doc.id)
            await waiter.commit()
            async with aio.lock(doc):
                with pytest.raises(chrononaut.RecordLockedError) as nowait:
                    async with aio.lock(mine, nowait=True):
                        pass
                started = time.monotonic()
                with pytest.raises(chrononaut.LockTimeoutError) as timed_out:
                    async with aio.lock(mine, timeout=0.3):
                        pass
                elapsed = time.monotonic() - started
                usable = await waiter.scalar(sa.text("SELECT 1"))
            return nowait.value, timed_out.value, elapsed, usable

    nowait, timed_out, elapsed, usable = run(main())
    assert type(nowait) is chrononaut.RecordLockedError
    assert str(nowait) == "Doc(id=1) is locked by another transaction."
    assert str(timed_out) == "Timed out after 0.3s waiting for the lock on Doc(id=1)."
    assert 0.2 <= elapsed < 3.0
    assert usable == 1  # the waiter's transaction survived


def test_lock_checks_its_arguments_before_any_sql(url):
    async def main():
        async with versioned_factory(url) as factory, factory() as session:
            doc = await _committed_doc(session)
            errors = []
            for kwargs, kind in (
                ({"timeout": float("nan")}, ValueError),
                ({"nowait": 1}, TypeError),
                ({"nowait": True, "timeout": 1}, ValueError),
            ):
                with pytest.raises(kind) as exc_info:
                    async with aio.lock(doc, **kwargs):
                        pass
                errors.append(str(exc_info.value))
            with pytest.raises(ValueError) as exc_info:
                async with aio.lock():
                    pass
            errors.append(str(exc_info.value))
            assert not session.in_transaction()  # no SQL ran
            doc.title = "unflushed"
            with pytest.raises(chrononaut.ChrononautException) as exc_info:
                async with aio.lock(doc):
                    pass
            errors.append(str(exc_info.value))
            assert session.is_modified(doc)  # nothing refreshed or flushed
            await session.rollback()
            session.expunge(doc)
            with pytest.raises(ValueError) as exc_info:
                async with aio.lock(doc):
                    pass
            errors.append(str(exc_info.value))
            return errors

    errors = run(main())
    assert "timeout must be a positive number of seconds" in errors[0] and "nan" in errors[0]
    assert errors[1] == "nowait and shared must be True or False, got 1, False"
    assert errors[2] == "pass nowait=True or timeout=..., not both"
    assert errors[3] == "lock() needs at least one record"
    assert "Doc(id=1) has unflushed changes" in errors[4]
    assert "Doc(id=1) is detached" in errors[5]


def test_check_version_and_apply_changes(url):
    async def main():
        async with versioned_factory(url) as factory, factory() as session, factory() as other:
            doc = await _committed_doc(session, body="b0")
            await aio.check_version(doc, 0)
            theirs = await other.get(Doc, doc.id)
            with chrononaut.acting_as("bob"):
                theirs.title = "bob's"
                await other.commit()
            await session.refresh(doc)
            with pytest.raises(chrononaut.ConflictError) as stale:
                await aio.check_version(doc, 0)
            with pytest.raises(TypeError):
                await aio.check_version(doc, "0")
            with pytest.raises(chrononaut.ConflictError) as overlap:
                await aio.apply_changes(doc, {"title": "mine"}, 0)
            await aio.apply_changes(doc, {"body": "b1"}, 0)
            await session.commit()
            return stale.value, overlap.value, doc.title, doc.body, doc.version

    stale, overlap, title, body, version = run(main())
    assert (stale.expected_version, stale.current_version) == (0, 1)
    assert [c.user_id for c in stale.changes] == ["bob"]
    assert overlap.columns == ("title",)
    assert (title, body, version) == ("bob's", "b1", 2)
