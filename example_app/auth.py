"""Logging in and out with Flask-Login; the demo users and their passwords."""

from __future__ import annotations

from flask import Blueprint, Flask, flash, redirect, render_template, request, url_for
from flask_login import LoginManager, current_user, login_required, login_user, logout_user
from werkzeug.wrappers import Response

from .models import User, db

#: The demo users and their passwords, shown on the login page.
DEMO_USERS = {"alice": "wonderland", "bob": "builder"}

bp = Blueprint("auth", __name__)
login_manager = LoginManager()
login_manager.login_view = "auth.login"
login_manager.login_message = "Log in to see the documents."


@login_manager.user_loader
def load_user(username: str) -> User | None:
    """The logged-in user, by the username Flask-Login keeps in the session."""
    return db.session.scalar(db.select(User).filter_by(username=username))


def _safe_next(target: str | None) -> str:
    """``target`` if it is a path on this site, else the document list."""
    if target and target.startswith("/") and not target.startswith("//"):
        return target
    return url_for("documents.index")


@bp.route("/login", methods=["GET", "POST"])
def login() -> Response | str | tuple[str, int]:
    """The login form; the demo users' passwords are on the page."""
    if current_user.is_authenticated:
        return redirect(url_for("documents.index"))
    error = None
    username = ""
    if request.method == "POST":
        username = request.form.get("username", "").strip()
        user = load_user(username) if username else None
        if user is not None and user.check_password(request.form.get("password", "")):
            login_user(user)
            flash(f"Logged in as {user.username}.")
            return redirect(_safe_next(request.args.get("next")))
        error = "Unknown user or wrong password."
    page = render_template("login.html", demo_users=DEMO_USERS, error=error, username=username)
    return (page, 401) if error else page


@bp.route("/logout", methods=["POST"])
@login_required
def logout() -> Response:
    """Log out (a POST, so another site cannot log you out with a link)."""
    logout_user()
    flash("Logged out.")
    return redirect(url_for("auth.login"))


def init_auth(app: Flask) -> None:
    """Register Flask-Login and the login routes on ``app``."""
    login_manager.init_app(app)
    app.register_blueprint(bp)
