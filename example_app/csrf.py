"""CSRF protection: a per-session token in a hidden field, checked on every POST.

Logging in and out clears the session, so the token changes with each login.
A document form whose session is gone (logged out in another tab, or the
session cookie lost) is answered with the login page showing what it held,
so the typed text is not lost; nothing is saved.
"""

from __future__ import annotations

import hmac
import secrets
from typing import Any

from flask import Flask, abort, request, session
from flask_login import current_user

SESSION_KEY = "csrf_token"
FIELD = "csrf_token"


def csrf_token() -> str:
    """This session's token, created on first use; templates put it in a hidden field."""
    token = session.get(SESSION_KEY)
    if not token:
        token = session[SESSION_KEY] = secrets.token_urlsafe(32)
    return token


def check_csrf() -> Any:
    """Abort with 400 unless a POST carries this session's token."""
    if request.method != "POST":
        return None
    expected = session.get(SESSION_KEY)
    sent = request.form.get(FIELD, "")
    if expected and hmac.compare_digest(sent.encode(), expected.encode()):
        return None
    if not current_user.is_authenticated:
        from .auth import carried, kept_form_login

        kept = carried(request.form)
        if kept:
            return kept_form_login(kept), 401
    abort(400, description="The form's CSRF token is missing or wrong: reload the page.")


def init_csrf(app: Flask) -> None:
    """Check every POST of ``app`` and give templates ``csrf_token()``."""
    app.before_request(check_csrf)
    app.jinja_env.globals["csrf_token"] = csrf_token
