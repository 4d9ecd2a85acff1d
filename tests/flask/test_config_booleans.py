"""Boolean config keys: real booleans and the strings environment variables give."""

from __future__ import annotations

import pytest

import chrononaut
from chrononaut.extension import EXTENSION_KEY


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, True),
        (False, False),
        (1, True),
        (0, False),
        ("false", False),
        ("False", False),
        ("0", False),
        ("no", False),
        ("OFF", False),
        ("true", True),
        ("TRUE", True),
        ("1", True),
        ("yes", True),
        (" on ", True),
    ],
    ids=repr,
)
def test_require_extra_change_info_parses_booleans_and_their_strings(app, value, expected):
    app.config["CHRONONAUT_REQUIRE_EXTRA_CHANGE_INFO"] = value
    chrononaut.VersionedSQLAlchemy(app)
    settings = app.extensions[EXTENSION_KEY].settings
    assert settings.require_extra_change_info is expected


@pytest.mark.parametrize("value", ["", "maybe", "flase", 2, None, 0.5, []], ids=repr)
def test_require_extra_change_info_refuses_anything_else_naming_the_key(app, value):
    app.config["CHRONONAUT_REQUIRE_EXTRA_CHANGE_INFO"] = value
    with pytest.raises(TypeError) as exc_info:
        chrononaut.VersionedSQLAlchemy(app)
    assert str(exc_info.value) == (
        "CHRONONAUT_REQUIRE_EXTRA_CHANGE_INFO must be True or False (or one of the strings "
        f"true/false, yes/no, on/off, 1/0), got {value!r}."
    )


@pytest.mark.parametrize(("value", "expected"), [("false", False), ("Off", False), ("yes", True)])
def test_database_guard_parses_the_same_strings(app, value, expected):
    app.config["CHRONONAUT_DATABASE_GUARD"] = value
    db = chrononaut.VersionedSQLAlchemy(app)
    assert db._chrononaut_database_guard is expected


def test_database_guard_refuses_anything_else_naming_the_key(app):
    app.config["CHRONONAUT_DATABASE_GUARD"] = "sometimes"
    with pytest.raises(TypeError) as exc_info:
        chrononaut.VersionedSQLAlchemy(app)
    assert str(exc_info.value).startswith("CHRONONAUT_DATABASE_GUARD must be True or False")
    assert "'sometimes'" in str(exc_info.value)
