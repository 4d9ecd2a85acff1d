"""``python -m example_app``: serves over HTTP and stops cleanly on Ctrl-C (SIGINT),
SIGTERM and after a SIGKILL; clear one-line errors; the CLI beside it; a WSGI server."""

from __future__ import annotations

import http.cookiejar
import json
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


def stop(process: subprocess.Popen[str], signum: int = signal.SIGINT) -> str:
    """Send Ctrl-C (or ``signum``), wait for a clean exit and return everything it printed."""
    process.send_signal(signum)
    output, _ = process.communicate(timeout=STOP_TIMEOUT)
    assert process.returncode == 0, output
    return output


def document_titles(base: str, jar: http.cookiejar.CookieJar | None = None) -> list[str]:
    """Log in as alice over HTTP, as a browser would, and read the list's titles."""
    opener = urllib.request.build_opener(
        urllib.request.HTTPCookieProcessor(jar if jar is not None else http.cookiejar.CookieJar())
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


def postgres_processes(data: Path) -> list[int]:
    """The pids of PostgreSQL processes serving ``data``."""
    import psutil

    found = []
    for process in psutil.process_iter(["name", "cmdline"]):
        cmdline = process.info["cmdline"] or []
        if "postgres" in (process.info["name"] or "") and str(data) in " ".join(cmdline):
            found.append(process.pid)
    return found


def embedded_env(tmp_path: Path) -> dict[str, str]:
    drop = ("DATABASE_URL", "EXAMPLE_APP_DATA", "SECRET_KEY")
    return {k: v for k, v in os.environ.items() if k not in drop}


def list_page(base: str, jar: http.cookiejar.CookieJar) -> tuple[str, str]:
    """The document list with ``jar``'s cookies, without logging in: (final URL, page)."""
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    with opener.open(f"{base}/documents", timeout=30) as response:
        return response.geturl(), response.read().decode()


def create_document(base: str, jar: http.cookiejar.CookieJar, title: str) -> None:
    """As the logged-in user of ``jar``, create a document through the New form."""
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    with opener.open(f"{base}/documents/new", timeout=30) as response:
        token = re.search(r'name="csrf_token" value="([^"]+)"', response.read().decode()).group(1)
    data = urllib.parse.urlencode(
        {"csrf_token": token, "title": title, "body": "kept", "status": "draft"}
    ).encode()
    with opener.open(f"{base}/documents/new", data=data, timeout=30) as response:
        assert title in response.read().decode()


def test_sigterm_stops_the_app_and_its_embedded_postgres(tmp_path):
    data = tmp_path / "example_app_data"
    with running_app(embedded_env(tmp_path), tmp_path) as (_base, process):
        assert postgres_processes(data)
        output = stop(process, signal.SIGTERM)
    assert "Stopping the embedded PostgreSQL" in output
    assert output.rstrip().endswith("Stopped.")
    assert not (data / "postmaster.pid").exists()
    assert postgres_processes(data) == []


def test_after_a_sigkill_a_restart_takes_over_the_server_and_ctrl_c_stops_it(tmp_path):
    data = tmp_path / "example_app_data"
    jar = http.cookiejar.CookieJar()
    env = embedded_env(tmp_path)
    with running_app(env, tmp_path) as (base, process):
        assert "Launch plan" in document_titles(base, jar)  # logged in: the cookie is in jar
        create_document(base, jar, "Written before the kill")
        killed = process.pid
        process.kill()
        process.communicate(timeout=STOP_TIMEOUT)
    assert postgres_processes(data)  # the killed app left its server running
    assert killed in json.loads((data / ".handle_pids.json").read_text())
    with running_app(env, tmp_path) as (base, process):
        url, page = list_page(base, jar)
        assert url.endswith("/documents") and "Launch plan" in page  # still logged in
        assert "Written before the kill" in page  # the data was kept
        cli = subprocess.run(
            [
                sys.executable,
                "-m",
                "flask",
                "--app",
                "example_app",
                "chrononaut",
                "history",
                "Document",
                "1",
            ],
            cwd=tmp_path,
            env={**env, "PYTHONPATH": str(ROOT)},
            capture_output=True,
            text=True,
            timeout=START_TIMEOUT,
        )
        assert cli.returncode == 0, cli.stderr
        assert cli.stdout.startswith("Document(id=1): version 2")
        output = stop(process)
    assert f"Dropped the handles of stopped processes [{killed}]" in output
    assert output.rstrip().endswith("Stopped.")
    assert postgres_processes(data) == []
    assert not (data / "postmaster.pid").exists()
    assert (data / "secret_key").stat().st_mode & 0o077 == 0


def run_to_exit(env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "example_app"],
        cwd=cwd,
        env={**env, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"},
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT,
    )


def test_a_busy_port_is_one_line_and_a_non_zero_exit(clean_database, tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {**os.environ, "DATABASE_URL": clean_database, "PORT": str(port)}
        result = run_to_exit(env, tmp_path)
    assert result.returncode == 1
    assert result.stderr == (
        f"example_app: Cannot listen on 127.0.0.1:{port}: Address already in use; "
        "set PORT to a free port.\n"
    )
    assert "http://" not in result.stdout and "Stopped." not in result.stdout


def test_a_missing_database_is_one_line_and_a_non_zero_exit(database_url, tmp_path):
    missing = database_url.rsplit("/", 1)[0] + "/no_such_database_for_the_example"
    result = run_to_exit({**os.environ, "DATABASE_URL": missing, "PORT": "1"}, tmp_path)
    assert result.returncode == 1
    assert result.stderr.startswith(f"example_app: Cannot use the database {missing!r}: ")
    assert 'database "no_such_database_for_the_example" does not exist' in result.stderr
    assert len(result.stderr.splitlines()) == 1 and "Traceback" not in result.stderr
    assert "http://" not in result.stdout


def test_a_malformed_port_or_lease_ttl_is_one_line(clean_database, tmp_path):
    env = {**os.environ, "DATABASE_URL": clean_database}
    result = run_to_exit({**env, "PORT": "²"}, tmp_path)
    assert (result.returncode, result.stderr) == (
        1,
        "example_app: PORT must be a number from 1 to 65535, got '²'.\n",
    )
    result = run_to_exit({**env, "PORT": "5000", "EXAMPLE_APP_LEASE_TTL": "soon"}, tmp_path)
    assert result.returncode == 1
    assert "EXAMPLE_APP_LEASE_TTL must be a whole number of seconds" in result.stderr
    assert len(result.stderr.splitlines()) == 1


def test_production_setup_with_waitress_as_the_readme_says(clean_database, tmp_path):
    env = {
        **os.environ,
        "DATABASE_URL": clean_database,
        "SECRET_KEY": "a long random production key",
        "PYTHONPATH": str(ROOT),
    }
    setup = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "example_app", "init-db"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT,
    )
    assert setup.returncode == 0, setup.stderr
    assert "Created the tables and the demo data" in setup.stdout
    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,  # waitress-serve of this environment, PATH or not
            "-m",
            "waitress",
            f"--listen=127.0.0.1:{port}",
            "--call",
            "example_app:create_app",
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            assert server.poll() is None, server.stdout.read()
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "waitress did not start listening"
                time.sleep(0.2)
        base = f"http://127.0.0.1:{port}"
        assert sorted(document_titles(base)) == ["FAQ", "Launch plan", "Meeting notes"]
        with urllib.request.urlopen(f"{base}/login", timeout=30) as response:
            assert response.headers["X-Frame-Options"] == "DENY"
    finally:
        server.send_signal(signal.SIGTERM)
        server.communicate(timeout=STOP_TIMEOUT)
