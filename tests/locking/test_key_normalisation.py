"""One record, one key: primary keys are normalised by their column's type.

A record read from the database and the same record built by the application
(or named to ``session.get()``) in another spelling must exclude each other
under ``lock()``, share one lease, and meet the flush guard.
"""

from __future__ import annotations

import unicodedata
import uuid
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from chrononaut import RecordLockedError, Versioned, acting_as
from chrononaut.locking import keys

from .procs_advisory import CTX, WAIT, Counter, Tag, children
from .procs_keys import (
    MODELS,
    PLUS_ONE,
    SAME_RECORD,
    TOKEN,
    Base,
    Code,
    Event,
    Price,
    Reading,
    Token,
    hold_read_record,
    lock_holders,
    make_factory,
    primary_key_attribute,
)

#: A session TimeZone that is not UTC, so PostgreSQL returns timestamptz values at +05:30.
KOLKATA = "Asia/Kolkata"


class Stamp(DeclarativeBase):
    pass


class Moment(Stamp, Versioned):
    """``timestamp`` (without time zone) and ``date`` primary key."""

    __tablename__ = "nkey_moment"
    at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=False), primary_key=True)
    day: Mapped[date] = mapped_column(primary_key=True)


def key(cls: type[Any], *identity: Any) -> str:
    return keys.record_key(keys.normalise_identity(cls, identity))


# --- the normal forms -----------------------------------------------------------------


def test_numeric_keys_are_decimals_without_exponent_or_trailing_zeros():
    for one in (1, Decimal("1"), Decimal("1.00"), Decimal("1E+0"), Decimal("0.1E+1"), 1.0):
        assert key(Price, one) == '["1"]'
    for ten in (10, Decimal("1E+1"), Decimal("10.000"), 10.0):
        assert key(Price, ten) == '["10"]'
    for zero in (0, Decimal("-0"), Decimal("0.00"), Decimal("-0E+3"), -0.0):
        assert key(Price, zero) == '["0"]'
    assert key(Price, 1.5) == key(Price, Decimal("1.50")) == '["1.5"]'
    long = Decimal("1.23456789012345678901234567890123")  # more digits than the context's 28
    assert key(Price, long) == '["1.23456789012345678901234567890123"]'
    assert keys.normalise_identity(Price, (Decimal("1E+1"),)) == (Decimal("10"),)


def test_integer_and_string_keys_are_those_of_earlier_releases():
    assert key(Counter, 1) == "[1]"
    assert keys.advisory_key("adv_counter", keys.normalise_identity(Counter, (1,))) == (
        6755757854028767672
    )
    assert key(Tag, "alpha") == '["alpha"]'
    for ten in (Decimal("1E+1"), 10.0, Decimal("10.00")):
        assert keys.normalise_identity(Counter, (ten,)) == (10,)
        assert type(keys.normalise_identity(Counter, (ten,))[0]) is int


def test_float_keys_are_floats_with_one_zero():
    for one in (1, 1.0, Decimal("1.00")):
        assert key(Reading, one) == '["1.0"]'
    assert key(Reading, -0.0) == key(Reading, 0) == '["0.0"]'
    assert key(Reading, 0.1) == '["0.1"]'


def test_timestamptz_keys_are_in_utc_whatever_the_offset_given():
    noon_utc = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)
    spellings = [
        noon_utc,
        datetime(2024, 5, 1, 13, 0, tzinfo=PLUS_ONE),
        datetime(2024, 5, 1, 17, 30, tzinfo=timezone(timedelta(hours=5, minutes=30))),
    ]
    assert {key(Event, moment) for moment in spellings} == {'["2024-05-01T12:00:00+00:00"]'}
    assert keys.normalise_identity(Event, (spellings[1],)) == (noon_utc,)
    assert keys.normalise_identity(Event, (spellings[1],))[0].tzinfo is timezone.utc


def test_timestamp_and_date_keys_are_taken_as_given():
    moment, day = datetime(2024, 5, 1, 12, 0), date(2024, 5, 1)
    assert key(Moment, moment, day) == '["2024-05-01T12:00:00","2024-05-01"]'


def test_uuid_keys_are_one_key_as_text_or_uuid():
    spellings = [TOKEN, TOKEN.upper(), TOKEN.replace("-", ""), uuid.UUID(TOKEN)]
    assert {key(Token, value) for value in spellings} == {f'["{TOKEN}"]'}
    assert keys.normalise_identity(Token, (uuid.UUID(TOKEN),)) == (TOKEN,)  # as_uuid=False


def test_char_keys_are_padded_to_the_column_length_as_postgresql_returns_them():
    assert key(Code, "ab") == key(Code, "ab  ") == key(Code, "ab      ") == '["ab  "]'
    assert key(Code, "ab") != key(Code, " ab")


def test_string_keys_are_taken_code_point_for_code_point():
    composed = unicodedata.normalize("NFC", "café")
    decomposed = unicodedata.normalize("NFD", "café")
    assert composed != decomposed
    assert key(Tag, composed) != key(Tag, decomposed)  # documented: not normalised
    assert key(Tag, "alpha") != key(Tag, "alpha ")


@pytest.mark.parametrize(
    ("cls", "identity", "error", "message"),
    [
        (Counter, (True,), TypeError, "Counter.id is an integer primary key column, got True: "
         "pass an int."),
        (Counter, (1.5,), ValueError, "Counter.id is an integer primary key column, got 1.5: "
         "pass a whole number."),
        (Counter, ("1",), TypeError, "Counter.id is an integer primary key column, got '1': "
         "pass an int."),
        (Counter, (float("nan"),), ValueError, "Counter.id is an integer primary key column, "
         "got nan: NaN names no record (PostgreSQL holds NaN equal to itself, Python does "
         "not); pass a finite number."),
        (Price, (Decimal("NaN"),), ValueError, "Price.id is a Numeric primary key column, got "
         "Decimal('NaN'): NaN names no record (PostgreSQL holds NaN equal to itself, Python "
         "does not); pass a finite number."),
        (Price, (False,), TypeError, "Price.id is a Numeric primary key column, got False: "
         "pass a Decimal."),
        (Price, (Decimal("1E+999999999"),), ValueError, "Price.id is a Numeric primary key "
         "column, got Decimal('1E+999999999'): pass a number within PostgreSQL's numeric "
         "range."),
        (Reading, (float("nan"),), ValueError, "Reading.id is a Float primary key column, got "
         "nan: NaN names no record (PostgreSQL holds NaN equal to itself, Python does not); "
         "pass a finite number."),
        (Event, (datetime(2024, 5, 1, 12),), ValueError, "Event.at is a timestamptz "
         "(DateTime(timezone=True)) primary key column, got datetime.datetime(2024, 5, 1, 12, "
         "0): pass an aware datetime (PostgreSQL would read a naive one in the session's "
         "TimeZone)."),
        (Moment, (datetime(2024, 5, 1, 12, tzinfo=timezone.utc), date(2024, 5, 1)), ValueError,
         "Moment.at is a timestamp (DateTime(timezone=False)) primary key column, got "
         "datetime.datetime(2024, 5, 1, 12, 0, tzinfo=datetime.timezone.utc): pass a naive "
         "datetime (PostgreSQL would convert an aware one to the session's TimeZone)."),
        (Moment, (datetime(2024, 5, 1), datetime(2024, 5, 1)), TypeError, "Moment.day is a "
         "Date primary key column, got datetime.datetime(2024, 5, 1, 0, 0): pass a date."),
        (Token, ("not-a-uuid",), ValueError, "Token.id is a Uuid primary key column, got "
         "'not-a-uuid': pass a UUID or its text."),
        (Tag, (7,), TypeError, "Tag.name is a string primary key column, got 7: pass a str."),
    ],
)  # fmt: skip
def test_a_value_no_record_of_the_column_can_have_is_refused(cls, identity, error, message):
    with pytest.raises(error) as exc_info:
        keys.normalise_identity(cls, identity)
    assert type(exc_info.value) is error
    assert str(exc_info.value) == message


def test_record_key_alone_refuses_nan_and_writes_decimals_and_datetimes_canonically():
    with pytest.raises(ValueError) as exc_info:
        keys.record_key((float("nan"),))
    assert "NaN names no record" in str(exc_info.value)
    assert keys.record_key((Decimal("Infinity"), Decimal("-1E+2"))) == '["Infinity","-100"]'
    assert keys.record_key((datetime(2024, 5, 1, 13, tzinfo=PLUS_ONE),)) == (
        '["2024-05-01T12:00:00+00:00"]'
    )


# --- on the database --------------------------------------------------------------------


@pytest.fixture
def url(engine, clean_database):
    Base.metadata.create_all(engine)
    return clean_database


@pytest.fixture
def built(url, request):
    """(model name, a session, the record it inserted, built in Python in its own spelling)."""
    model = request.param
    built_pk, _ = SAME_RECORD[model]
    factory = make_factory(url)
    with factory() as session:
        obj = MODELS[model](**{primary_key_attribute(model): built_pk}, label="built")
        session.add(obj)
        session.commit()
        yield model, session, obj


@pytest.mark.parametrize("built", sorted(SAME_RECORD), indirect=True)
def test_a_record_read_from_the_database_has_the_key_of_the_record_built_in_python(url, built):
    model, _, obj = built
    _, asked = SAME_RECORD[model]
    with make_factory(url, KOLKATA)() as other:
        read = other.get(MODELS[model], asked)
        assert repr(sa.inspect(read).identity) != repr(sa.inspect(obj).identity)  # two spellings
        assert keys.identity_of(read) == keys.identity_of(obj)
        table = keys.table_name(MODELS[model])
        assert keys.advisory_key(table, keys.identity_of(read)) == keys.advisory_key(
            table, keys.identity_of(obj)
        )


@pytest.mark.parametrize("built", sorted(SAME_RECORD), indirect=True)
def test_lock_of_the_record_read_elsewhere_excludes_the_record_built_in_python(url, built):
    model, session, obj = built
    _, asked = SAME_RECORD[model]
    engine = session.get_bind()
    acquired, release, result = CTX.Event(), CTX.Event(), CTX.Queue()
    with children((hold_read_record, (url, model, asked, KOLKATA, acquired, release, result))):
        assert acquired.wait(WAIT)
        held = result.get(timeout=WAIT)
        assert held["event"] == "holding", held
        assert repr(held["identity"]) != repr(tuple(sa.inspect(obj).identity))
        key = keys.advisory_key(keys.table_name(type(obj)), keys.identity_of(obj))
        assert lock_holders(engine, key) == [(held["pid"], "ExclusiveLock", True)]
        with pytest.raises(RecordLockedError) as exc_info, obj.lock(nowait=True):
            pass
        described = keys.describe(obj, keys.identity_of(obj))
        assert exc_info.value.record == described
        assert str(exc_info.value) == f"{described} is locked by another transaction."
        assert obj.is_locked() is True
        release.set()
        assert result.get(timeout=WAIT) == {"event": "committed"}
    with obj.lock(nowait=True):
        assert obj.label == "built"


@pytest.mark.parametrize("built", sorted(SAME_RECORD), indirect=True)
def test_a_lease_on_the_record_read_elsewhere_is_the_lease_of_the_record_built(url, built):
    model, session, obj = built
    _, asked = SAME_RECORD[model]
    with make_factory(url, KOLKATA)() as other:
        read = other.get(MODELS[model], asked)
        with acting_as("alice"):
            held = read.acquire_lease()
        other.commit()
    assert obj.lease == held
    with acting_as("bob"), pytest.raises(RecordLockedError) as exc_info:
        obj.acquire_lease()
    assert (exc_info.value.owner, exc_info.value.expires_at) == ("alice", held.expires_at)
    session.rollback()
    with acting_as("alice"):
        obj.release_lease()  # alice's own lease, whichever spelling she uses
    session.commit()
    assert obj.lease is None
    leases = sa.text("SELECT count(*) FROM chrononaut_leases")
    assert session.execute(leases).scalar_one() == 0


# The flush guard reads keys from the flushed records' identities: these two need
# guard.Target to take keys.identity_of(obj).


@pytest.mark.parametrize("built", sorted(SAME_RECORD), indirect=True)
def test_the_guard_refuses_a_write_of_the_built_record_leased_by_its_read_spelling(url, built):
    model, session, obj = built
    _, asked = SAME_RECORD[model]
    with make_factory(url, KOLKATA)() as other:
        with acting_as("alice"):
            other.get(MODELS[model], asked).acquire_lease()
        other.commit()
    obj.label = "bob's change"
    with acting_as("bob"), pytest.raises(RecordLockedError) as exc_info:
        session.commit()
    assert exc_info.value.owner == "alice"
    session.rollback()
    assert obj.label == "built"


@pytest.mark.parametrize("built", sorted(SAME_RECORD), indirect=True)
def test_the_guard_refuses_a_write_of_the_built_record_locked_by_its_read_spelling(url, built):
    model, session, obj = built
    _, asked = SAME_RECORD[model]
    acquired, release, result = CTX.Event(), CTX.Event(), CTX.Queue()
    with children((hold_read_record, (url, model, asked, KOLKATA, acquired, release, result))):
        assert acquired.wait(WAIT)
        assert result.get(timeout=WAIT)["event"] == "holding"
        obj.label = "written under the lock"
        with pytest.raises(RecordLockedError) as exc_info:
            session.commit()
        assert exc_info.value.record == keys.describe(obj, keys.identity_of(obj))
        session.rollback()
        release.set()
        assert result.get(timeout=WAIT) == {"event": "committed"}
    assert obj.label == "built"
