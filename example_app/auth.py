"""Logging in and out with Flask-Login; the demo users and their passwords.

Logging in and out clears the session (a new CSRF token, nothing left from
before). Unknown users are checked against a dummy hash, so a wrong user name
takes as long as a wrong password. After :data:`FREE_FAILURES` wrong
passwords for one user from one address, each further try must wait twice as
long as the one before (429), up to :data:`MAX_WAIT` seconds.

A document form posted without a login (logged out in another tab, or the
session lost) is not thrown away: the login page shows what was typed and
carries it, and after logging in the edit page shows it again to be saved.
"""

from __future__ import annotations

import threading
import time
import unicodedata
from typing import Any
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Flask,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import LoginManager, current_user, login_required, login_user, logout_user
from werkzeug.exceptions import TooManyRequests
from werkzeug.security import check_password_hash, generate_password_hash
from werkzeug.wrappers import Response

from .forms import CARRIED_FIELDS, has_control_characters
from .models import User, db

#: The demo users and their passwords, shown on the login page.
DEMO_USERS = {"alice": "wonderland", "bob": "builder"}
#: Wrong passwords per user and address before each try has to wait.
FREE_FAILURES = 5
#: The longest wait between tries, in seconds.
MAX_WAIT = 300
#: Failure counters kept (the oldest are dropped beyond this).
MAX_TRACKED = 10_000
USERNAME_MAX = 40
PASSWORD_MAX = 200

bp = Blueprint("auth", __name__)
login_manager = LoginManager()
login_manager.login_view = "auth.login"
login_manager.login_message = "Log in to see the documents."

_DUMMY_HASH = generate_password_hash("not a password of anyone")


@login_manager.user_loader
def load_user(username: str) -> User | None:
    """The logged-in user, by the username Flask-Login keeps in the session."""
    return db.session.scalar(db.select(User).filter_by(username=username))


def safe_next(target: str | None) -> str:
    """``target`` if it is a path on this site, else the document list.

    Browsers drop tabs and newlines from URLs and read ``\\`` as ``/``, so
    ``/\\t/evil.example/`` would become ``//evil.example/``: a target with any
    control character or backslash is refused, and so is one with a scheme or
    host after parsing, or one starting with ``//``.
    """
    if not target or "\\" in target or has_control_characters(target, allow=""):
        return url_for("documents.index")
    if any(unicodedata.category(ch) in ("Zs", "Zl", "Zp") for ch in target):
        return url_for("documents.index")
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return url_for("documents.index")
    return target


class _Failures:
    """Wrong-password counts per (user, address), shared by the app's threads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.counts: dict[tuple[str, str], tuple[int, float]] = {}

    def wait(self, key: tuple[str, str]) -> int:
        """Seconds to wait before ``key`` may try again (0: now)."""
        with self.lock:
            count, last = self.counts.get(key, (0, 0.0))
        if count < FREE_FAILURES:
            return 0
        delay = min(2 ** (count - FREE_FAILURES), MAX_WAIT)
        return max(0, int(last + delay - time.monotonic() + 0.999))

    def failed(self, key: tuple[str, str]) -> None:
        with self.lock:
            count, _ = self.counts.pop(key, (0, 0.0))
            self.counts[key] = (count + 1, time.monotonic())
            while len(self.counts) > MAX_TRACKED:
                del self.counts[next(iter(self.counts))]

    def succeeded(self, key: tuple[str, str]) -> None:
        with self.lock:
            self.counts.pop(key, None)


def _failures() -> _Failures:
    return current_app.extensions["example_app.login_failures"]


def carried(form: Any) -> dict[str, str]:
    """The document form fields a POST carried (empty when it was no document form)."""
    if "title" not in form:
        return {}
    return {name: form.get(name, "") for name in CARRIED_FIELDS}


def login_page(
    error: str | None = None,
    username: str = "",
    kept: dict[str, str] | None = None,
    next_url: str | None = None,
) -> str:
    """The login form, with what a lost session's document form held (``kept``)."""
    if next_url is None:
        next_url = request.args.get("next")
    return render_template(
        "login.html",
        demo_users=DEMO_USERS,
        error=error,
        username=username,
        kept=kept or {},
        next_url=next_url,
    )


def _check(username: str, password: str) -> User | None:
    """The user if the password is right; the same work whether the user exists or not."""
    user = load_user(username) if username else None
    if user is None:
        check_password_hash(_DUMMY_HASH, password)
        return None
    return user if user.check_password(password) else None


def _after_login(target: str, kept: dict[str, str]) -> Any:
    if kept:
        from .editing import render_kept  # editing imports the views, which import this

        page = render_kept(target, kept)
        if page is not None:
            return page
    return redirect(target)


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    """The login form; the demo users' passwords are on the page."""
    if current_user.is_authenticated and request.method == "GET":
        return redirect(url_for("documents.index"))
    if request.method == "GET":
        return login_page()
    raw_username = request.form.get("username", "")
    username = raw_username.strip()
    password = request.form.get("password", "")
    kept = carried(request.form)
    if (
        len(username) > USERNAME_MAX
        or len(password) > PASSWORD_MAX
        or has_control_characters(raw_username, allow="")
        or "\x00" in password
    ):
        return login_page("Unknown user or wrong password.", "", kept), 400
    key = (username.casefold(), request.remote_addr or "")
    wait = _failures().wait(key)
    if wait:
        raise TooManyRequests(
            f"Too many wrong passwords for {username} from your address: "
            f"try again in {wait} seconds."
        )
    user = _check(username, password)
    if user is None:
        _failures().failed(key)
        return login_page("Unknown user or wrong password.", username, kept), 401
    _failures().succeeded(key)
    target = safe_next(request.args.get("next"))
    session.clear()  # a new session: a new CSRF token, nothing of the one before
    login_user(user)
    flash(f"Logged in as {user.username}.")
    return _after_login(target, kept)


@bp.route("/logout", methods=["POST"])
@login_required
def logout() -> Response:
    """Log out (a POST, so another site cannot log you out with a link)."""
    logout_user()
    session.clear()
    flash("Logged out.")
    return redirect(url_for("auth.login"))


@login_manager.unauthorized_handler
def unauthorized() -> Any:
    """Not logged in: to the login page; a posted document form is shown there, not lost."""
    kept = carried(request.form) if request.method == "POST" else {}
    if kept:
        return kept_form_login(kept), 401
    flash(login_manager.login_message)
    return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))


def kept_form_login(kept: dict[str, str]) -> str:
    """The login page for a document form posted without a session, showing what it held."""
    flash("Your session ended before the save: nothing was saved. Log in to save it.")
    return login_page(kept=kept, next_url=request.path)


def init_auth(app: Flask) -> None:
    """Register Flask-Login and the login routes on ``app``."""
    app.extensions["example_app.login_failures"] = _Failures()
    login_manager.init_app(app)
    app.register_blueprint(bp)
