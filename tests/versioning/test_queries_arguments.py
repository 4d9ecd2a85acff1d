"""What versions(), version_at() and has_changed_since() take as times.

Naive datetimes are UTC whatever the connection's TimeZone; anything that is
not a datetime raises TypeError before any SQL, so the caller's transaction
and its pending work survive.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from freezegun import freeze_time
from sqlalchemy.orm import Mapped, mapped_column, sessionmaker

import chrononaut
from chrononaut import Versioned

T0 = datetime(2024, 1, 1, 8, 0, tzinfo=timezone.utc)
T1 = datetime(2024, 1, 1, 9, 0, tzinfo=timezone.utc)
T2 = datetime(2024, 1, 1, 10, 0, tzinfo=timezone.utc)


def naive(when: datetime) -> datetime:
    return when.astimezone(timezone.utc).replace(tzinfo=None)


@pytest.fixture(params=["Asia/Kolkata", "America/Los_Angeles"])
def zoned_session(request, clean_database):
    """A versioned session whose connection's TimeZone is not UTC."""
    engine = sa.create_engine(
        clean_database, connect_args={"options": f"-c timezone={request.param}"}
    )
    factory = sessionmaker(engine)
    chrononaut.listen(factory)
    with factory() as session:
        assert session.execute(sa.text("SHOW timezone")).scalar() == request.param
        session.rollback()
        yield session
    engine.dispose()


@pytest.fixture
def Document(Base):
    class Document(Base, Versioned):
        __tablename__ = "document"
        id: Mapped[int] = mapped_column(primary_key=True)
        title: Mapped[str]

    return Document


def history_at_t1_and_t2(session, Document, Base):
    Base.metadata.create_all(session.get_bind())
    doc = Document(id=1, title="a")
    session.add(doc)
    for when, title in [(T0, None), (T1, "b"), (T2, "c")]:
        with freeze_time(when):
            if title is not None:
                doc.title = title
            session.commit()
    return doc


def test_naive_datetimes_are_utc_on_a_connection_in_another_time_zone(
    zoned_session, Document, Base
):
    doc = history_at_t1_and_t2(zoned_session, Document, Base)
    v0, v1 = doc.versions()
    half_past_nine = naive(T1 + timedelta(minutes=30))

    assert doc.version_at(half_past_nine) == v1
    assert doc.versions(before=half_past_nine) == [v0]
    assert doc.versions(after=half_past_nine) == [v1]
    assert doc.has_changed_since(naive(T2))
    assert not doc.has_changed_since(naive(T2) + timedelta(microseconds=1))


def test_naive_now_minus_an_hour_sees_a_change_just_made(zoned_session, Document, Base):
    Base.metadata.create_all(zoned_session.get_bind())
    doc = Document(id=1, title="a")
    zoned_session.add(doc)
    zoned_session.commit()
    doc.title = "b"
    zoned_session.commit()

    utc_now = datetime.now(timezone.utc).replace(tzinfo=None)
    assert doc.has_changed_since(utc_now - timedelta(hours=1))


def test_aware_datetimes_in_any_zone_mean_the_same_instant(zoned_session, Document, Base):
    doc = history_at_t1_and_t2(zoned_session, Document, Base)
    kolkata = timezone(timedelta(hours=5, minutes=30))

    assert doc.version_at(T1.astimezone(kolkata)).version == 0
    assert doc.has_changed_since(T2.astimezone(kolkata))


NOT_DATETIMES = ["garbage", 12345, 1.5, date(2024, 1, 1), "2024-01-01T00:00:00"]


@pytest.mark.parametrize("value", [*NOT_DATETIMES, None], ids=repr)
@pytest.mark.parametrize("method", ["version_at", "has_changed_since"])
def test_a_non_datetime_raises_type_error_and_keeps_the_transaction(
    session, Document, Base, method, value
):
    Base.metadata.create_all(session.get_bind())
    doc = Document(id=1, title="a")
    session.add(doc)
    session.commit()
    doc.title = "b"
    session.flush()  # pending work of the caller's transaction
    session.add(Document(id=2, title="x"))

    with pytest.raises(TypeError) as exc_info:
        getattr(doc, method)(value)
    assert f"got {value!r}" in str(exc_info.value)
    assert str(exc_info.value).startswith(f"{method}(")

    session.commit()
    assert session.scalars(sa.select(Document.title).order_by(Document.id)).all() == ["b", "x"]


@pytest.mark.parametrize("value", NOT_DATETIMES, ids=repr)
@pytest.mark.parametrize("bound", ["before", "after"])
def test_a_non_datetime_bound_of_versions_raises_type_error_and_keeps_the_transaction(
    session, Document, Base, bound, value
):
    Base.metadata.create_all(session.get_bind())
    doc = Document(id=1, title="a")
    session.add(doc)
    session.commit()
    doc.title = "b"
    session.flush()

    with pytest.raises(TypeError) as exc_info:
        doc.versions(**{bound: value})
    assert str(exc_info.value) == (
        f"versions({bound}=...) must be a datetime (naive ones are taken as UTC), got "
        f"{value!r}; parse strings and numbers first, e.g. datetime.fromisoformat(...)."
    )

    session.commit()
    assert [v.title for v in doc.versions()] == ["a"]
    assert doc.versions(before=None, after=None) == doc.versions()
