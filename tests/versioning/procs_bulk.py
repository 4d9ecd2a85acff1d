"""Model and child-process worker for the bulk-statement race tests (spawn context)."""

from __future__ import annotations

import multiprocessing
import traceback
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, sessionmaker

import chrononaut
from chrononaut import Versioned

CTX = multiprocessing.get_context("spawn")
WAIT = 20.0


class Base(DeclarativeBase):
    pass


class Crate(Base, Versioned):
    __tablename__ = "bulk_crate"
    id: Mapped[int] = mapped_column(primary_key=True)
    colour: Mapped[str]
    weight: Mapped[int]


def bulk_update(url: str, report: Any) -> None:
    """Report the backend pid, then ``UPDATE crate SET weight = weight + 1`` for blue crates."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    factory = sessionmaker(engine)
    chrononaut.listen(factory)
    try:
        with factory() as session:
            report.put(("pid", session.execute(sa.text("SELECT pg_backend_pid()")).scalar()))
            stmt = sa.update(Crate).where(Crate.colour == "blue").values(weight=Crate.weight + 1)
            rowcount = session.execute(stmt).rowcount
            session.commit()
            report.put(("done", rowcount))
    except Exception:
        report.put(("error", traceback.format_exc()))
    finally:
        engine.dispose()
