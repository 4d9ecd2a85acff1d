"""``chrononaut.prune()``: delete old history rows, in batches.

History grows with every change; :func:`prune` deletes the rows older than a
cut-off and/or beyond the newest ``keep_last`` versions of each record (a row
goes when it meets every condition given), and never a deletion row (a deleted
record's last state, which :func:`~chrononaut.restore` needs) unless
``include_deleted=True``.

It walks each history table in primary key order, ``batch_size`` rows at a
time (widened to the end of the last record, so that ``keep_last`` ranks a
record's versions together), and deletes each batch in its own short
transaction on its own connection: no transaction ever holds the locks of more
than one batch, and concurrent writers wait for at most one. It never touches
the session's transaction, nor the records: no version changes, so record
locks and leases do not apply. A joined subclass's history rows go with their
base rows (``ON DELETE CASCADE``); the counts are versions, one per base row.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from .arguments import session_of, versioned_class, whole_number
from .history import _model_of_history, versioning_info
from .queries import as_utc
from .recorder import utcnow

CALL = "prune()"
#: Rows one batch reads (and at most deletes) by default.
DEFAULT_BATCH_SIZE = 10_000
MAX_BATCH_SIZE = 1_000_000


def _cutoff(older_than: Any) -> datetime | None:
    if older_than is None:
        return None
    if isinstance(older_than, timedelta):
        if older_than < timedelta(0):
            raise ValueError(f"{CALL}: older_than must not be negative, got {older_than!r}.")
        return utcnow() - older_than
    if isinstance(older_than, datetime):
        return as_utc(older_than, f"{CALL} older_than")
    raise TypeError(
        f"{CALL}: older_than must be a timedelta (an age) or a datetime (a cut-off; naive "
        f"ones are taken as UTC), got {older_than!r}."
    )


def _flag(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{CALL}: {name} must be True or False, got {value!r}.")
    return value


def _models(models: Any) -> list[type[Any]]:
    if models is None:
        return _mapped_bases()
    if isinstance(models, type | str) or not isinstance(models, Iterable):
        raise TypeError(f"{CALL}: models must be a list of Versioned classes, got {models!r}.")
    found = [versioned_class(m, CALL) for m in models]
    if not found:
        raise ValueError(f"{CALL}: models is empty; pass None to prune every versioned model.")
    for cls in found:
        for other in found:
            if other is not cls and issubclass(cls, other):
                raise ValueError(
                    f"{CALL}: models lists {cls.__name__} and {other.__name__}, which already "
                    f"covers it; list {other.__name__} alone."
                )
    return found


def _mapped_bases() -> list[type[Any]]:
    """Every hierarchy base whose history table some live mapped class owns, newest last."""
    by_name: dict[str, type[Any]] = {}
    for table, cls in list(_model_of_history.items()):
        mapper = sa.inspect(cls, raiseerr=False)  # None once its registry was disposed
        if mapper is not None and mapper.inherits is None:
            by_name[table.fullname] = cls
    return list(by_name.values())


def _discriminator_filter(model: type[Any], history: sa.Table) -> Any:
    """For a subclass: rows of it and its subclasses only (by discriminator)."""
    mapper = sa.inspect(model)
    if mapper.inherits is None:
        return sa.true()
    on = mapper.polymorphic_on
    if on is None or on.key not in history.c:
        raise ValueError(
            f"{CALL}: {model.__name__} is a subclass without a discriminator column; "
            f"prune its base {mapper.base_mapper.class_.__name__} instead."
        )
    values = [m.polymorphic_identity for m in mapper.self_and_descendants]
    return history.c[on.key].in_(values)


class _Pruner:
    def __init__(
        self,
        model: type[Any],
        cutoff: datetime | None,
        keep_last: int | None,
        include_deleted: bool,
        batch_size: int,
    ) -> None:
        base = sa.inspect(model).base_mapper.class_
        info = versioning_info(base)
        self.history = history = info.history_table
        history_mapper = info.history_mapper
        self.pk = [history_mapper.get_property(k).columns[0] for k in info.pk_keys]
        self.version = history.c.version
        self.where = _discriminator_filter(model, history)
        self.cutoff = cutoff
        self.keep_last = keep_last
        self.include_deleted = include_deleted
        self.batch_size = batch_size

    def _key(self) -> Any:
        return self.pk[0] if len(self.pk) == 1 else sa.tuple_(*self.pk)

    def _after(self, cursor: tuple[Any, ...] | None) -> Any:
        if cursor is None:
            return self.where
        bound = cursor[0] if len(cursor) == 1 else sa.tuple_(*cursor)
        return sa.and_(self.where, self._key() > bound)

    def bound(self, connection: sa.Connection, cursor: tuple[Any, ...] | None) -> Any:
        """The key of the row ``batch_size`` rows on, or None past the end."""
        query = (
            sa.select(*self.pk)
            .where(self._after(cursor))
            .order_by(*self.pk, self.version)
            .offset(self.batch_size - 1)
            .limit(1)
        )
        row = connection.execute(query).first()
        return None if row is None else tuple(row)

    def doomed(self, cursor: tuple[Any, ...] | None, bound: tuple[Any, ...] | None) -> Any:
        """(key..., version) of the rows to delete among records in (cursor, bound]."""
        where = self._after(cursor)
        if bound is not None:
            upper = bound[0] if len(bound) == 1 else sa.tuple_(*bound)
            where = sa.and_(where, self._key() <= upper)
        rank = sa.func.row_number().over(partition_by=self.pk, order_by=self.version.desc())
        history = self.history
        ranked = (
            sa.select(*self.pk, self.version, history.c.changed, history.c.change_info)
            .add_columns(rank.label("chrononaut_rank"))
            .where(where)
            .subquery()
        )
        conditions = []
        if self.keep_last is not None:
            conditions.append(ranked.c.chrononaut_rank > self.keep_last)
        if self.cutoff is not None:
            conditions.append(ranked.c.changed < self.cutoff)
        if not self.include_deleted:
            conditions.append(sa.not_(ranked.c.change_info.contains({"deleted": True})))
        key_names = [c.name for c in self.pk] + [self.version.name]
        return sa.select(*(ranked.c[n] for n in key_names)).where(*conditions)

    def run_batch(
        self,
        connection: sa.Connection,
        cursor: tuple[Any, ...] | None,
        bound: tuple[Any, ...] | None,
        dry_run: bool,
    ) -> int:
        doomed = self.doomed(cursor, bound)
        if dry_run:
            count = sa.select(sa.func.count()).select_from(doomed.subquery())
            return int(connection.execute(count).scalar_one())
        target = sa.tuple_(*self.pk, self.version)
        result = connection.execute(self.history.delete().where(target.in_(doomed)))
        return result.rowcount


def prune(
    session: Any,
    models: Iterable[type[Any]] | None = None,
    *,
    older_than: timedelta | datetime | None = None,
    keep_last: int | None = None,
    include_deleted: bool = False,
    batch_size: int = DEFAULT_BATCH_SIZE,
    dry_run: bool = False,
) -> dict[type[Any], int]:
    """Delete history rows older than ``older_than`` and/or beyond ``keep_last`` per record.

    Returns the rows deleted per model (with ``dry_run=True``, the rows it
    would delete, deleting nothing)::

        chrononaut.prune(db.session, older_than=timedelta(days=365), keep_last=50)
        # {Document: 1204, Invoice: 0}
    """
    session = session_of(session, CALL)
    cutoff = _cutoff(older_than)
    if keep_last is not None:
        keep_last = whole_number(keep_last, f"{CALL} keep_last", 1)
    if cutoff is None and keep_last is None:
        raise ValueError(
            f"{CALL} needs older_than and/or keep_last; without either it would delete all "
            "history (use suppress_versioning(allow_deleting_history=True) for that)."
        )
    include_deleted = _flag(include_deleted, "include_deleted")
    dry_run = _flag(dry_run, "dry_run")
    batch_size = whole_number(batch_size, f"{CALL} batch_size", 1)
    if batch_size > MAX_BATCH_SIZE:
        raise ValueError(
            f"{CALL}: batch_size={batch_size!r} would lock that many rows at once; keep it "
            f"at most {MAX_BATCH_SIZE:,}."
        )
    counts: dict[type[Any], int] = {}
    for model in _models(models):
        pruner = _Pruner(model, cutoff, keep_last, include_deleted, batch_size)
        engine = session.get_bind(mapper=sa.inspect(model)).engine
        count = _prune_table(engine, pruner, dry_run)
        if count is not None:
            counts[model] = count
        elif models is not None:
            counts[model] = 0
    return counts


def _prune_table(engine: sa.Engine, pruner: _Pruner, dry_run: bool) -> int | None:
    """Rows pruned from ``pruner``'s history table; None if the table does not exist."""
    total = 0
    cursor = None
    with engine.connect() as connection:
        with connection.begin():
            found = sa.inspect(connection).has_table(pruner.history.name, pruner.history.schema)
        if not found:
            return None
        while True:
            with connection.begin():
                bound = pruner.bound(connection, cursor)
                total += pruner.run_batch(connection, cursor, bound, dry_run)
            if bound is None:
                return total
            cursor = bound
