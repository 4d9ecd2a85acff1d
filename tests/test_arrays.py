"""chrononaut._arrays: arrays sent as their text form arrive as the values sent."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from chrononaut import _arrays

AWKWARD = [
    "",
    "plain",
    "a,b",
    '"quoted"',
    "back\\slash",
    "{braces}",
    "NULL",
    "null",
    " spaced ",
    "tab\tand\nnewline",
    "ünïcødé ✓",
    "'single'",
    '\\"',
]


def _round_trip(engine: sa.Engine, values: list, sql_type: str) -> list:
    statement = sa.text(f"SELECT {_arrays.bind('a', sql_type)} AS a").bindparams(
        sa.bindparam("a", type_=_arrays.TEXT)
    )
    with engine.connect() as connection:
        return connection.execute(statement, {"a": _arrays.literal(values)}).scalar_one()


def test_awkward_strings_arrive_unchanged(engine: sa.Engine) -> None:
    assert _round_trip(engine, AWKWARD, "text") == AWKWARD


def test_integers_arrive_unchanged(engine: sa.Engine) -> None:
    values = [0, -1, 2**63 - 1, -(2**63), 42]
    assert _round_trip(engine, values, "bigint") == values


def test_a_large_array_arrives_whole(engine: sa.Engine) -> None:
    values = list(range(100_000))
    assert _round_trip(engine, values, "bigint") == values


def test_empty_array(engine: sa.Engine) -> None:
    assert _round_trip(engine, [], "text") == []
    assert _arrays.literal([]) == "{}"


def test_mixed_ints_and_strings_are_quoted() -> None:
    assert _arrays.literal([1, "a"]) == '{1,"a"}'


def test_bind_casts_through_text() -> None:
    assert _arrays.bind("keys", "bigint") == "CAST(CAST(:keys AS text) AS bigint[])"


@pytest.mark.parametrize("bad", [None, 1.5, b"bytes", True])
def test_other_types_are_refused(bad: object) -> None:
    with pytest.raises(TypeError, match="int or a str"):
        _arrays.literal(["a", bad])
