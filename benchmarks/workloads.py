"""The write workloads W1, W2, W3 and W5, identical for every variant.

Each function runs one repetition on one variant and returns the seconds
spent in the measured part. Every variant does the same work the same way:
load through its Session, modify, commit.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone

import sqlalchemy as sa

from .variants import Variant


def _now() -> datetime:
    return datetime.now(timezone.utc)


def one_row_updates(variant: Variant, ops: int, first_id: int = 1) -> float:
    """W1: ``ops`` times, load one row by primary key, change it, commit."""
    item_cls = variant.Item
    with variant.Session() as session:
        start = time.perf_counter()
        for row_id in range(first_id, first_id + ops):
            item = session.get(item_cls, row_id)
            item.counter += 1
            item.updated = _now()
            session.commit()
        return time.perf_counter() - start


def batch_updates(variant: Variant, batches: int, rows: int = 1000) -> float:
    """W2: load ``rows`` rows, then change every one and commit them at once.

    Measured: the changes and the commit (the load is the same for all variants
    and is not part of "updating loaded rows").
    """
    item_cls = variant.Item
    elapsed = 0.0
    for _ in range(batches):
        with variant.Session() as session:
            query = sa.select(item_cls).where(item_cls.id <= rows).order_by(item_cls.id)
            items = session.scalars(query).all()
            start = time.perf_counter()
            now = _now()
            for item in items:
                item.counter += 1
                item.updated = now
            session.commit()
            elapsed += time.perf_counter() - start
    return elapsed


def batch_inserts(variant: Variant, batches: int, rows: int = 1000) -> float:
    """W3: create ``rows`` new rows and commit them at once."""
    item_cls = variant.Item
    elapsed = 0.0
    for _ in range(batches):
        with variant.Session() as session:
            start = time.perf_counter()
            now = _now()
            session.add_all(
                item_cls(title=f"new {n}", body="inserted body text", counter=0, updated=now)
                for n in range(rows)
            )
            session.commit()
            elapsed += time.perf_counter() - start
    return elapsed


def locked_updates(variant: Variant, ops: int, first_id: int = 1) -> float:
    """W5 (chrononaut): ``ops`` times, load one row, ``with item.lock():`` change it."""
    item_cls = variant.Item
    with variant.Session() as session:
        start = time.perf_counter()
        for row_id in range(first_id, first_id + ops):
            item = session.get(item_cls, row_id)
            with item.lock():
                item.counter += 1
                item.updated = _now()
        return time.perf_counter() - start


def for_update_updates(variant: Variant, ops: int, first_id: int = 1) -> float:
    """W5 reference: ``ops`` times, load one row ``FOR UPDATE``, change it, commit."""
    item_cls = variant.Item
    with variant.Session() as session:
        start = time.perf_counter()
        for row_id in range(first_id, first_id + ops):
            item = session.get(item_cls, row_id, with_for_update=True)
            item.counter += 1
            item.updated = _now()
            session.commit()
        return time.perf_counter() - start
