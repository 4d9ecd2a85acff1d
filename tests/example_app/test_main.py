"""``python -m example_app``: serves over HTTP and stops cleanly on Ctrl-C (SIGINT)."""

from __future__ import annotations

import http.cookiejar
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa

from example_app import create_app
from example_app.models import Document, User, db
from example_app.seed import seed

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 90
STOP_TIMEOUT = 60


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def running_app(env: dict[str, str], cwd: Path) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """Start ``python -m example_app``; yield its base URL once it answers; SIGINT on exit."""
    port = free_port()
    env = {**env, "PORT": str(port), "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "example_app"],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            assert process.poll() is None, process.stdout.read()
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "the app did not start listening"
                time.sleep(0.2)
        yield f"http://127.0.0.1:{port}", process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
                raise


def stop(process: subprocess.Popen[str]) -> str:
    """Send Ctrl-C, wait for a clean exit and return everything it printed."""
    process.send_signal(signal.SIGINT)
    output, _ = process.communicate(timeout=STOP_TIMEOUT)
    assert process.returncode == 0, output
    return output


def document_titles(base: str) -> list[str]:
    """Log in as alice over HTTP, as a browser would, and read the list's titles."""
    opener = urllib.request.build_opener(
        urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
    )
    with opener.open(f"{base}/login", timeout=30) as response:
        token = re.search(r'name="csrf_token" value="([^"]+)"', response.read().decode()).group(1)
    data = urllib.parse.urlencode(
        {"csrf_token": token, "username": "alice", "password": "wonderland"}
    ).encode()
    with opener.open(f"{base}/login", data=data, timeout=30) as response:
        page = response.read().decode()  # redirected to the list
    return re.findall(r'<a href="/documents/\d+">([^<]+)</a>', page)


def test_with_database_url_it_serves_the_login_page_and_stops_on_sigint(clean_database):
    env = {**os.environ, "DATABASE_URL": clean_database}
    with running_app(env, ROOT) as (base, process):
        with urllib.request.urlopen(f"{base}/login", timeout=30) as response:
            assert response.status == 200
            page = response.read().decode()
        assert "wonderland" in page and "builder" in page
        assert sorted(document_titles(base)) == ["FAQ", "Launch plan", "Meeting notes"]
        output = stop(process)
    assert f"chrononaut example app: {base}/" in output
    assert "embedded" not in output  # DATABASE_URL is used as is
    assert output.rstrip().endswith("Stopped.")
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", int(base.rsplit(":", 1)[1])), timeout=1).close()


def test_without_database_url_it_runs_an_embedded_server_whose_data_survives(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "EXAMPLE_APP_DATA")}
    data = tmp_path / "example_app_data"
    for run in (1, 2):
        with running_app(env, tmp_path) as (base, process):
            assert sorted(document_titles(base)) == ["FAQ", "Launch plan", "Meeting notes"]
            output = stop(process)
        assert f"Starting the embedded PostgreSQL in {data}" in output, run
        assert "Stopping the embedded PostgreSQL" in output
        assert (data / "PG_VERSION").exists()
        assert not (data / "postmaster.pid").exists()  # the server stopped with the app


def test_seeding_twice_adds_nothing(app):
    with app.app_context():
        seed()
        seed()
        counts = (
            db.session.scalar(sa.select(sa.func.count()).select_from(User)),
            db.session.scalar(sa.select(sa.func.count()).select_from(Document)),
        )
        plan = db.session.scalar(sa.select(Document).filter_by(title="Launch plan"))
        editors = [v.change_info["user_id"] for v in plan.versions()]
        db.session.remove()
    assert counts == (2, 3)
    assert editors == ["bob", "alice"]


def test_create_app_without_a_database_says_how_to_get_one(monkeypatch):
    monkeypatch.delenv("DATABASE_URL", raising=False)
    with pytest.raises(RuntimeError, match="python -m example_app"):
        create_app()
