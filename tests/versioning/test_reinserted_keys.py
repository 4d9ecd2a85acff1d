"""A primary key inserted again after its record was deleted continues the numbering.

History is keyed by (primary key, version), so the re-inserted record starts
after the deletion row; otherwise its first update would collide with the old
record's history. Only keys set before the flush can repeat: one query per
class per flush, none for database-generated keys.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from chrononaut import Versioned, suppress_versioning


@pytest.fixture
def Doc(Base, engine):
    class Doc(Base, Versioned):
        __tablename__ = "doc"
        id: Mapped[int] = mapped_column(primary_key=True)
        title: Mapped[str]

    Base.metadata.create_all(engine)
    return Doc


def _history(session, Doc):
    hist = Doc.__history_mapper__.class_
    rows = session.scalars(sa.select(hist).order_by(hist.id, hist.version)).all()
    return [(h.id, h.version, h.title, h.is_deletion) for h in rows]


def _create_and_delete(session, Doc):
    doc = Doc(id=1, title="a")
    session.add(doc)
    session.commit()
    doc.title = "b"
    session.commit()
    session.delete(doc)
    session.commit()


@pytest.mark.parametrize("how", ["separate_transaction", "same_transaction", "same_flush"])
def test_reinserted_key_continues_after_its_deletion_row(session, Doc, how):
    if how == "separate_transaction":
        _create_and_delete(session, Doc)
        again = Doc(id=1, title="c")
        session.add(again)
        session.commit()
    else:
        doc = Doc(id=1, title="a")
        session.add(doc)
        session.commit()
        doc.title = "b"
        session.commit()
        session.delete(doc)
        if how == "same_transaction":
            session.flush()
        again = Doc(id=1, title="c")
        session.add(again)
        session.commit()
    again.title = "d"
    session.commit()

    assert _history(session, Doc) == [
        (1, 0, "a", False),
        (1, 1, "b", True),
        (1, 2, "c", False),
    ]
    assert again.version == 3
    assert [v.title for v in again.versions()] == ["a", "b", "c"]


def test_reinserted_key_under_suppression_continues_the_numbering(session, Doc):
    _create_and_delete(session, Doc)
    with suppress_versioning():
        again = Doc(id=1, title="c")
        session.add(again)
        session.commit()
    again.title = "d"
    session.commit()

    assert _history(session, Doc)[-1] == (1, 2, "c", False)
    assert again.version == 3


def test_new_keys_cost_one_history_query_per_class_and_generated_keys_none(session, Doc, engine):
    _create_and_delete(session, Doc)
    selects = []

    @sa.event.listens_for(engine, "before_cursor_execute")
    def count(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("SELECT") and "doc_history" in statement:
            selects.append(statement)

    session.add_all([Doc(id=1, title="x"), Doc(id=2, title="y"), Doc(id=3, title="z")])
    session.flush()
    assert len(selects) == 1
    session.execute(sa.text("SELECT setval('doc_id_seq', 100)"))
    session.add(Doc(title="generated"))
    session.flush()
    assert len(selects) == 1
    session.commit()
    sa.event.remove(engine, "before_cursor_execute", count)

    versions = dict(session.execute(sa.select(Doc.id, Doc.version).where(Doc.id <= 3)).all())
    assert versions == {1: 2, 2: 0, 3: 0}


def test_reinserted_joined_subclass_key_continues_the_numbering(Base, engine, session):
    class Asset(Base, Versioned):
        __tablename__ = "asset"
        id: Mapped[int] = mapped_column(primary_key=True)
        kind: Mapped[str]
        name: Mapped[str]
        __mapper_args__ = {"polymorphic_on": "kind", "polymorphic_identity": "asset"}

    class Car(Asset):
        __tablename__ = "car"
        id: Mapped[int] = mapped_column(sa.ForeignKey("asset.id"), primary_key=True)
        plate: Mapped[str]
        __mapper_args__ = {"polymorphic_identity": "car"}

    Base.metadata.create_all(engine)
    car = Car(id=1, name="a", plate="p")
    session.add(car)
    session.commit()
    session.delete(car)
    session.commit()
    again = Car(id=1, name="b", plate="q")
    session.add(again)
    session.commit()
    again.plate = "r"
    session.commit()

    assert [(v.version, v.plate, v.is_deletion) for v in again.versions()] == [
        (0, "p", True),
        (1, "q", False),
    ]
