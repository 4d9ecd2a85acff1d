"""Awaitable history queries, their argument checks, and the sync forms refused on
AsyncSession records with the async form named."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

import chrononaut
from chrononaut import aio

from .models import Doc, run, versioned_factory


async def _doc_with_three_versions(session):
    doc = Doc(title="v0", secret="s0")
    session.add(doc)
    await session.commit()
    for title in ("v1", "v2"):
        doc.title = title
        await session.commit()
    doc.secret = "s3"
    await session.commit()
    return doc


def test_history_queries_match_the_sync_forms(url):
    async def main():
        async with versioned_factory(url) as factory, factory() as session:
            doc = await _doc_with_three_versions(session)
            old = await aio.versions(doc)
            now = await session.scalar(sa.select(sa.func.now()))
            selected = (await session.scalars(aio.versions_select(doc).limit(2))).all()
            first = old[0]
            return {
                "titles": [v.title for v in old],
                "selected": [v.version for v in selected],
                "at_start": (await aio.version_at(doc, first.changed - timedelta(days=1))).version,
                "at_now": await aio.version_at(doc, now + timedelta(days=1)) is doc,
                "changed_before": await aio.has_changed_since(doc, first.changed),
                "changed_after": await aio.has_changed_since(doc, now + timedelta(days=1)),
                "previous": (await aio.previous_version(doc)).version,
                "diff": await aio.diff(doc, first),
                "diff_hidden": await aio.diff(doc, first, include_hidden=True),
                "sync_in_greenlet": await session.run_sync(
                    lambda _s: [v.version for v in doc.versions()]
                ),
            }

    result = run(main())
    assert result["titles"] == ["v0", "v1", "v2"]
    assert result["selected"] == [0, 1]
    assert result["at_start"] == 0
    assert result["at_now"] is True
    assert (result["changed_before"], result["changed_after"]) == (True, False)
    assert result["previous"] == 2
    assert result["diff"] == {"title": ("v0", "v2")}
    assert result["diff_hidden"] == {"title": ("v0", "v2"), "secret": (None, "s3")}
    assert result["sync_in_greenlet"] == [0, 1, 2]


SYNC_FORMS = [
    ("versions", lambda doc: doc.versions(), "await chrononaut.aio.versions(record)"),
    (
        "versions_query",
        lambda doc: doc.versions(return_query=True),
        "chrononaut.aio.versions_select(record) with await session.scalars(...)",
    ),
    ("version_at", lambda doc: doc.version_at(datetime.now(timezone.utc)), "aio.version_at("),
    (
        "has_changed_since",
        lambda doc: doc.has_changed_since(datetime.now(timezone.utc)),
        "aio.has_changed_since(",
    ),
    ("previous_version", lambda doc: doc.previous_version(), "aio.previous_version(record)"),
    ("diff", lambda doc: doc.diff(doc, include_hidden=True), "aio.diff(record"),
    ("revert_to", lambda doc: doc.revert_to(0), "await chrononaut.aio.revert_to(record, version)"),
    ("lock", lambda doc: doc.lock().__enter__(), "async with chrononaut.aio.lock("),
    ("chrononaut.lock", lambda doc: chrononaut.lock(doc).__enter__(), "aio.lock("),
    ("is_locked", lambda doc: doc.is_locked(), "aio.is_locked(record)"),
    ("check_version", lambda doc: doc.check_version(0), "aio.check_version(record"),
    ("apply_changes", lambda doc: doc.apply_changes({"title": "x"}, 0), "aio.apply_changes("),
    ("acquire_lease", lambda doc: doc.acquire_lease(owner="ada"), "aio.acquire_lease(record)"),
    ("lease", lambda doc: doc.lease, "await chrononaut.aio.lease(record)"),
    ("release_lease", lambda doc: doc.release_lease(), "aio.release_lease(record)"),
]


@pytest.mark.parametrize(("name", "call", "named"), SYNC_FORMS, ids=[f[0] for f in SYNC_FORMS])
def test_sync_form_on_an_async_record_names_the_async_form_and_runs_no_sql(url, name, call, named):
    async def main():
        async with versioned_factory(url) as factory, factory() as session:
            doc = Doc(title="v0")
            session.add(doc)
            await session.commit()
            in_transaction = session.in_transaction()
            with pytest.raises(TypeError) as exc_info:
                call(doc)
            # nothing ran: no transaction was begun, the record is untouched
            assert session.in_transaction() == in_transaction
            assert doc.title == "v0" and not session.dirty
            return str(exc_info.value)

    message = run(main())
    assert named in message
    assert "Doc instance belongs to an AsyncSession" in message


def test_diff_without_hidden_needs_no_database_and_works_in_sync_form(url):
    async def main():
        async with versioned_factory(url) as factory, factory() as session:
            doc = await _doc_with_three_versions(session)
            first = (await aio.versions(doc))[0]
            return doc.diff(first)

    assert run(main()) == {"title": ("v0", "v2")}


def test_async_forms_check_arguments_before_any_sql(url):
    async def main():
        async with versioned_factory(url) as factory, factory() as session:
            doc = Doc(title="v0")
            session.add(doc)
            await session.commit()
            errors = []
            for call in (
                lambda: aio.versions(42),
                lambda: aio.version_at(doc, "2024-01-01"),
                lambda: aio.has_changed_since(doc, None),
                lambda: aio.versions(doc, before=float("nan")),
            ):
                with pytest.raises(TypeError) as exc_info:
                    await call()
                errors.append(str(exc_info.value))
            assert not session.in_transaction()
            session.expunge(doc)
            with pytest.raises(chrononaut.ChrononautException) as exc_info:
                await aio.versions(doc)
            errors.append(str(exc_info.value))
            return errors

    errors = run(main())
    assert errors[0] == "chrononaut.aio.versions() takes a Versioned record, got 42"
    assert "version_at(at) must be a datetime" in errors[1] and "'2024-01-01'" in errors[1]
    assert "since" in errors[2] and "None" in errors[2]
    assert "before" in errors[3] and "nan" in errors[3]
    assert "not attached to a session" in errors[4]


def test_async_forms_refuse_a_record_of_a_plain_session(session_factory):
    Doc.metadata.create_all(session_factory.kw["bind"])
    with session_factory() as session:
        doc = Doc(title="v0")
        session.add(doc)
        session.commit()

        async def main():
            with pytest.raises(TypeError) as exc_info:
                await aio.versions(doc)
            return str(exc_info.value)

        message = run(main())
    assert message == (
        "chrononaut.aio.versions() runs through an AsyncSession, but Doc instance belongs to a "
        "plain Session; call record.versions() instead."
    )
