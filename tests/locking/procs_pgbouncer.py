"""Worker for the PgBouncer test: runs in its own process (spawn)."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, sessionmaker

import chrononaut


class Base(DeclarativeBase):
    pass


class Ticket(Base, chrononaut.Versioned):
    __tablename__ = "ticket"
    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str]


def hold_lock(url: str, locked, release) -> None:
    """Lock ticket 1 through ``url``, signal ``locked``, edit, and commit on ``release``."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    factory = sessionmaker(engine)
    chrononaut.listen(factory)
    with factory() as session:
        ticket = session.get(Ticket, 1)
        with ticket.lock():
            locked.set()
            release.wait(30)
            ticket.title = "edited by the holder"
    engine.dispose()
