"""A bulk statement writes exactly the rows it copied to history, whatever commits meanwhile.

A bulk ``update()`` or ``delete()`` runs as two statements: one copies the
matched rows to history (locking them), the second changes them. Here another
connection commits between the two, deterministically: an engine listener runs
its transaction just before the second statement is sent.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from chrononaut import Versioned

from . import procs_bulk


@pytest.fixture
def Item(Base, engine, session):
    class Item(Base, Versioned):
        __tablename__ = "item"
        id: Mapped[int] = mapped_column(primary_key=True)
        colour: Mapped[str]

    Base.metadata.create_all(engine)
    session.add_all([Item(id=1, colour="blue"), Item(id=2, colour="blue")])
    session.add(Item(id=3, colour="green"))
    session.commit()
    return Item


def commit_before(engine: sa.Engine, prefix: str, sql: str) -> Callable[[], bool]:
    """Run ``sql`` on another connection, committed, just before a statement starting
    with ``prefix`` is sent; returns a function telling whether it ran."""
    ran: list[bool] = []

    def interleave(conn, cursor, statement, parameters, context, executemany):
        if ran or not statement.startswith(prefix):
            return
        ran.append(True)
        with engine.begin() as other:
            other.exec_driver_sql(sql)

    sa.event.listen(engine, "before_cursor_execute", interleave)
    return lambda: bool(ran)


def rows(session, model) -> list[tuple[int, int, str]]:
    table = model.__table__
    stmt = sa.select(table.c.id, table.c.version, table.c.colour).order_by(table.c.id)
    return [tuple(row) for row in session.execute(stmt)]


def history(session, model) -> list[tuple[int, int, str]]:
    table = model.__history_mapper__.local_table
    stmt = sa.select(table.c.id, table.c.version, table.c.colour).order_by(table.c.id)
    return [tuple(row) for row in session.execute(stmt)]


MEANWHILE = (
    "INSERT INTO item (id, colour, version) VALUES (4, 'blue', 0); "
    "UPDATE item SET colour = 'blue' WHERE id = 3"
)


def test_bulk_update_leaves_rows_that_started_matching_after_the_copy(engine, session, Item):
    ran = commit_before(engine, "UPDATE item SET", MEANWHILE)
    result = session.execute(sa.update(Item).where(Item.colour == "blue").values(colour="red"))
    session.commit()
    assert ran()
    assert result.rowcount == 2
    assert rows(session, Item) == [(1, 1, "red"), (2, 1, "red"), (3, 0, "blue"), (4, 0, "blue")]
    assert history(session, Item) == [(1, 0, "blue"), (2, 0, "blue")]


def test_bulk_delete_leaves_rows_that_started_matching_after_the_copy(engine, session, Item):
    ran = commit_before(engine, "DELETE FROM item", MEANWHILE)
    result = session.execute(sa.delete(Item).where(Item.colour == "blue"))
    session.commit()
    assert ran()
    assert result.rowcount == 2
    assert rows(session, Item) == [(3, 0, "blue"), (4, 0, "blue")]
    assert history(session, Item) == [(1, 0, "blue"), (2, 0, "blue")]


def _waits_for_a_lock(engine, pid):
    with engine.connect() as connection:
        return connection.execute(
            sa.text("SELECT EXISTS (SELECT 1 FROM pg_locks WHERE pid = :p AND NOT granted)"),
            {"p": pid},
        ).scalar()


def test_a_bulk_statement_waits_for_an_uncommitted_write_and_copies_what_it_wrote(
    engine, session_factory, clean_database
):
    # A bulk statement locks the rows it matches before copying them to history,
    # so it copies the state an uncommitted write (another process) leaves, never
    # the state that write replaced.
    procs_bulk.Base.metadata.create_all(engine)
    Crate = procs_bulk.Crate
    with session_factory() as writer:
        writer.add(Crate(id=1, colour="blue", weight=10))
        writer.commit()
        writer.get(Crate, 1).weight = 20
        writer.flush()  # uncommitted: history row 0 holds weight 10
        report = procs_bulk.CTX.Queue()
        child = procs_bulk.CTX.Process(
            target=procs_bulk.bulk_update, args=(clean_database, report), daemon=True
        )
        child.start()
        try:
            kind, pid = report.get(timeout=procs_bulk.WAIT)
            assert kind == "pid"
            deadline = time.monotonic() + procs_bulk.WAIT
            while not _waits_for_a_lock(engine, pid):
                assert time.monotonic() < deadline, "the bulk statement never waited"
                time.sleep(0.02)
            writer.commit()
            assert report.get(timeout=procs_bulk.WAIT) == ("done", 1)
        finally:
            child.join(procs_bulk.WAIT)
            if child.is_alive():
                child.terminate()
    history = Crate.__history_mapper__.local_table
    with engine.connect() as connection:
        rows = connection.execute(
            sa.select(history.c.version, history.c.weight).order_by(history.c.version)
        ).all()
        current = connection.execute(sa.select(Crate.weight, Crate.version)).one()
    assert [tuple(r) for r in rows] == [(0, 10), (1, 20)]
    assert tuple(current) == (21, 2)
