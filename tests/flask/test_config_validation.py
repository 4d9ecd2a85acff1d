"""Config checked in ``init_app``: ``CHRONONAUT_LOCK_WAIT``.

It goes through :class:`~chrononaut.Settings`, so a wait PostgreSQL cannot
take fails when the app starts, naming the key, instead of breaking every
later flush.
"""

from __future__ import annotations

import pytest

from chrononaut import VersionedSQLAlchemy


@pytest.mark.parametrize(
    "value", [float("nan"), float("inf"), True, -1, 2_147_484, "2", None]
)  # fmt: skip
def test_init_app_refuses_a_lock_wait_postgresql_cannot_take_naming_the_key(app, value):
    app.config["CHRONONAUT_LOCK_WAIT"] = value
    db = VersionedSQLAlchemy()
    with pytest.raises(ValueError) as exc_info:
        db.init_app(app)
    assert str(exc_info.value) == (
        "lock_wait (CHRONONAUT_LOCK_WAIT) must be a number of seconds >= 0, at most "
        f"2147483.647 (PostgreSQL's lock_timeout limit), got {value!r}."
    )


@pytest.mark.parametrize("value", [0, 0.25, 3])
def test_init_app_takes_a_lock_wait_postgresql_can_take(app, value):
    app.config["CHRONONAUT_LOCK_WAIT"] = value
    db = VersionedSQLAlchemy(app)
    assert app.extensions["chrononaut"].settings.lock_wait == value
    with app.app_context():
        for engine in db.engines.values():
            engine.dispose()
