"""A primary key change would cut a record off from its history: refused on every path."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from chrononaut import ChrononautException, Versioned, suppress_versioning
from chrononaut.locking.optimistic import apply_changes


@pytest.fixture
def Doc(Base, engine, session):
    class Doc(Base, Versioned):
        __tablename__ = "doc"
        id: Mapped[int] = mapped_column(primary_key=True)
        title: Mapped[str]

    Base.metadata.create_all(engine)
    doc = Doc(id=1, title="a")
    session.add(doc)
    session.commit()
    doc.title = "b"
    session.commit()
    return Doc


def _stored(session, Doc):
    return [tuple(r) for r in session.execute(sa.select(Doc.id, Doc.version, Doc.title))]


@pytest.mark.parametrize("suppressed", [False, True])
def test_changing_the_primary_key_on_flush_is_refused(session, Doc, suppressed):
    doc = session.get(Doc, 1)
    doc.id = 999
    with pytest.raises(ChrononautException) as exc_info:
        if suppressed:
            with suppress_versioning():
                session.flush()
        else:
            session.flush()
    session.rollback()

    assert type(exc_info.value) is ChrononautException
    assert str(exc_info.value) == (
        "Doc (1,): changing primary key column 'id' to 999 would cut the record off from "
        "its history; insert a new record instead."
    )
    assert _stored(session, Doc) == [(1, 1, "b")]
    assert [v.title for v in session.get(Doc, 1).versions()] == ["a"]


def test_setting_the_primary_key_to_its_own_value_is_no_change(session, Doc):
    doc = session.get(Doc, 1)
    doc.id = 1
    doc.title = "c"
    session.commit()

    assert _stored(session, Doc) == [(1, 2, "c")]


def test_apply_changes_refuses_a_primary_key_change_before_setting_it(session, Doc):
    doc = session.get(Doc, 1)
    with pytest.raises(ChrononautException) as exc_info:
        apply_changes(doc, {"id": 999, "title": "c"}, base_version=1)

    assert str(exc_info.value) == (
        "Doc (1,): changing primary key column 'id' to 999 would cut the record off from "
        "its history; insert a new record instead."
    )
    assert (doc.id, doc.title) == (1, "b")
    assert not session.is_modified(doc)


def test_apply_changes_accepts_the_unchanged_primary_key(session, Doc):
    doc = session.get(Doc, 1)
    apply_changes(doc, {"id": 1, "title": "c"}, base_version=1)
    session.commit()

    assert _stored(session, Doc) == [(1, 2, "c")]


@pytest.mark.parametrize("suppressed", [False, True])
@pytest.mark.parametrize("form", ["attribute", "column", "query_update"])
def test_bulk_update_of_the_primary_key_is_refused(session, Doc, form, suppressed):
    def run():
        if form == "attribute":
            session.execute(sa.update(Doc).where(Doc.id == 1).values(id=999))
        elif form == "column":
            session.execute(sa.update(Doc).where(Doc.id == 1).values({Doc.__table__.c.id: 999}))
        else:
            session.query(Doc).filter(Doc.id == 1).update({"id": 999})

    with pytest.raises(ChrononautException) as exc_info:
        if suppressed:
            with suppress_versioning():
                run()
        else:
            run()
    session.rollback()

    assert str(exc_info.value) == (
        "Bulk UPDATE of Doc sets primary key column 'id', which would cut the records off "
        "from their history; insert new records instead."
    )
    assert _stored(session, Doc) == [(1, 1, "b")]
