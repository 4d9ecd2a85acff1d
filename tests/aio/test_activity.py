"""The activity feed and creation events through AsyncSession, on asyncpg and psycopg 3.

``activity()`` has no awaitable form yet: it runs through ``run_sync`` on the
async driver's connection, whose prepared statements must type every
parameter (the feed writes its constants into the SQL).
"""

from __future__ import annotations

import sqlalchemy as sa

import chrononaut

from .models import Doc, run, versioned_factory


def test_creations_and_the_feed_on_async_drivers(url):
    async def main():
        async with versioned_factory(url) as factory, factory() as session:
            with chrononaut.acting_as("ann"):
                doc = Doc(title="v0", secret="s0")
                session.add(doc)
                await session.commit()
                doc.title = "v1"
                await session.commit()
                await session.execute(sa.insert(Doc), [{"title": "bulk", "secret": "x"}])
                await session.commit()

            def feed(sync_session):
                first = chrononaut.activity(sync_session, models=[Doc], user_id="ann")
                rest = chrononaut.activity(
                    sync_session, models=[Doc], before=first[0].cursor, since=first[-1].changed
                )
                return first, rest

            return await session.run_sync(feed)

    first, rest = run(main())
    assert [(e.operation, e.version, e.columns) for e in first] == [
        ("create", 0, ()),
        ("update", 1, ("title",)),
        ("create", 0, ()),
    ]
    assert [e.cursor for e in rest] == [e.cursor for e in first[1:]]
