"""CSRF protection: a per-session token in a hidden field, checked on every POST."""

from __future__ import annotations

import hmac
import secrets

from flask import Flask, abort, request, session

SESSION_KEY = "csrf_token"
FIELD = "csrf_token"


def csrf_token() -> str:
    """This session's token, created on first use; templates put it in a hidden field."""
    token = session.get(SESSION_KEY)
    if not token:
        token = session[SESSION_KEY] = secrets.token_urlsafe(32)
    return token


def check_csrf() -> None:
    """Abort with 400 unless a POST carries this session's token."""
    if request.method != "POST":
        return
    expected = session.get(SESSION_KEY)
    sent = request.form.get(FIELD, "")
    if not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
        abort(400, description="The form's CSRF token is missing or wrong: reload the page.")


def init_csrf(app: Flask) -> None:
    """Check every POST of ``app`` and give templates ``csrf_token()``."""
    app.before_request(check_csrf)
    app.jinja_env.globals["csrf_token"] = csrf_token
