"""Models with non-integer primary keys, and the child that holds a lock on one of them.

The child reads its record from the database (so its primary key is what
PostgreSQL returns, in the session ``TimeZone`` it is given); the parent
builds the same record itself. Children are spawned, so everything they run
lives here at module level; they report plain dicts through a Queue.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, sessionmaker

import chrononaut
from chrononaut import Versioned
from chrononaut.locking import keys

from .procs_advisory import WAIT, backend_pid, error_report


class Base(DeclarativeBase):
    pass


# Table names are unique to these tests: pg_locks shows other databases' locks too.
# A lone Numeric or Float primary key needs autoincrement=False, or SQLAlchemy makes it SERIAL.
class Price(Base, Versioned):
    """``Numeric(10, 2)`` primary key: PostgreSQL returns ``Decimal('1.00')``."""

    __tablename__ = "nkey_price"
    id: Mapped[Decimal] = mapped_column(sa.Numeric(10, 2), primary_key=True, autoincrement=False)
    label: Mapped[str | None]


class Reading(Base, Versioned):
    """``Float`` primary key: PostgreSQL returns ``1.0``."""

    __tablename__ = "nkey_reading"
    id: Mapped[float] = mapped_column(sa.Float, primary_key=True, autoincrement=False)
    label: Mapped[str | None]


class Event(Base, Versioned):
    """``timestamptz`` primary key: PostgreSQL returns it in the session's TimeZone."""

    __tablename__ = "nkey_event"
    at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), primary_key=True)
    label: Mapped[str | None]


class Token(Base, Versioned):
    """``Uuid(as_uuid=False)`` primary key: PostgreSQL returns lowercase, hyphenated text."""

    __tablename__ = "nkey_token"
    id: Mapped[str] = mapped_column(sa.Uuid(as_uuid=False), primary_key=True)
    label: Mapped[str | None]


class Code(Base, Versioned):
    """``CHAR(4)`` primary key: PostgreSQL returns it padded with spaces."""

    __tablename__ = "nkey_code"
    code: Mapped[str] = mapped_column(sa.CHAR(4), primary_key=True)
    label: Mapped[str | None]


MODELS: dict[str, type[Any]] = {m.__name__: m for m in (Price, Reading, Event, Token, Code)}

TOKEN = "12345678-1234-5678-1234-567812345678"
PLUS_ONE = timezone(timedelta(hours=1))

#: model -> (the primary key the parent builds its record with, the one the child asks for)
SAME_RECORD: dict[str, tuple[Any, Any]] = {
    "Price": (1, Decimal("1.00")),
    "Reading": (1, 1.0),
    "Event": (
        datetime(2024, 5, 1, 13, 0, tzinfo=PLUS_ONE),
        datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc),
    ),
    "Token": (TOKEN.replace("-", "").upper(), TOKEN),
    "Code": ("ab", "ab  "),
}


def primary_key_attribute(model: str) -> str:
    return "code" if model == "Code" else "at" if model == "Event" else "id"


def make_factory(url: str, time_zone: str = "UTC") -> sessionmaker[Any]:
    engine = sa.create_engine(
        url, poolclass=sa.pool.NullPool, connect_args={"options": f"-c TimeZone={time_zone}"}
    )
    factory = sessionmaker(engine)
    chrononaut.listen(factory)
    return factory


def lock_holders(bind: sa.Engine, key: int) -> list[tuple[int, str, bool]]:
    """``(pid, mode, granted)`` of this database's pg_locks rows on the advisory key."""
    classid, objid = keys.split_key(key)
    sql = sa.text(
        "SELECT pid, mode, granted FROM pg_locks WHERE locktype = 'advisory' "
        "AND classid::bigint = :c AND objid::bigint = :o AND objsubid = 1 "
        "AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
        "ORDER BY pid"
    )
    with bind.connect() as connection:
        return [tuple(r) for r in connection.execute(sql, {"c": classid, "o": objid})]


def hold_read_record(
    url: str, model: str, pk: Any, time_zone: str, acquired: Any, release: Any, result: Any
) -> None:
    """Read the record from the database, ``lock()`` it and hold the lock until ``release``."""
    factory = make_factory(url, time_zone)
    with factory() as session:
        obj = session.get(MODELS[model], pk)
        try:
            with obj.lock():
                result.put(
                    {
                        "event": "holding",
                        "pid": backend_pid(session),
                        "identity": tuple(sa.inspect(obj).identity),
                    }
                )
                acquired.set()
                release.wait(WAIT)
            result.put({"event": "committed"})
        except Exception as error:  # reported to the test, which asserts on it
            result.put(error_report(error))
