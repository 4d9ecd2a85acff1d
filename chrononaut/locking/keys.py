"""Record -> lock key, stable across processes, machines and Python versions.

A record is named by its base table and primary key. Its *record key* is the
primary key as canonical JSON (``[42]``, ``["eu", 7]``): exact, and what the
leases table stores. Its *advisory key* is the first 8 bytes of the BLAKE2b
digest of ``"<schema.table>:<record key>"``, read as a signed 64-bit integer,
which is what ``pg_advisory_xact_lock(bigint)`` takes.

Collisions: two different records share an advisory key with probability
about n²/2⁶⁵ for n locked-at-once records (one in 3.7 million million for a
million records). A collision can only make two unrelated records wait for
each other, never let two holders in. Leases use the exact record key and
cannot collide.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa


def _canonical(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float | Decimal):
        return str(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    raise TypeError(
        f"Cannot build a lock key from primary key value {value!r} of type "
        f"{type(value).__name__}; supported: int, str, UUID, Decimal, date, datetime, bytes."
    )


def table_name(cls: type[Any]) -> str:
    """The base table's full name, shared by every class of an inheritance hierarchy."""
    return sa.inspect(cls).base_mapper.local_table.fullname


def identity_of(obj: Any) -> tuple[Any, ...]:
    state = sa.inspect(obj)
    if state.identity is not None:
        return tuple(state.identity)
    identity = state.mapper.identity_key_from_instance(obj)[1]
    if identity is None or None in identity:
        raise ValueError(
            f"{type(obj).__name__} instance has no primary key yet; flush it before "
            "locking or leasing it."
        )
    return tuple(identity)


def record_key(identity: tuple[Any, ...]) -> str:
    """Canonical JSON of a primary key: ``[42]``, ``["eu", 7]``."""
    return json.dumps([_canonical(v) for v in identity], separators=(",", ":"))


def advisory_key(table: str, identity: tuple[Any, ...]) -> int:
    """Signed 64-bit key for PostgreSQL's advisory lock functions."""
    text = f"{table}:{record_key(identity)}".encode()
    digest = hashlib.blake2b(text, digest_size=8).digest()
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
