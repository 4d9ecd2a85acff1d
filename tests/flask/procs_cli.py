"""A child process holding ``lock()`` on a record, for the CLI and error-handler tests.

Started with the "spawn" context, so what it runs lives here at module level;
the child builds its own engine from the URL it is given and names its
connection ``APPLICATION`` so ``flask chrononaut locks`` can show it.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, sessionmaker

import chrononaut
from chrononaut import Versioned

CTX = multiprocessing.get_context("spawn")
#: Longest the child waits for the parent, and the parent for the child.
WAIT = 15.0
#: ``application_name`` of the child's database connection.
APPLICATION = "chrononaut-test-holder"


class Base(DeclarativeBase):
    pass


class HeldDocument(Base, Versioned):
    """Plain-SQLAlchemy twin of the Flask tests' ``Document`` (same table, same lock key)."""

    __tablename__ = "flask_document"
    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(sa.String(80))
    body: Mapped[str | None] = mapped_column(sa.Text)
    secret: Mapped[str | None] = mapped_column(sa.Text)


def hold_lock(url: str, doc_id: int, locked: Any, release: Any, report: Any) -> None:
    """``lock()`` the document, report this backend's pid, then wait for ``release``."""
    engine = sa.create_engine(
        url, poolclass=sa.pool.NullPool, connect_args={"application_name": APPLICATION}
    )
    factory = sessionmaker(engine)
    chrononaut.listen(factory)
    try:
        with chrononaut.acting_as("holder"), factory() as session:
            document = session.get(HeldDocument, doc_id)
            with document.lock():
                report.put(session.execute(sa.text("SELECT pg_backend_pid()")).scalar())
                locked.set()
                if not release.wait(WAIT):
                    raise TimeoutError("the parent never released the lock")
    finally:
        engine.dispose()


@contextmanager
def lock_holder(url: str, doc_id: int) -> Iterator[int]:
    """Run :func:`hold_lock` in a spawned process; yield its backend pid once it holds the lock.

    Leaving the block releases the lock and reaps the child (terminating it if stuck).
    """
    locked, release, report = CTX.Event(), CTX.Event(), CTX.Queue()
    process = CTX.Process(target=hold_lock, args=(url, doc_id, locked, release, report))
    process.start()
    try:
        if not locked.wait(WAIT):
            raise TimeoutError("the child never took the lock")
        yield report.get(timeout=WAIT)
    finally:
        release.set()
        process.join(WAIT)
        if process.is_alive():
            process.terminate()
            process.join(5)
    if process.exitcode != 0:
        raise AssertionError(f"the lock holder exited with {process.exitcode}")
