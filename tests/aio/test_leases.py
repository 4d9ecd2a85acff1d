"""Awaitable edit leases: take, renew, look up, break and release."""

from __future__ import annotations

from datetime import timedelta

import pytest

import chrononaut
from chrononaut import aio

from .models import history_rows, run, versioned_factory
from .test_locking import _committed_doc


def test_leases_acquire_renew_look_up_break_and_release(url, clean_database):
    async def main():
        async with versioned_factory(url) as factory, factory() as session:
            doc = await _committed_doc(session)
            first = await aio.acquire_lease(doc, owner="ada", ttl=timedelta(minutes=5))
            await session.commit()
            renewed = await aio.acquire_lease(doc, owner="ada", ttl=timedelta(minutes=10))
            await session.commit()
            looked_up = await aio.lease(doc)
            with pytest.raises(chrononaut.RecordLockedError) as held:
                await aio.acquire_lease(doc, owner="bob")
            with pytest.raises(ValueError):
                await aio.acquire_lease(doc, owner="")
            with pytest.raises(ValueError):
                await aio.acquire_lease(doc, owner="bob", ttl=timedelta(0))
            with chrononaut.acting_as("bob"):
                await aio.acquire_lease(doc, force=True)
                doc.title = "bob's"
                await session.commit()
                await aio.release_lease(doc)
                await session.commit()
            gone = await aio.lease(doc)
            return first, renewed, looked_up, held.value, gone

    first, renewed, looked_up, held, gone = run(main())
    assert first.owner == renewed.owner == looked_up.owner == "ada"
    assert renewed.acquired_at == first.acquired_at and renewed.expires_at > first.expires_at
    assert held.owner == "ada"
    assert gone is None
    [(_, _, _, info)] = history_rows(clean_database)
    assert info["lease_broken"]["owner"] == "ada" and info["lease_broken"]["by"] == "bob"
