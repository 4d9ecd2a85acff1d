"""History rows cannot be forged: inserts into history through the session are refused."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from chrononaut import ChrononautException, Versioned, suppress_versioning


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


def _history_count(session, Doc):
    table = Doc.__history_mapper__.local_table
    return session.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()


def _forge(session, Doc, form):
    DocHistory = Doc.__history_mapper__.class_
    row = {"id": 1, "title": "forged", "version": 7, "changed": sa.func.now(), "change_info": {}}
    if form == "add":
        session.add(DocHistory(**{**row, "changed": None}))
        session.flush()
    elif form == "orm_insert":
        session.execute(sa.insert(DocHistory).values(**row))
    elif form == "orm_bulk_insert":
        session.execute(sa.insert(DocHistory), [{**row, "changed": None}])
    elif form == "core_insert":
        session.execute(Doc.__history_mapper__.local_table.insert().values(**row))
    elif form == "bulk_insert_mappings":
        session.bulk_insert_mappings(DocHistory, [row])
    elif form == "bulk_save_objects":
        session.bulk_save_objects([DocHistory(**row)])


FORMS = [
    "add",
    "orm_insert",
    "orm_bulk_insert",
    "core_insert",
    "bulk_insert_mappings",
    "bulk_save_objects",
]


@pytest.mark.parametrize("suppression", [None, "suppressed", "allow_deleting_history"])
@pytest.mark.parametrize("form", FORMS)
def test_inserting_a_history_row_is_refused_and_writes_nothing(session, Doc, form, suppression):
    with pytest.raises(ChrononautException) as exc_info:
        if suppression is None:
            _forge(session, Doc, form)
        else:
            allow = suppression == "allow_deleting_history"
            with suppress_versioning(allow_deleting_history=allow):
                _forge(session, Doc, form)
    session.rollback()

    assert type(exc_info.value) is ChrononautException
    assert str(exc_info.value).startswith("Refusing to insert into ")
    assert "history rows are written by chrononaut only" in str(exc_info.value)
    assert _history_count(session, Doc) == 1
    doc = session.get(Doc, 1)
    assert [v.title for v in doc.versions()] == ["a"]


def test_bulk_update_mappings_of_a_history_class_is_refused(session, Doc):
    DocHistory = Doc.__history_mapper__.class_
    with pytest.raises(ChrononautException) as exc_info:
        session.bulk_update_mappings(DocHistory, [{"id": 1, "version": 0, "title": "forged"}])
    session.rollback()

    assert str(exc_info.value) == "Refusing to update DocHistory: history rows are immutable."
    assert [v.title for v in session.get(Doc, 1).versions()] == ["a"]


def test_chrononaut_still_writes_history_on_flush_and_bulk(session, Doc):
    doc = session.get(Doc, 1)
    doc.title = "c"
    session.commit()
    session.execute(sa.update(Doc).where(Doc.id == 1).values(title="d"))
    session.commit()

    assert [v.title for v in session.get(Doc, 1).versions()] == ["a", "b", "c"]
