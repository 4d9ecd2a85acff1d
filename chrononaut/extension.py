"""Flask glue: :class:`VersionedSQLAlchemy`, config keys, the request actor and the CLI.

Config keys, read once in :meth:`VersionedSQLAlchemy.init_app`:

========================================  =======  =====================================
key                                       default  meaning
========================================  =======  =====================================
``CHRONONAUT_REQUIRE_EXTRA_CHANGE_INFO``  False    refuse versioned updates and deletes
                                                   flushed without extra change info
``CHRONONAUT_EXTRA_CHANGE_INFO_FUNC``     None     callable returning a dict merged into
                                                   the top level of every change_info
``CHRONONAUT_LOCK_WAIT``                  0        seconds a flush waits for another
                                                   transaction's ``lock()`` on a record
                                                   it writes (0: refuse at once)
``CHRONONAUT_DATABASE_GUARD``             False    give every versioned model's table the
                                                   database guard's triggers (a model's
                                                   ``__chrononaut_database_guard__`` wins)
========================================  =======  =====================================
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import Flask, current_app, has_app_context, has_request_context, request
from flask_sqlalchemy import SQLAlchemy

from .cli import chrononaut_cli
from .session import listen
from .settings import DEFAULT_SETTINGS, Settings
from .versioning.database_guard import enable_database_guard

EXTENSION_KEY = "chrononaut"


class FlaskActor:
    """Reads the acting user from Flask-Login and the address from the request."""

    def user_id(self) -> Any:
        if not has_request_context():
            return None
        try:
            from flask_login import current_user
        except ImportError:  # Flask-Login is optional
            return None
        try:
            if current_user is None or not current_user.is_authenticated:
                return None
            return current_user.get_id()
        except AttributeError:  # no LoginManager on this app
            return None

    def remote_addr(self) -> Any:
        return request.remote_addr if has_request_context() else None


_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})


def config_bool(config: Any, key: str, default: bool = False) -> bool:
    """``config[key]`` as a bool: True/False, 1/0, or one of the strings true/false,
    1/0, yes/no, on/off in any case (as environment variables give them).

    Anything else raises :class:`TypeError` naming the key, rather than guessing::

        config_bool({"CHRONONAUT_DATABASE_GUARD": "false"}, "CHRONONAUT_DATABASE_GUARD")  # False
    """
    value = config.setdefault(key, default)
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise TypeError(
        f"{key} must be True or False (or one of the strings true/false, yes/no, on/off, "
        f"1/0), got {value!r}."
    )


def _read_settings(app: Flask) -> Settings:
    config = app.config
    func = config.setdefault("CHRONONAUT_EXTRA_CHANGE_INFO_FUNC", None)
    if func is not None and not callable(func):
        raise TypeError(
            f"CHRONONAUT_EXTRA_CHANGE_INFO_FUNC must be a callable returning a dict, got {func!r}"
        )
    return Settings(
        require_extra_change_info=config_bool(config, "CHRONONAUT_REQUIRE_EXTRA_CHANGE_INFO"),
        extra_change_info_func=func,
        actor=FlaskActor(),
        lock_wait=config.setdefault("CHRONONAUT_LOCK_WAIT", 0),
    )


def _read_database_guard(app: Flask) -> bool:
    return config_bool(app.config, "CHRONONAUT_DATABASE_GUARD")


def _settings_of_current_app() -> Settings:
    if not has_app_context():
        return DEFAULT_SETTINGS
    state = current_app.extensions.get(EXTENSION_KEY)
    return state.settings if state is not None else DEFAULT_SETTINGS


class _State:
    def __init__(self, db: VersionedSQLAlchemy, settings: Settings) -> None:
        self.db = db
        self.settings = settings


class VersionedSQLAlchemy(SQLAlchemy):
    """Drop-in replacement for :class:`flask_sqlalchemy.SQLAlchemy` that versions models.

    Its sessions write history for every :class:`~chrononaut.Versioned` model::

        db = VersionedSQLAlchemy(app)
        # or
        db = VersionedSQLAlchemy()
        db.init_app(app)
    """

    def __init__(self, app: Flask | None = None, **kwargs: Any) -> None:
        super().__init__(app=None, **kwargs)
        listen(self.session, settings=_settings_of_current_app)
        if app is not None:
            self.init_app(app)

    _chrononaut_database_guard = False

    def _make_metadata(self, bind_key: str | None) -> sa.MetaData:
        metadata = super()._make_metadata(bind_key)
        if self._chrononaut_database_guard:  # a bind key's models declared after init_app
            enable_database_guard(metadata)
        return metadata

    def init_app(self, app: Flask) -> None:
        """Register the extension on ``app``, read its ``CHRONONAUT_*`` config and add
        the ``flask chrononaut`` commands (see :mod:`chrononaut.cli`)."""
        super().init_app(app)
        app.extensions[EXTENSION_KEY] = _State(self, _read_settings(app))
        if _read_database_guard(app):
            # Schema, not flush-time behaviour: the DDL events read it from the MetaData.
            self._chrononaut_database_guard = True
            for metadata in self.metadatas.values():
                enable_database_guard(metadata)
        app.cli.add_command(chrononaut_cli)
