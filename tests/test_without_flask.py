"""The SQLAlchemy core imports and works where Flask cannot be imported.

A fresh interpreter whose import machinery refuses ``flask``, ``flask_sqlalchemy``,
``flask_login`` and ``werkzeug`` (as in a FastAPI app or a worker's environment
without them) imports ``chrononaut`` and ``chrononaut.versioning``, records
history and takes a lock on the test database; only touching the Flask glue
raises, with an error that says what to install.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = textwrap.dedent(
    """
    import importlib.abc
    import os
    import sys

    REFUSED = ("flask", "flask_sqlalchemy", "flask_login", "werkzeug")


    class RefuseFlask(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in REFUSED:
                raise ModuleNotFoundError(f"No module named {name!r} (refused)", name=name)
            return None


    sys.meta_path.insert(0, RefuseFlask())

    import sqlalchemy as sa
    from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, sessionmaker

    import chrononaut
    import chrononaut.versioning


    class Base(DeclarativeBase):
        pass


    class Note(Base, chrononaut.Versioned):
        __tablename__ = "note"
        id: Mapped[int] = mapped_column(primary_key=True)
        text: Mapped[str]


    engine = sa.create_engine(os.environ["DATABASE_URL"])
    Base.metadata.create_all(engine)
    Session = sessionmaker(engine)
    chrononaut.listen(Session, settings=chrononaut.Settings(require_extra_change_info=False))
    with Session() as session, chrononaut.acting_as("worker"):
        note = Note(text="draft")
        session.add(note)
        session.commit()
        with note.lock():
            note.text = "final"
        versions = note.versions()
        print("history", [v.text for v in versions], versions[0].change_info["user_id"])
    engine.dispose()
    try:
        chrononaut.VersionedSQLAlchemy
    except ImportError as error:
        print("glue", error)
    print("loaded", sorted(m for m in sys.modules if m.split(".")[0] in REFUSED))
    """
)


def test_core_imports_and_records_history_when_flask_cannot_be_imported(clean_database):
    env = {**os.environ, "DATABASE_URL": clean_database, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "history ['draft'] worker" in lines
    glue = next(line for line in lines if line.startswith("glue "))
    assert "chrononaut.VersionedSQLAlchemy is the Flask integration" in glue
    assert "pip install flask flask-sqlalchemy" in glue
    assert "loaded []" in lines


def test_flask_glue_is_imported_on_first_use():
    import chrononaut
    from chrononaut import extension, http

    assert chrononaut.VersionedSQLAlchemy is extension.VersionedSQLAlchemy
    assert chrononaut.set_etag is http.set_etag
    assert "VersionedSQLAlchemy" in chrononaut.__all__


def test_an_unknown_attribute_of_chrononaut_is_an_attribute_error():
    import chrononaut

    with pytest.raises(AttributeError, match="NoSuchThing"):
        chrononaut.NoSuchThing  # noqa: B018
