"""A model whose MetaData puts every table in the ``app`` schema, and a child locking it.

Spawned children import this module, so the model and the worker live here.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from chrononaut import Versioned

from .procs_advisory import WAIT, error_report, make_factory

SCHEMA = "app"


class Base(DeclarativeBase):
    metadata = sa.MetaData(schema=SCHEMA)


class Memo(Base, Versioned):
    __tablename__ = "schema_memo"
    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str | None]


def hold_memo_lock(url: str, pk: int, acquired: Any, release: Any, result: Any) -> None:
    """``lock()`` the memo and hold it until ``release``."""
    factory = make_factory(url)
    with factory() as session:
        memo = session.get(Memo, pk)
        try:
            with memo.lock():
                acquired.set()
                release.wait(WAIT)
            result.put({"event": "committed"})
        except Exception as error:  # reported to the test, which asserts on it
            result.put(error_report(error))
