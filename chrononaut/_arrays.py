"""Arrays sent to PostgreSQL as one text value.

psycopg2 sends a Python list as ``ARRAY[1, 2, ...]``, an expression of one
constant per element that the server parses and plans element by element:
about 4 ms for two arrays of 1,000 elements here, more than inserting the
rows they describe. The same values as the array's text form
(``'{1,2,...}'``), cast in the statement, cost half a millisecond, and every
driver sends a string the same way. The cast goes through ``text``
(``CAST(CAST(:keys AS text) AS bigint[])``): asyncpg would otherwise take the
parameter's type from the outer cast and refuse a string. Statements
that take many values in one parameter (creation events, the flush guard) use
:func:`literal` with a bind parameter typed :data:`TEXT`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa

#: The type of a bind parameter carrying :func:`literal`'s text.
TEXT = sa.Text()


def _element(value: Any) -> str:
    if type(value) is int:
        return str(value)
    if not isinstance(value, str):
        raise TypeError(f"an array element must be an int or a str, got {value!r}")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def literal(values: Iterable[Any]) -> str:
    """The text form of a one-dimensional array of ints or strings: ``{1,2}``, ``{"a","b"}``.

    Strings are quoted and escaped, so any text (commas, quotes, backslashes,
    braces, ``NULL``) arrives as itself; None is not accepted.
    """
    values = list(values)
    if all(type(value) is int for value in values):
        return "{" + ",".join(map(str, values)) + "}"
    return "{" + ",".join(map(_element, values)) + "}"


def bind(name: str, element: str) -> str:
    """The SQL of array parameter ``name`` (sent as :func:`literal`) of ``element`` values::

    bind("keys", "bigint")  # "CAST(CAST(:keys AS text) AS bigint[])"
    """
    return f"CAST(CAST(:{name} AS text) AS {element}[])"
