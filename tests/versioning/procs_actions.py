"""Model and workers for a revert racing an edit (test_actions_processes.py).

Children are started with the "spawn" context by
:func:`tests.locking.procs_optimistic.run_workers`; each builds its own engine.
Rounds are lined up with a Barrier, never with sleeps: both workers load the
same version, meet at the barrier, then write.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, sessionmaker

import chrononaut
from chrononaut import ConflictError, Versioned, acting_as

from ..locking.procs_optimistic import CHILD_WAIT, _report


class Base(DeclarativeBase):
    pass


class RaceDoc(Base, Versioned):
    __tablename__ = "race_doc"
    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(sa.String(40))


def _factory(url: str) -> tuple[sa.Engine, sessionmaker[Any]]:
    engine = sa.create_engine(url, pool_size=1, max_overflow=1)
    factory = sessionmaker(engine)
    chrononaut.listen(factory)
    return engine, factory


def revert_or_edit(url: str, worker: str, rounds: int, locked: bool, barrier: Any, results: Any):
    """worker-0 reverts (to version 0, or 1 when already at 0's title), worker-1 edits.

    Without ``locked``: each round both load the same version, then write at
    once. With ``locked``: each writes inside ``with doc.lock():``, which waits
    for the other and reloads, so neither conflicts.
    """

    def body() -> dict[str, Any]:
        engine, factory = _factory(url)
        done, conflicts = [], []
        try:
            with factory() as session, acting_as(worker):
                for round_ in range(rounds):
                    session.expire_all()
                    doc = session.get(RaceDoc, 1)
                    loaded = doc.version
                    barrier.wait(CHILD_WAIT)
                    try:
                        if locked:
                            with doc.lock():
                                _write(doc, worker, round_)
                        else:
                            _write(doc, worker, round_)
                            session.commit()
                        done.append(loaded)
                    except ConflictError as conflict:
                        session.rollback()
                        conflicts.append((conflict.expected_version, conflict.current_version))
                    barrier.wait(CHILD_WAIT)
        finally:
            engine.dispose()
        return {"done": done, "conflicts": conflicts}

    _report(results, worker, body)


def _write(doc: RaceDoc, worker: str, round_: int) -> None:
    if worker == "worker-0":
        doc.revert_to(1 if doc.title == "original" else 0)
    else:
        doc.title = f"edit {round_}"


def insert_batches(url: str, worker: str, rounds: int, size: int, barrier: Any, results: Any):
    """Each round, with the other workers at once: insert ``size`` documents and commit.

    The documents' keys come from one sequence, so concurrent batches interleave
    and their creation events' key spans overlap. Reports the keys committed.
    """

    def body() -> dict[str, Any]:
        engine, factory = _factory(url)
        keys: list[int] = []
        try:
            with factory() as session, acting_as(worker):
                for round_ in range(rounds):
                    docs = [RaceDoc(title=f"{worker} {round_} {n}") for n in range(size)]
                    barrier.wait(CHILD_WAIT)
                    session.add_all(docs)
                    session.commit()
                    keys += [doc.id for doc in docs]
        finally:
            engine.dispose()
        return {"keys": keys}

    _report(results, worker, body)
