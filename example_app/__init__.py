"""The chrononaut example app: two people editing the same documents.

Run it with ``python -m example_app``; build it in code with :func:`create_app`::

    app = create_app({"SQLALCHEMY_DATABASE_URI": "postgresql://..."})
"""

from __future__ import annotations

import os
import secrets
from datetime import datetime, timedelta, timezone
from typing import Any

from flask import Flask, render_template
from werkzeug.exceptions import HTTPException

import chrononaut

from . import actions as actions  # registers revert and restore on the documents blueprint
from . import editing as editing  # registers the edit routes on the documents blueprint
from .activity import bp as activity_bp
from .auth import init_auth
from .csrf import init_csrf
from .forms import FIELD_LABELS
from .models import STATUSES, db
from .views import bp as documents_bp

__all__ = ["create_app", "db"]


def utc(value: datetime | None, fmt: str = "%Y-%m-%d %H:%M UTC") -> str:
    """Format an aware datetime in UTC (the template filter ``utc``)."""
    if value is None:
        return ""
    return value.astimezone(timezone.utc).strftime(fmt)


def _http_error(error: HTTPException) -> tuple[str, int]:
    """Client errors (bad form, unknown document) as a page in the app's look."""
    return render_template("error.html", error=error), error.code or 500


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Build the app. ``config`` overrides the defaults and the environment.

    The database is ``SQLALCHEMY_DATABASE_URI`` from ``config``, else the
    ``DATABASE_URL`` environment variable. ``SECRET_KEY`` defaults to the
    ``SECRET_KEY`` environment variable, else a random key (logins then last
    until a restart). ``LEASE_TTL`` (a timedelta, 15 minutes) is how long an
    edit lease lasts.
    """
    app = Flask(__name__)
    app.config.update(
        SQLALCHEMY_DATABASE_URI=os.environ.get("DATABASE_URL"),
        SECRET_KEY=os.environ.get("SECRET_KEY") or secrets.token_hex(32),
        LEASE_TTL=timedelta(minutes=15),
        SESSION_COOKIE_SAMESITE="Lax",
    )
    app.config.update(config or {})
    if not app.config["SQLALCHEMY_DATABASE_URI"]:
        raise RuntimeError(
            "No database: set DATABASE_URL (or SQLALCHEMY_DATABASE_URI in the config), "
            "or run `python -m example_app`, which starts an embedded PostgreSQL."
        )
    db.init_app(app)
    chrononaut.register_error_handlers(app)
    init_csrf(app)
    init_auth(app)
    app.register_blueprint(documents_bp)
    app.register_blueprint(activity_bp)
    for code in (400, 403, 404, 405):
        app.register_error_handler(code, _http_error)
    app.jinja_env.filters["utc"] = utc
    app.jinja_env.globals.update(statuses=STATUSES, field_labels=FIELD_LABELS)
    return app
