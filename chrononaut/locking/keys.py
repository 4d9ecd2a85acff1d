"""Record -> lock key, stable across processes, machines and Python versions.

A record is named by its base table and primary key. Its *record key* is the
primary key as canonical JSON (``[42]``, ``["eu", 7]``): exact, and what the
leases table stores. Its *advisory key* is the first 8 bytes of the BLAKE2b
digest of ``"<schema.table>:<record key>"``, read as a signed 64-bit integer,
which is what ``pg_advisory_xact_lock(bigint)`` takes.

One record has one key, however its primary key reached Python: read from the
database, set on an object the application built, or given to
``session.get()``. :func:`identity_of` first normalises each value by its
primary-key column's type:

- integer columns: ``int``; a whole Decimal or float (``Decimal("1E+1")``,
  ``10.0``) is that int; a bool, a fraction or NaN is refused;
- ``Numeric`` columns: a Decimal without exponent or trailing zeros, so ``1``,
  ``1.00`` and ``Decimal("1E+0")`` are one key (``"1"``), and ``-0`` is ``0``;
- ``Float`` columns: ``float``, ``-0.0`` being ``0.0``; NaN is refused in every
  column (PostgreSQL holds NaN equal to itself, Python does not);
- ``timestamptz`` (``DateTime(timezone=True)``): aware datetimes, in UTC;
  ``timestamp``: naive datetimes. A naive value for a ``timestamptz`` key, or an
  aware one for a ``timestamp`` key, is refused: PostgreSQL would read it in
  the session's ``TimeZone``, which the key cannot know;
- ``Date``: dates (a datetime is refused); ``Uuid``: a UUID given as text or as
  :class:`uuid.UUID` is one key; ``CHAR(n)``: padded with spaces to *n*, as
  PostgreSQL returns it;
- strings are taken as they are, code point for code point: ``"é"`` as one code
  point and as ``"e"`` plus a combining accent are two keys, as they are two
  values for PostgreSQL's deterministic collations. A string key must be given
  as ``str``;
- other types (``Enum``, ``TypeDecorator`` subclasses, ...) are used as given.

Keys of integer and string primary keys are those of earlier releases.

Collisions: two different records share an advisory key with probability
about n²/2⁶⁵ for n locked-at-once records (one in 3.7 million million for a
million records). A collision can only make two unrelated records wait for
each other, never let two holders in. Leases use the exact record key and
cannot collide.
"""

from __future__ import annotations

import hashlib
import json
import math
import uuid
import weakref
from collections.abc import Callable
from datetime import date, datetime, timezone
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

#: PostgreSQL's numeric holds up to 131072 digits before the point, 16383 after it.
_NUMERIC_DIGITS_BEFORE = 131072
_NUMERIC_DIGITS_AFTER = 16383


def _decimal_text(value: Decimal) -> str:
    """``value`` without exponent or trailing zeros: ``1.50`` -> ``1.5``, ``1E+1`` -> ``10``."""
    if value.is_nan():
        raise ValueError(
            f"Cannot build a lock key from {value!r}: NaN names no record (PostgreSQL holds "
            "NaN equal to itself, Python does not); use a finite number."
        )
    if value.is_infinite():
        return "Infinity" if value > 0 else "-Infinity"
    if value.is_zero():
        return "0"
    if not -_NUMERIC_DIGITS_AFTER <= value.adjusted() < _NUMERIC_DIGITS_BEFORE:
        raise ValueError(
            f"Cannot build a lock key from {value!r}: it is outside PostgreSQL's numeric range."
        )
    text = format(value, "f")  # exact: no rounding to the context's precision
    return text.rstrip("0").rstrip(".") if "." in text else text


def _canonical(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if math.isnan(value):
            raise ValueError(
                f"Cannot build a lock key from {value!r}: NaN names no record (PostgreSQL "
                "holds NaN equal to itself, Python does not); use a finite number."
            )
        return str(value + 0.0)  # -0.0 + 0.0 is 0.0
    if isinstance(value, Decimal):
        return _decimal_text(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime):
        if value.utcoffset() is not None:
            value = value.astimezone(timezone.utc)
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    raise TypeError(
        f"Cannot build a lock key from primary key value {value!r} of type "
        f"{type(value).__name__}; supported: int, str, UUID, Decimal, date, datetime, bytes."
    )


# --- normalising a primary key by its columns' types -----------------------------


class _Refused(Exception):
    """A primary key value its column's type cannot take: (error class, what to pass)."""

    def __init__(self, error: type[Exception], fix: str) -> None:
        super().__init__(fix)
        self.error, self.fix = error, fix


def _not_nan(value: Any) -> None:
    if (isinstance(value, float) and math.isnan(value)) or (
        isinstance(value, Decimal) and value.is_nan()
    ):
        raise _Refused(
            ValueError,
            "NaN names no record (PostgreSQL holds NaN equal to itself, Python does not); "
            "pass a finite number",
        )


def _number(value: Any, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise _Refused(TypeError, f"pass {what}")
    _not_nan(value)


def _to_int(value: Any) -> int:
    if type(value) is int:
        return value
    _number(value, "an int")
    if isinstance(value, int):
        return int(value)
    if isinstance(value, Decimal):
        if not value.is_finite() or value.adjusted() > 20:  # beyond bigint: no such row
            raise _Refused(ValueError, "pass a whole number within bigint's range")
        whole = value == value.to_integral_value()
    else:
        whole = math.isfinite(value) and value.is_integer()
    if not whole:
        raise _Refused(ValueError, "pass a whole number")
    return int(value)


def _to_float(value: Any) -> float:
    _number(value, "a float")
    try:
        return float(value) + 0.0  # -0.0 + 0.0 is 0.0
    except OverflowError:
        raise _Refused(ValueError, "pass a number a float can hold") from None


def _to_decimal(value: Any) -> Decimal:
    _number(value, "a Decimal")
    number = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    try:
        return Decimal(_decimal_text(number))
    except ValueError:
        raise _Refused(ValueError, "pass a number within PostgreSQL's numeric range") from None


def _to_aware(value: Any) -> datetime:
    if not isinstance(value, datetime):
        raise _Refused(TypeError, "pass an aware datetime")
    if value.utcoffset() is None:
        raise _Refused(
            ValueError,
            "pass an aware datetime (PostgreSQL would read a naive one in the session's TimeZone)",
        )
    return value.astimezone(timezone.utc)


def _to_naive(value: Any) -> datetime:
    if not isinstance(value, datetime):
        raise _Refused(TypeError, "pass a naive datetime")
    if value.utcoffset() is not None:
        raise _Refused(
            ValueError,
            "pass a naive datetime (PostgreSQL would convert an aware one to the session's "
            "TimeZone)",
        )
    return value


def _to_date(value: Any) -> date:
    if isinstance(value, datetime) or not isinstance(value, date):
        raise _Refused(TypeError, "pass a date")
    return value


def _to_uuid(value: Any) -> uuid.UUID:
    if isinstance(value, uuid.UUID):
        return value
    if not isinstance(value, str):
        raise _Refused(TypeError, "pass a UUID or its text")
    try:
        return uuid.UUID(value)
    except ValueError:
        raise _Refused(ValueError, "pass a UUID or its text") from None


def _to_uuid_text(value: Any) -> str:
    return str(_to_uuid(value))


def _to_str(value: Any) -> str:
    if not isinstance(value, str):
        raise _Refused(TypeError, "pass a str")
    return value


def _char(length: int) -> Callable[[Any], str]:
    def to_char(value: Any) -> str:
        return _to_str(value).rstrip(" ").ljust(length)

    return to_char


_Kind = tuple[str, Callable[[Any], Any]]


def _kind(column_type: Any) -> _Kind | None:
    """(what the column is, for messages; its normaliser), or None to take values as given."""
    if isinstance(column_type, sa.types.TypeDecorator | sa.Enum | sa.Boolean):
        return None
    if isinstance(column_type, sa.Integer):
        return "an integer", _to_int
    if isinstance(column_type, sa.Float):
        return "a Float", _to_float
    if isinstance(column_type, sa.Numeric):
        return "a Numeric", _to_decimal
    if isinstance(column_type, sa.DateTime):
        if column_type.timezone:
            return "a timestamptz (DateTime(timezone=True))", _to_aware
        return "a timestamp (DateTime(timezone=False))", _to_naive
    if isinstance(column_type, sa.Date):
        return "a Date", _to_date
    if isinstance(column_type, sa.Uuid):
        return "a Uuid", _to_uuid if column_type.as_uuid else _to_uuid_text
    if isinstance(column_type, sa.CHAR | sa.NCHAR):
        return "a CHAR", _char(column_type.length or 1)
    if isinstance(column_type, sa.String):
        return "a string", _to_str
    return None


_kinds: weakref.WeakKeyDictionary[Any, list[tuple[str, _Kind | None]]] = (
    weakref.WeakKeyDictionary()
)


def _kinds_of(mapper: Any) -> list[tuple[str, _Kind | None]]:
    found = _kinds.get(mapper)
    if found is None:
        found = [(mapper.get_property_by_column(c).key, _kind(c.type)) for c in mapper.primary_key]
        _kinds[mapper] = found
    return found


def normalise_identity(cls: type[Any], identity: tuple[Any, ...]) -> tuple[Any, ...]:
    """``identity``, a primary key of ``cls``, normalised by its columns' types.

    Equal primary keys give equal tuples, hence equal lock and lease keys (see
    the module doc)::

        normalise_identity(Price, (Decimal("1.00"),)) == (Decimal("1"),)
    """
    return normalise_mapper_identity(sa.inspect(cls), identity)


def normalise_mapper_identity(mapper: Any, identity: tuple[Any, ...]) -> tuple[Any, ...]:
    """:func:`normalise_identity` for a mapper (the flush guard has it at hand)."""
    cls = mapper.class_
    kinds = _kinds_of(mapper)
    if len(identity) != len(kinds):
        raise ValueError(
            f"{cls.__name__}'s primary key has {len(kinds)} column(s), got {identity!r}."
        )
    out = []
    for (attr, kind), value in zip(kinds, identity, strict=True):
        if kind is None or value is None:
            out.append(value)
            continue
        what, convert = kind
        try:
            out.append(convert(value))
        except _Refused as refused:
            raise refused.error(
                f"{cls.__name__}.{attr} is {what} primary key column, got {value!r}: "
                f"{refused.fix}."
            ) from None
    return tuple(out)


def table_name(cls: type[Any]) -> str:
    """The base table's full name, shared by every class of an inheritance hierarchy."""
    return sa.inspect(cls).base_mapper.local_table.fullname


def identity_of(obj: Any) -> tuple[Any, ...]:
    """``obj``'s primary key, normalised by its columns' types (:func:`normalise_identity`)."""
    state = sa.inspect(obj)
    if state.identity is not None:
        return normalise_identity(type(obj), tuple(state.identity))
    identity = state.mapper.identity_key_from_instance(obj)[1]
    if identity is None or None in identity:
        raise ValueError(
            f"{type(obj).__name__} instance has no primary key yet; flush it before "
            "locking or leasing it."
        )
    return normalise_identity(type(obj), tuple(identity))


def record_key(identity: tuple[Any, ...]) -> str:
    """Canonical JSON of a primary key: ``[42]``, ``["eu", 7]``.

    Values are written by their Python type (Decimals without exponent or
    trailing zeros, aware datetimes in UTC); give it an identity from
    :func:`identity_of` or :func:`normalise_identity` so that the column types
    are applied too.
    """
    if all(type(v) is int for v in identity):  # the common case, as json.dumps writes it
        return "[" + ",".join(map(str, identity)) + "]"
    return json.dumps([_canonical(v) for v in identity], separators=(",", ":"))


def advisory_key(table: str, identity: tuple[Any, ...]) -> int:
    """Signed 64-bit key for PostgreSQL's advisory lock functions."""
    return key_of_record_key(table, record_key(identity))


def key_of_record_key(table: str, record_key_: str) -> int:
    """:func:`advisory_key` from the record's :func:`record_key`, already built."""
    digest = hashlib.blake2b(f"{table}:{record_key_}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def describe(obj_or_cls: Any, identity: tuple[Any, ...]) -> str:
    """``Document(id=42)``: the model's name and primary key, for messages."""
    cls = obj_or_cls if isinstance(obj_or_cls, type) else type(obj_or_cls)
    mapper: Any = sa.inspect(cls)
    names = [mapper.get_property_by_column(c).key for c in mapper.primary_key]
    inner = ", ".join(f"{n}={v!r}" for n, v in zip(names, identity, strict=False))
    return f"{cls.__name__}({inner})"


def split_key(key: int) -> tuple[int, int]:
    """(classid, objid) under which ``pg_locks`` shows a bigint advisory key."""
    unsigned = key & 0xFFFFFFFFFFFFFFFF
    return unsigned >> 32, unsigned & 0xFFFFFFFF
