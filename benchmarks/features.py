"""W9: what the features added since the first benchmark cost, each on its own line.

Each line compares chrononaut with the feature against chrononaut without it,
paired per repetition like every workload; the ratio is with/without. The
database guard has its own workload (W8, whose first line is this measure for
the guard).

- ``W9 creation events``: W3's 1,000 inserts in one commit. Without: the same
  variant with the flush's creation-event INSERT skipped (the harness replaces
  ``FlushCreations.write`` for the duration of that entry's calls; the library
  has no switch for it).
- ``W9 changesets``: W1's one-row update + commit. Without: a chrononaut table
  whose history table has no ``transaction_id`` default and no index on it
  (dropped after creation), so each history row carries no changeset id.
- ``W9 collection bumps``: load a record with 10 children, append a new child
  to its one-to-many collection, commit. With: the collection is tracked (the
  parent's version is bumped and a history row names the added child).
  Without: the relationship is listed in ``__chrononaut_untracked__``, so only
  the child's INSERT is written.
"""

from __future__ import annotations

import time
from functools import partial
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship, sessionmaker

from . import schema, workloads
from .measure import Entry, measure
from .variants import Variant, _engine, _model

WITH = "with"
WITHOUT = "without"
CHILDREN = 10


def _chrononaut(url: str, table: str, label: str) -> Variant:
    import chrononaut

    class Base(DeclarativeBase):
        pass

    item = _model(Base, f"{table.title().replace('_', '')}Item", table, chrononaut.Versioned)
    engine = _engine(url)
    factory = sessionmaker(engine)
    chrononaut.listen(factory)
    return Variant(table, label, engine, factory, item, Base.metadata)


def without_creation_events(fn: Any) -> Any:
    """``fn`` run with the flush's creation-event INSERT skipped."""
    from chrononaut.versioning import creations

    def run(size: int) -> float:
        original = creations.FlushCreations.write
        creations.FlushCreations.write = lambda self, session, changed: None  # type: ignore[method-assign]
        try:
            return fn(size)
        finally:
            creations.FlushCreations.write = original  # type: ignore[method-assign]

    return run


def _drop_changesets(variant: Variant) -> None:
    history = f"{variant.table}_history"
    with variant.engine.begin() as connection:
        connection.exec_driver_sql(f"DROP INDEX ix_{history}_transaction_id")
        connection.exec_driver_sql(
            f"ALTER TABLE {history} ALTER COLUMN transaction_id DROP DEFAULT"
        )


def _family(url: str, tracked: bool) -> Variant:
    """A versioned parent with a one-to-many collection of versioned children."""
    import chrononaut

    class Base(DeclarativeBase):
        pass

    name = "bench_bumps" if tracked else "bench_nobumps"

    class Parent(Base, chrononaut.Versioned):
        __tablename__ = f"{name}_parent"
        __chrononaut_untracked__ = [] if tracked else ["children"]
        id: Mapped[int] = mapped_column(primary_key=True)
        title: Mapped[str] = mapped_column(sa.String(80))
        children: Mapped[list[Child]] = relationship(back_populates="parent")

    class Child(Base, chrononaut.Versioned):
        __tablename__ = f"{name}_child"
        id: Mapped[int] = mapped_column(primary_key=True)
        parent_id: Mapped[int] = mapped_column(sa.ForeignKey(Parent.id))
        title: Mapped[str] = mapped_column(sa.String(80))
        parent: Mapped[Parent] = relationship(back_populates="children")

    engine = _engine(url)
    factory = sessionmaker(engine)
    chrononaut.listen(factory)
    label = "collection tracked" if tracked else "collection untracked"
    return Variant(WITH if tracked else WITHOUT, label, engine, factory, Parent, Base.metadata)


def _seed_family(variant: Variant, parents: int) -> None:
    metadata = variant.metadata
    assert metadata is not None
    metadata.drop_all(variant.engine)
    metadata.create_all(variant.engine)
    parent = variant.Item.__table__
    child = variant.Item.children.property.mapper.local_table
    with variant.engine.begin() as connection:
        connection.execute(parent.insert(), [{"id": i, "title": f"p{i}"} for i in range(parents)])
        connection.execute(
            child.insert(),
            [
                {"parent_id": i, "title": f"c{i}.{n}"}
                for i in range(parents)
                for n in range(CHILDREN)
            ],
        )


def appends(variant: Variant, parents: int, ops: int) -> float:
    """``ops`` times: load a parent and its children, append a new child, commit."""
    parent_cls = variant.Item
    child_cls = parent_cls.children.property.mapper.class_
    with variant.Session() as session:
        start = time.perf_counter()
        for n in range(ops):
            parent = session.get(parent_cls, n % parents)
            parent.children.append(child_cls(title=f"new {n}"))
            session.commit()
        return time.perf_counter() - start


def w9(run: Any) -> None:
    made: list[Variant] = []
    try:
        _creation_events(run, made)
        _changesets(run, made)
        _collection_bumps(run, made)
    finally:
        for variant in made:
            variant.engine.dispose()


def _record(run: Any, found: Any) -> None:
    found.baseline = WITHOUT  # ratios are with/without
    run.record(found)


def _creation_events(run: Any, made: list[Variant]) -> None:
    sizes = run.sizes
    variant = _chrononaut(run.url, "bench_events", "chrononaut")
    made.append(variant)
    schema.reset([variant], sizes.seed_rows)
    inserts = partial(workloads.batch_inserts, variant, rows=sizes.batch_rows)
    entries = [
        Entry(WITH, "with creation events", inserts),
        Entry(WITHOUT, "without creation events", without_creation_events(inserts)),
    ]
    batches = sizes.w3_batches
    title = f"{sizes.batch_rows:,} inserts in one commit (W3), with/without creation events"
    found = measure("W9 creation events", title, entries, batches, 1, run.reps, batches, "batch")
    _record(run, found)


def _changesets(run: Any, made: list[Variant]) -> None:
    sizes = run.sizes
    with_ = _chrononaut(run.url, "bench_changesets", "with changeset ids")
    without = _chrononaut(run.url, "bench_nochangesets", "without changeset ids")
    with_.name, without.name = WITH, WITHOUT
    made += [with_, without]
    schema.reset([with_, without], sizes.seed_rows)
    _drop_changesets(without)
    ops = sizes.w1_ops
    entries = [
        Entry(v.name, v.label, partial(workloads.one_row_updates, v)) for v in (with_, without)
    ]
    title = "one-row update + commit (W1), history rows with/without transaction_id"
    _record(run, measure("W9 changesets", title, entries, ops, 10, run.reps, ops, "op"))
    with without.engine.connect() as connection:
        stamped = connection.exec_driver_sql(
            "SELECT count(*) FROM bench_nochangesets_history WHERE transaction_id IS NOT NULL"
        ).scalar()
    if stamped:
        raise AssertionError(f"W9: {stamped} history rows of the 'without' table have an id")


def _collection_bumps(run: Any, made: list[Variant]) -> None:
    sizes = run.sizes
    parents = 100
    variants = [_family(run.url, tracked=True), _family(run.url, tracked=False)]
    made += variants
    for variant in variants:
        _seed_family(variant, parents)
    ops = sizes.w5_ops
    entries = [Entry(v.name, v.label, partial(appends, v, parents)) for v in variants]
    title = f"load a record with {CHILDREN} children, append one, commit; tracked/untracked"
    _record(run, measure("W9 collection bumps", title, entries, ops, 10, run.reps, ops, "op"))
    with variants[0].engine.connect() as connection:
        bumped = connection.exec_driver_sql(
            "SELECT count(*) FROM bench_bumps_parent_history WHERE change_info ? 'relationships'"
        ).scalar()
    with variants[1].engine.connect() as connection:
        untracked = connection.exec_driver_sql(
            "SELECT count(*) FROM bench_nobumps_parent_history"
        ).scalar()
    if not bumped or untracked:
        raise AssertionError(
            f"W9: {bumped} tracked bumps, {untracked} untracked parent history rows"
        )
    run.out(f"W9  collection bumps: {bumped:,} parent history rows naming the added child")
