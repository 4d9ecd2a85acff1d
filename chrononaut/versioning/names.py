"""Names chrononaut gives to history tables and their columns and indexes.

One place for the history table's own meta columns (``version``, ``changed``,
``change_info``, ``transaction_id``), so the history builder, the flush
recorder, the bulk path, the queries and the database guard agree on them,
and for the rule that fits a generated name into PostgreSQL's 63-byte
identifiers. A name past the limit is cut and given a short hash of the full
name, as SQLAlchemy's naming conventions do: the same model always gives the
same name, so Alembic sees no change, and two long names that share a prefix
get different names.
"""

from __future__ import annotations

import hashlib

#: The history row's version of the record (a key column, with the record's key); also the
#: versioned model's own version counter attribute.
VERSION = "version"
#: When the change was made (timestamptz, UTC).
CHANGED = "changed"
#: What the change records: user, address, extra info, deletion, hidden columns changed.
CHANGE_INFO = "change_info"
#: Names of the columns every base history table adds, in table order.
META_COLUMNS = (VERSION, CHANGED, CHANGE_INFO)
#: The changeset: the writing transaction's id (``pg_current_xact_id()``), the same
#: for every history row and creation event one database transaction writes. Filled
#: by its server default, so it is not among the columns chrononaut's INSERTs list.
TRANSACTION_ID = "transaction_id"
#: Column names a versioned model cannot use: the history table has its own.
RESERVED_COLUMNS = (*META_COLUMNS, TRANSACTION_ID)

#: PostgreSQL's NAMEDATALEN - 1: identifiers are cut to this many bytes.
MAX_NAME = 63
HISTORY_SUFFIX = "_history"


def _digest(name: str) -> str:
    return hashlib.blake2b(name.encode(), digest_size=4).hexdigest()


def fit_name(name: str, suffix: str = "") -> str:
    """``name + suffix`` if it fits in 63 bytes, else ``name`` cut, a hash of it, and ``suffix``.

    ::

        fit_name("ix_" + "a" * 70)  # "ix_aaa...aaa_1f2e3d4c", 63 bytes
    """
    if len((name + suffix).encode()) <= MAX_NAME:
        return name + suffix
    tail = f"_{_digest(name)}{suffix}"
    head = name.encode()[: MAX_NAME - len(tail.encode())].decode(errors="ignore")
    return head + tail


#: The server default of ``transaction_id``: the writing transaction's id as a bigint.
TRANSACTION_ID_DEFAULT = "(pg_current_xact_id()::text::bigint)"


def history_table_name(table_name: str) -> str:
    """``<table>_history``, shortened with a hash when past 63 bytes."""
    return fit_name(table_name, HISTORY_SUFFIX)
