"""The chrononaut example app: two people editing the same documents.

Run it with ``python -m example_app``; build it in code with :func:`create_app`::

    app = create_app({"SQLALCHEMY_DATABASE_URI": "postgresql://..."})

In production serve it with a WSGI server, for example
``waitress-serve --call example_app:create_app``, with ``DATABASE_URL`` and
``SECRET_KEY`` in the environment (``flask --app example_app init-db`` creates
the tables and demo users first).
"""

from __future__ import annotations

import os
import re
import secrets
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import click
from flask import Flask, render_template
from flask.cli import with_appcontext
from werkzeug.exceptions import HTTPException
from werkzeug.routing import IntegerConverter
from werkzeug.wrappers import Response

import chrononaut

from . import actions as actions  # registers revert and restore on the documents blueprint
from . import editing as editing  # registers the edit routes on the documents blueprint
from .activity import bp as activity_bp
from .auth import init_auth
from .csrf import init_csrf
from .forms import FIELD_LABELS
from .models import STATUS_LABELS, STATUSES, db
from .views import bp as documents_bp

__all__ = ["create_app", "data_folder", "db"]

#: The embedded database's folder: ``EXAMPLE_APP_DATA``, else ``./example_app_data``.
DATA_VARIABLE = "EXAMPLE_APP_DATA"
DEFAULT_DATA = "example_app_data"
#: The edit lease's length in seconds, from the environment.
TTL_VARIABLE = "EXAMPLE_APP_LEASE_TTL"
#: Requests larger than this are refused (413) before their form is parsed.
MAX_REQUEST_BYTES = 1024 * 1024

SECURITY_HEADERS = {
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


def utc(value: datetime | None, fmt: str = "%Y-%m-%d %H:%M UTC") -> str:
    """Format an aware datetime in UTC (the template filter ``utc``)."""
    if value is None:
        return ""
    return value.astimezone(timezone.utc).strftime(fmt)


def _http_error(error: HTTPException) -> tuple[str, int]:
    """Client errors (bad form, unknown document) as a page in the app's look."""
    return render_template("error.html", error=error), error.code or 500


def _security_headers(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def data_folder() -> Path:
    """The embedded database's data folder (``EXAMPLE_APP_DATA`` or ``./example_app_data``)."""
    return Path(os.environ.get(DATA_VARIABLE) or DEFAULT_DATA).resolve()


def running_embedded_url(folder: Path) -> str | None:
    """The URL of the embedded PostgreSQL running on ``folder`` (``python -m example_app``)."""
    try:
        lines = (folder / "postmaster.pid").read_text().splitlines()
    except FileNotFoundError:
        return None
    if len(lines) < 5 or not lines[0].strip().isdigit() or not lines[4].strip():
        return None
    try:
        os.kill(int(lines[0]), 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass  # running as another user (the embedded server runs as pgserver under root)
    return f"postgresql://postgres:@/postgres?host={lines[4].strip()}"


def lease_ttl_from_environment() -> timedelta:
    """``EXAMPLE_APP_LEASE_TTL`` (whole seconds, 1 to 86400), else 15 minutes."""
    raw = os.environ.get(TTL_VARIABLE)
    if raw is None or raw == "":
        return timedelta(minutes=15)
    if not re.fullmatch(r"[0-9]{1,5}", raw) or not 0 < int(raw) <= 86400:
        raise ValueError(
            f"{TTL_VARIABLE} must be a whole number of seconds from 1 to 86400, got {raw!r}."
        )
    return timedelta(seconds=int(raw))


def _kept_secret_key() -> str | None:
    """The key ``python -m example_app`` keeps in the data folder, if there is one."""
    try:
        return (data_folder() / "secret_key").read_text().strip() or None
    except OSError:
        return None


def _database_url() -> str | None:
    return os.environ.get("DATABASE_URL") or running_embedded_url(data_folder())


class _RowId(IntegerConverter):
    """``<int:...>`` within PostgreSQL's ``integer`` range, so a larger id is a 404 on
    every driver (psycopg 3 sends it typed, and the server refuses it as out of range)."""

    def __init__(self, map: Any, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("max", 2**31 - 1)
        super().__init__(map, *args, **kwargs)


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Build the app. ``config`` overrides the defaults and the environment.

    The database is ``SQLALCHEMY_DATABASE_URI`` from ``config``, else the
    ``DATABASE_URL`` environment variable, else the embedded PostgreSQL that
    ``python -m example_app`` is running on the data folder (so ``flask --app
    example_app chrononaut ...`` works beside it). ``SECRET_KEY`` defaults to
    the ``SECRET_KEY`` environment variable, else the key kept in the data
    folder by ``python -m example_app``, else a random key (logins then
    last until a restart). ``LEASE_TTL`` (a timedelta) is how long an edit lease lasts:
    ``EXAMPLE_APP_LEASE_TTL`` seconds, else 15 minutes.
    """
    app = Flask(__name__)
    app.url_map.converters["int"] = _RowId
    app.config.update(
        SECRET_KEY=os.environ.get("SECRET_KEY"),
        SESSION_COOKIE_SAMESITE="Lax",
        MAX_CONTENT_LENGTH=MAX_REQUEST_BYTES,
        MAX_FORM_MEMORY_SIZE=MAX_REQUEST_BYTES,
    )
    app.config.update(config or {})
    if "LEASE_TTL" not in app.config:
        app.config["LEASE_TTL"] = lease_ttl_from_environment()
    if not app.config.get("SQLALCHEMY_DATABASE_URI"):
        app.config["SQLALCHEMY_DATABASE_URI"] = _database_url()
    if not app.config["SQLALCHEMY_DATABASE_URI"]:
        raise RuntimeError(
            "No database: set DATABASE_URL (or SQLALCHEMY_DATABASE_URI in the config), "
            "or run `python -m example_app`, which starts an embedded PostgreSQL."
        )
    if not app.config["SECRET_KEY"]:
        kept = _kept_secret_key()
        if kept is None:
            app.logger.warning("No SECRET_KEY set: logins and open forms end at the next restart.")
        app.config["SECRET_KEY"] = kept or secrets.token_hex(32)
    db.init_app(app)
    chrononaut.register_error_handlers(app)
    init_csrf(app)
    init_auth(app)
    app.register_blueprint(documents_bp)
    app.register_blueprint(activity_bp)
    for code in (400, 403, 404, 405, 410, 413, 429):
        app.register_error_handler(code, _http_error)
    app.after_request(_security_headers)
    app.jinja_env.filters["utc"] = utc
    app.jinja_env.globals.update(
        statuses=STATUSES, status_labels=STATUS_LABELS, field_labels=FIELD_LABELS
    )
    app.cli.add_command(init_db_command)
    return app


@click.command("init-db")
@with_appcontext
def init_db_command() -> None:
    """Create the tables (documents, history, leases) and the demo users and documents."""
    from .seed import seed

    seed()
    click.echo("Created the tables and the demo data (if missing).")
