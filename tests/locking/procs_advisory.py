"""Models, child-process workers and helpers for the ``lock()`` tests.

Everything a spawned child runs lives here at module level so ``spawn`` can
import it. Children build their own engine and session from the URL they are
given and report plain dicts through a Queue (never exception objects).
"""

from __future__ import annotations

import multiprocessing
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, sessionmaker

import chrononaut
from chrononaut import Versioned
from chrononaut.locking import keys

CTX = multiprocessing.get_context("spawn")
#: Upper bound for any single wait on a child, so a broken test fails instead of hanging.
WAIT = 20.0


class Base(DeclarativeBase):
    pass


class Counter(Base, Versioned):
    __tablename__ = "adv_counter"
    id: Mapped[int] = mapped_column(primary_key=True)
    value: Mapped[int] = mapped_column(default=0)


class Shelf(Base, Versioned):
    """Composite primary key of a string and an integer."""

    __tablename__ = "adv_shelf"
    region: Mapped[str] = mapped_column(sa.String(8), primary_key=True)
    number: Mapped[int] = mapped_column(primary_key=True)
    label: Mapped[str | None]


class Ticket(Base, Versioned):
    """UUID primary key."""

    __tablename__ = "adv_ticket"
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    title: Mapped[str | None]


class Tag(Base, Versioned):
    """String primary key."""

    __tablename__ = "adv_tag"
    name: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    note: Mapped[str | None]


MODELS: dict[str, type[Any]] = {m.__name__: m for m in (Counter, Shelf, Ticket, Tag)}


# --- helpers shared by the test modules and the children -----------------------


def make_factory(url: str) -> sessionmaker[Any]:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    factory = sessionmaker(engine)
    chrononaut.listen(factory)
    return factory


def key_of(obj: Any) -> int:
    return keys.advisory_key(keys.table_name(type(obj)), keys.identity_of(obj))


def lock_rows(bind: sa.Engine | sa.Connection, key: int) -> list[tuple[int, str, bool]]:
    """``(pid, mode, granted)`` of every pg_locks row on the advisory key ``key``."""
    classid, objid = keys.split_key(key)
    sql = sa.text(
        "SELECT pid, mode, granted FROM pg_locks WHERE locktype = 'advisory' "
        "AND classid::bigint = :c AND objid::bigint = :o AND objsubid = 1 "
        "AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
        "ORDER BY pid"
    )
    if isinstance(bind, sa.Engine):
        with bind.connect() as connection:
            return [tuple(r) for r in connection.execute(sql, {"c": classid, "o": objid})]
    return [tuple(r) for r in bind.execute(sql, {"c": classid, "o": objid})]


def backend_pid(session: Any) -> int:
    return session.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()


def wait_until(predicate: Callable[[], Any], what: str, timeout: float = WAIT) -> Any:
    """Poll ``predicate`` (a database state) until it is truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def history_versions(bind: sa.Engine, model: type[Any]) -> list[int]:
    table = model.__history_mapper__.local_table
    with bind.connect() as connection:
        return list(
            connection.execute(sa.select(table.c.version).order_by(table.c.version)).scalars()
        )


@contextmanager
def children(*specs: tuple[Callable[..., None], tuple[Any, ...]]) -> Iterator[list[Any]]:
    """Start one spawned process per ``(target, args)``; always join or terminate them."""
    processes = [CTX.Process(target=target, args=args, daemon=True) for target, args in specs]
    try:
        for process in processes:
            process.start()
        yield processes
        for process in processes:
            process.join(WAIT)
            assert process.exitcode == 0, f"{process.name} exit code {process.exitcode}"
    finally:
        for process in processes:
            if process.is_alive():
                process.terminate()
                process.join(2)


def error_report(error: BaseException) -> dict[str, Any]:
    return {
        "event": "error",
        "type": type(error).__name__,
        "is_record_locked": isinstance(error, chrononaut.RecordLockedError),
        "record": getattr(error, "record", None),
        "owner": getattr(error, "owner", None),
        "expires_at": getattr(error, "expires_at", None),
        "message": str(error),
    }


# --- workers (run in spawned children) ----------------------------------------


def compute_keys(cases: list[tuple[str, tuple[Any, ...]]], result: Any) -> None:
    result.put([keys.advisory_key(table, identity) for table, identity in cases])


def hold(
    url: str,
    model: str,
    pk: Any,
    shared: bool,
    new_value: int | None,
    acquired: Any,
    release: Any,
    result: Any,
) -> None:
    """Hold ``lock()`` on a record (optionally after flushing a change) until ``release``."""
    factory = make_factory(url)
    with factory() as session:
        obj = session.get(MODELS[model], pk)
        try:
            with obj.lock(shared=shared):
                if new_value is not None:
                    obj.value = new_value
                    session.flush()
                result.put({"event": "holding", "pid": backend_pid(session)})
                acquired.set()
                release.wait(WAIT)
            result.put({"event": "committed"})
        except Exception as error:  # reported to the test, which asserts on it
            result.put(error_report(error))


def try_lock(
    url: str,
    model: str,
    pk: Any,
    nowait: bool,
    timeout: float | None,
    shared: bool,
    result: Any,
) -> None:
    """Ask for ``lock()`` once; report the pid, then what happened and what was seen."""
    factory = make_factory(url)
    with factory() as session:
        obj = session.get(MODELS[model], pk)
        result.put({"event": "asking", "pid": backend_pid(session)})
        started = time.monotonic()
        try:
            with obj.lock(nowait=nowait, timeout=timeout, shared=shared):
                seen = getattr(obj, "value", None)
                result.put(
                    {"event": "acquired", "seen": seen, "elapsed": time.monotonic() - started}
                )
        except Exception as error:
            result.put(error_report(error))


def increment(url: str, pk: int, times: int, barrier: Any, result: Any) -> None:
    """Read-modify-write ``Counter.value`` ``times`` times, each inside ``lock()``."""
    factory = make_factory(url)
    barrier.wait(WAIT)
    with factory() as session:
        counter = session.get(Counter, pk)
        for _ in range(times):
            with counter.lock():
                counter.value += 1
    result.put({"event": "done"})


def lock_pair_many(
    url: str, pks: tuple[int, int], iterations: int, barrier: Any, result: Any
) -> None:
    """``chrononaut.lock(a, b)`` ``iterations`` times, in the argument order given."""
    factory = make_factory(url)
    errors: list[dict[str, Any]] = []
    barrier.wait(WAIT)
    with factory() as session:
        first, second = (session.get(Counter, pk) for pk in pks)
        for _ in range(iterations):
            try:
                with chrononaut.lock(first, second):
                    first.value += 1
                    second.value += 1
            except Exception as error:
                errors.append(error_report(error))
    result.put({"event": "done", "errors": errors})


def nested_opposite(url: str, outer_pk: int, inner_pk: int, barrier: Any, result: Any) -> None:
    """Lock ``outer_pk``, meet the other child, then lock ``inner_pk`` inside."""
    factory = make_factory(url)
    with factory() as session:
        outer = session.get(Counter, outer_pk)
        inner = session.get(Counter, inner_pk)
        try:
            with outer.lock():
                barrier.wait(WAIT)
                with inner.lock():
                    inner.value += 1
            result.put({"event": "committed", "outer": outer_pk})
        except Exception as error:
            result.put({**error_report(error), "outer": outer_pk})


def lock_in_argument_order(url: str, pks: tuple[int, ...], result: Any) -> None:
    """``chrononaut.lock(*records)`` with the records in the order of ``pks``."""
    factory = make_factory(url)
    with factory() as session:
        records = [session.get(Counter, pk) for pk in pks]
        result.put({"event": "asking", "pid": backend_pid(session)})
        try:
            with chrononaut.lock(*records):
                result.put({"event": "acquired"})
        except Exception as error:
            result.put(error_report(error))
