"""Reading history back: versions(), version_at(), has_changed_since(), previous_version()."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from freezegun import freeze_time
from sqlalchemy.orm import Mapped, mapped_column

from chrononaut import ChrononautException, HistoryBase, Versioned

T0 = datetime(2024, 1, 1, 8, 0, tzinfo=timezone.utc)
T1 = datetime(2024, 1, 1, 9, 0, tzinfo=timezone.utc)
T2 = datetime(2024, 1, 1, 10, 0, tzinfo=timezone.utc)
T3 = datetime(2024, 1, 1, 11, 0, tzinfo=timezone.utc)
MICROSECOND = timedelta(microseconds=1)


def commit_at(session, when, obj, **values):
    """Set ``values`` on ``obj`` and commit, with the clock frozen at ``when``."""
    with freeze_time(when):
        for key, value in values.items():
            setattr(obj, key, value)
        session.commit()


def test_versions_are_history_objects_in_ascending_order_classic(db):
    class Document(db.Model, Versioned):
        __tablename__ = "document"
        id = db.Column(db.Integer, primary_key=True)
        title = db.Column(db.String(80))

    db.create_all()
    doc = Document(title="a")
    db.session.add(doc)
    commit_at(db.session, T0, doc)
    commit_at(db.session, T1, doc, title="b")
    commit_at(db.session, T2, doc, title="c")
    commit_at(db.session, T3, doc, title="d")

    versions = doc.versions()
    assert [v.version for v in versions] == [0, 1, 2]
    assert [v.title for v in versions] == ["a", "b", "c"]
    assert [v.changed for v in versions] == [T1, T2, T3]
    assert all(isinstance(v, Document.__history_mapper__.class_) for v in versions)
    assert all(isinstance(v, HistoryBase) for v in versions)


def test_versions_are_history_objects_in_ascending_order_mapped(session, Base):
    class Document(Base, Versioned):
        __tablename__ = "document"
        id: Mapped[int] = mapped_column(primary_key=True)
        title: Mapped[str]

    Base.metadata.create_all(session.get_bind())
    doc = Document(title="a")
    session.add(doc)
    commit_at(session, T0, doc)
    commit_at(session, T1, doc, title="b")
    commit_at(session, T2, doc, title="c")
    commit_at(session, T3, doc, title="d")

    versions = doc.versions()
    assert [(v.version, v.title, v.changed) for v in versions] == [
        (0, "a", T1),
        (1, "b", T2),
        (2, "c", T3),
    ]
    assert all(type(v).__name__ == "DocumentHistory" for v in versions)


def test_versions_lists_only_the_records_own_history(session, Base):
    class Document(Base, Versioned):
        __tablename__ = "document"
        id: Mapped[int] = mapped_column(primary_key=True)
        title: Mapped[str]

    Base.metadata.create_all(session.get_bind())
    mine, other = Document(title="mine"), Document(title="other")
    session.add_all([mine, other])
    session.commit()
    other.title = "other 2"
    session.commit()
    mine.title = "mine 2"
    session.commit()

    assert [(v.id, v.title) for v in mine.versions()] == [(mine.id, "mine")]
    assert [(v.id, v.title) for v in other.versions()] == [(other.id, "other")]


def test_versions_of_a_never_changed_record_is_empty(session, Base):
    class Document(Base, Versioned):
        __tablename__ = "document"
        id: Mapped[int] = mapped_column(primary_key=True)
        title: Mapped[str]

    Base.metadata.create_all(session.get_bind())
    doc = Document(title="a")
    session.add(doc)
    session.commit()

    assert doc.versions() == []
    assert doc.previous_version() is None


def test_versions_before_and_after_are_inclusive_bounds(session, Base):
    class Document(Base, Versioned):
        __tablename__ = "document"
        id: Mapped[int] = mapped_column(primary_key=True)
        title: Mapped[str]

    Base.metadata.create_all(session.get_bind())
    doc = Document(title="a")
    session.add(doc)
    commit_at(session, T0, doc)
    commit_at(session, T1, doc, title="b")
    commit_at(session, T2, doc, title="c")
    commit_at(session, T3, doc, title="d")

    def numbers(**bounds):
        return [v.version for v in doc.versions(**bounds)]

    assert numbers(before=T2) == [0, 1]
    assert numbers(before=T2 - MICROSECOND) == [0]
    assert numbers(before=T1 - MICROSECOND) == []
    assert numbers(after=T2) == [1, 2]
    assert numbers(after=T2 + MICROSECOND) == [2]
    assert numbers(after=T3 + MICROSECOND) == []
    assert numbers(after=T2, before=T2) == [1]
    assert numbers(after=T1, before=T3) == [0, 1, 2]


def test_versions_return_query_can_be_refined(session, Base):
    class Document(Base, Versioned):
        __tablename__ = "document"
        id: Mapped[int] = mapped_column(primary_key=True)
        title: Mapped[str]

    History = Document.__history_mapper__.class_
    Base.metadata.create_all(session.get_bind())
    doc = Document(title="a")
    session.add(doc)
    commit_at(session, T0, doc)
    commit_at(session, T1, doc, title="b")
    commit_at(session, T2, doc, title="c")
    commit_at(session, T3, doc, title="d")

    query = doc.versions(return_query=True)

    assert query.count() == 3
    assert [v.version for v in query.all()] == [0, 1, 2]
    assert [v.version for v in query.limit(2)] == [0, 1]
    assert [v.title for v in query.filter(History.title == "b")] == ["b"]
    bounded = doc.versions(after=T2, return_query=True)
    assert bounded.count() == 2
    assert [v.version for v in bounded.filter(History.changed < T3)] == [1]


def test_version_at_is_the_earliest_history_object_changed_at_or_after(session, Base):
    class Document(Base, Versioned):
        __tablename__ = "document"
        id: Mapped[int] = mapped_column(primary_key=True)
        title: Mapped[str]

    Base.metadata.create_all(session.get_bind())
    doc = Document(title="a")
    session.add(doc)
    commit_at(session, T0, doc)
    commit_at(session, T1, doc, title="b")
    commit_at(session, T2, doc, title="c")

    before_first = doc.version_at(T0)
    assert isinstance(before_first, HistoryBase)
    assert (before_first.version, before_first.title) == (0, "a")
    assert doc.version_at(T1).version == 0
    assert doc.version_at(T1 + MICROSECOND).version == 1
    assert doc.version_at(T2).title == "b"


def test_version_at_after_the_last_change_is_the_instance_itself(session, Base):
    class Document(Base, Versioned):
        __tablename__ = "document"
        id: Mapped[int] = mapped_column(primary_key=True)
        title: Mapped[str]

    Base.metadata.create_all(session.get_bind())
    doc, untouched = Document(title="a"), Document(title="z")
    session.add_all([doc, untouched])
    commit_at(session, T0, doc)
    commit_at(session, T1, doc, title="b")

    assert doc.version_at(T1 + MICROSECOND) is doc
    assert doc.version_at(T3) is doc
    assert untouched.version_at(T0) is untouched  # created at T0: it exists from then on
    assert untouched.version_at(T0 - timedelta(days=1)) is None  # not yet created


def test_has_changed_since_is_inclusive(session, Base):
    class Document(Base, Versioned):
        __tablename__ = "document"
        id: Mapped[int] = mapped_column(primary_key=True)
        title: Mapped[str]

    Base.metadata.create_all(session.get_bind())
    doc, untouched = Document(title="a"), Document(title="z")
    session.add_all([doc, untouched])
    commit_at(session, T0, doc)
    commit_at(session, T2, doc, title="b")

    assert doc.has_changed_since(T1) is True
    assert doc.has_changed_since(T2) is True
    assert doc.has_changed_since(T2 + MICROSECOND) is False
    assert untouched.has_changed_since(T0 - timedelta(days=1)) is False


def test_previous_version_is_the_latest_history_object(db):
    class Document(db.Model, Versioned):
        __tablename__ = "document"
        id = db.Column(db.Integer, primary_key=True)
        title = db.Column(db.String(80))

    db.create_all()
    doc = Document(title="a")
    db.session.add(doc)
    db.session.commit()
    assert doc.previous_version() is None

    doc.title = "b"
    db.session.commit()
    doc.title = "c"
    db.session.commit()

    previous = doc.previous_version()
    assert isinstance(previous, Document.__history_mapper__.class_)
    assert (previous.version, previous.title) == (1, "b")
    assert previous.version == doc.version - 1


@pytest.mark.parametrize(
    "read",
    [
        lambda doc: doc.versions(),
        lambda doc: doc.versions(return_query=True),
        lambda doc: doc.version_at(T0),
        lambda doc: doc.has_changed_since(T0),
        lambda doc: doc.previous_version(),
    ],
    ids=["versions", "versions_query", "version_at", "has_changed_since", "previous_version"],
)
def test_reading_history_of_a_detached_instance_raises(session, Base, read):
    class Document(Base, Versioned):
        __tablename__ = "document"
        id: Mapped[int] = mapped_column(primary_key=True)
        title: Mapped[str]

    Base.metadata.create_all(session.get_bind())
    doc = Document(title="a")
    session.add(doc)
    session.commit()
    doc.title = "b"
    session.commit()
    assert doc.version == 1
    session.expunge(doc)

    with pytest.raises(ChrononautException) as exc_info:
        read(doc)

    message = str(exc_info.value)
    assert "Document" in message
    assert "not attached to a session" in message
    assert "merge" in message
