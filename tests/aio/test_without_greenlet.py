"""The sync core never imports SQLAlchemy's asyncio extension, which needs greenlet
(SQLAlchemy 2.1 no longer installs it): without greenlet, chrononaut imports and
versions Sessions as before."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import sys
sys.modules["greenlet"] = None  # as if greenlet were not installed
import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, sessionmaker
import chrononaut

class Base(DeclarativeBase):
    pass

class Note(Base, chrononaut.Versioned):
    __tablename__ = "no_greenlet_note"
    id: Mapped[int] = mapped_column(primary_key=True)
    text: Mapped[str]

engine = sa.create_engine(sys.argv[1], poolclass=sa.pool.NullPool)
Base.metadata.create_all(engine)
Session = sessionmaker(engine)
chrononaut.listen(Session)
with Session() as session:
    note = Note(text="a")
    session.add(note)
    session.commit()
    note.text = "b"
    session.commit()
    print([v.text for v in note.versions()], "sqlalchemy.ext.asyncio" in sys.modules)
"""


def test_sync_core_imports_and_versions_without_greenlet(clean_database):
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, clean_database],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['a'] False"
