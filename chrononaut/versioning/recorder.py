"""Write history rows on flush, and for bulk UPDATE and DELETE statements.

``before_flush`` works out, for every changed versioned object, the row of
prior values and bumps its ``version``; ``after_flush`` inserts the rows, one
multi-row INSERT per history table, after the ORM's own UPDATEs and DELETEs
succeeded. A flush that fails writes nothing.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import NO_VALUE, Session
from sqlalchemy.orm.attributes import instance_state

from .. import context, flush_writes
from ..exceptions import ChrononautException
from ..flush_writes import GUARD_INFO_KEY, RecordWrite
from ..locking import optimistic
from ..settings import activate, deactivate, settings_for
from .change_info import ChangeInfoBuilder
from .creations import FlushCreations
from .history import HistoryBase, VersioningInfo, pk_keys_of, written_columns
from .names import CHANGE_INFO, CHANGED, VERSION
from .record_changes import RecordChanges

#: Key in ``Session.info`` of what the current flush will write.
PENDING_ROWS_KEY = "chrononaut_pending_history"


class _Plan:
    """What a flush writes: history rows, the versioned objects written, their versions."""

    def __init__(self) -> None:
        self.rows = _Rows()
        self.written: list[Any] = []
        self.expected: list[tuple[type[Any], tuple[Any, ...], int]] = []
        #: (change_info to complete, collections) once the flush has given keys to new members
        self.collections: list[tuple[dict[str, Any], dict[str, tuple[list[Any], list[Any]]]]] = []
        #: the new versioned records, whose creation events follow the flush's INSERTs
        self.created: FlushCreations | None = None
        self.now: datetime | None = None

    def write(self, obj: Any, state: Any, version: int) -> None:
        self.written.append(obj)
        self.expected.append((type(obj), tuple(state.identity), version))


def utcnow() -> datetime:
    """The time recorded in ``changed``: timezone-aware UTC, microsecond precision."""
    return datetime.now(timezone.utc)


class _Rows:
    """History rows of one flush, grouped by history table in dependency order."""

    def __init__(self) -> None:
        self.by_table: dict[sa.Table, list[dict[str, Any]]] = defaultdict(list)
        self.bind_mapper: dict[sa.Table, Any] = {}
        self.order: list[sa.Table] = []

    def add(self, info: VersioningInfo, mapper: Any, values: dict[str, Any]) -> None:
        for table, pairs in info.insert_columns.items():
            if table not in self.bind_mapper:
                self.bind_mapper[table] = mapper
                self.order.append(table)
            row = dict.fromkeys(_written_keys(table))
            for column_key, source in pairs:
                row[column_key] = values[source]
            self.by_table[table].append(row)

    def insert(self, session: Session, piggyback: tuple[Any, Any, Any] | None = None) -> list[Any]:
        """Insert the rows; run ``piggyback`` (mapper, query, params) in the same statement.

        The first row of the first table goes into one statement with the
        query, as ``WITH chrononaut_history AS (INSERT ...) <query>``; the rest
        are inserted in batches (SQLAlchemy's insertmanyvalues). Returns the
        query's rows.
        """
        found: list[Any] = []
        # Parents before children: a joined subclass's history row references
        # its parent's row.
        for table in sorted(self.order, key=_table_rank):
            rows, mapper = self.by_table[table], self.bind_mapper[table]
            connection = session.connection(bind_arguments={"mapper": mapper})
            if piggyback is not None and session.get_bind(mapper=mapper) is session.get_bind(
                mapper=piggyback[0]
            ):
                _, query, params = piggyback
                head, rows = rows[0], rows[1:]
                params = {**params, **{_PREFIX + key: value for key, value in head.items()}}
                found += connection.execute(_with_history(query, table), params).all()
                piggyback = None
            if rows:
                connection.execute(table.insert(), rows)
        if piggyback is not None:
            mapper, query, params = piggyback
            connection = session.connection(bind_arguments={"mapper": mapper})
            found += connection.execute(query, params).all()
        return found


_PREFIX = "chrononaut_h_"


@functools.lru_cache(maxsize=64)
def _with_history(query: Any, table: sa.Table) -> Any:
    """``WITH chrononaut_history AS (INSERT INTO table ...) query``, built (and compiled) once."""
    values = {c.key: sa.bindparam(_PREFIX + c.key, type_=c.type) for c in written_columns(table)}
    return query.add_cte(table.insert().values(values).cte("chrononaut_history"))


@functools.lru_cache(maxsize=256)
def _written_keys(table: sa.Table) -> tuple[str, ...]:
    return tuple(c.key for c in written_columns(table))


def _table_rank(table: sa.Table) -> int:
    rank, seen = 0, table
    while True:
        parents = [fk.column.table for fk in seen.foreign_keys if fk.column.table is not seen]
        if not parents:
            return rank
        rank, seen = rank + 1, parents[0]


def _is_versioned(obj: Any) -> bool:
    return getattr(type(obj), "__chrononaut__", None) is not None


def _identity_json(obj: Any) -> list[Any]:
    """``obj``'s primary key as a JSON list: ``[3]``, ``["eu", 7]``."""
    state = sa.inspect(obj)
    identity = state.identity
    if identity is None:
        identity = state.mapper.primary_key_from_instance(obj)
    return [
        v if v is None or isinstance(v, bool | int | float | str) else str(v) for v in identity
    ]


def _describe_collections(
    collections: dict[str, tuple[list[Any], list[Any]]],
) -> dict[str, dict[str, list[list[Any]]]]:
    return {
        key: {
            "added": [_identity_json(o) for o in added],
            "removed": [_identity_json(o) for o in removed],
        }
        for key, (added, removed) in sorted(collections.items())
    }


def _consume_pending(state: Any) -> None:
    state.info.pop(context.PENDING_INFO_KEY, None)
    state.info.pop(context.PENDING_TOP_INFO_KEY, None)


def _prior_values(obj: Any, state: Any, info: VersioningInfo) -> dict[str, Any]:
    committed = state.committed_state
    values = {}
    for key in info.policy.tracked:
        if key in committed and committed[key] is not NO_VALUE:
            values[key] = committed[key]
        elif key in state.dict:
            values[key] = state.dict[key]
        else:
            values[key] = getattr(obj, key)  # deferred or expired: load it
    return values


def _committed_version(obj: Any, state: Any) -> int:
    old = state.committed_state.get(VERSION, NO_VALUE)
    if old is NO_VALUE or old is None:
        old = state.dict.get(VERSION, NO_VALUE)
    if old is NO_VALUE:
        old = obj.version
    return old


class _FlushRecorder:
    def __init__(self, session: Session) -> None:
        self.session = session
        self.settings = settings_for(session)
        self.builder = ChangeInfoBuilder(self.settings)
        self.now = utcnow()
        self.plan = _Plan()
        self.plan.now = self.now
        self.rows = self.plan.rows

    def require_extra(self, obj: Any, state: Any) -> None:
        if self.settings.require_extra_change_info and not self.builder.has_extra(state):
            raise ChrononautException(
                f"{type(obj).__name__} {sa.inspect(obj).identity!r} was changed without extra "
                "change info, which CHRONONAUT_REQUIRE_EXTRA_CHANGE_INFO requires; wrap the "
                "change in rationale(...) or extra_change_info(...)."
            )

    def record_update(self, write: RecordWrite) -> None:
        obj = write.obj
        state = instance_state(obj)
        info = type(obj).__chrononaut__
        self.require_extra(obj, state)
        version = _committed_version(obj, state)
        self.plan.write(obj, state, version)
        values = _prior_values(obj, state, info)
        values[VERSION] = version
        values[CHANGED] = self.now
        values[CHANGE_INFO] = self.builder.build(obj, state, hidden_changed=sorted(write.hidden))
        if write.collections:
            self.plan.collections.append((values[CHANGE_INFO], write.collections))
        self.rows.add(info, state.mapper, values)
        _consume_pending(state)
        obj.version = version + 1

    def record_delete(self, obj: Any) -> None:
        state = instance_state(obj)
        info = type(obj).__chrononaut__
        self.require_extra(obj, state)
        values = _prior_values(obj, state, info)
        values[VERSION] = _committed_version(obj, state)
        self.plan.write(obj, state, values[VERSION])
        values[CHANGED] = self.now
        values[CHANGE_INFO] = self.builder.build(obj, state, deleted=True)
        self.rows.add(info, state.mapper, values)
        _consume_pending(state)

    def continue_numbering(self, new: list[Any], deletes: list[Any]) -> None:
        """Start a re-inserted primary key after its last history version.

        Only new records whose key is set before the flush can repeat one
        (database-generated keys never do): one query per class hierarchy. A
        record deleted in this same flush counts by its deletion row's version.
        """
        deleted: dict[tuple[type[Any], tuple[Any, ...]], int] = {}
        for obj in deletes:
            state = sa.inspect(obj)
            root = state.mapper.base_mapper.class_
            deleted[(root, tuple(state.identity))] = _committed_version(obj, state)
        by_root: dict[type[Any], list[tuple[tuple[Any, ...], Any]]] = defaultdict(list)
        classes: dict[type[Any], tuple[tuple[str, ...], type[Any]]] = {}
        for obj in new:  # per object only dict reads: a flush may insert thousands
            found = classes.get(type(obj))
            if found is None:
                mapper = instance_state(obj).mapper
                found = classes[type(obj)] = (_pk_keys(mapper), mapper.base_mapper.class_)
            values = obj.__dict__
            pk = tuple([values.get(key) for key in found[0]])
            if None not in pk:
                by_root[found[1]].append((pk, obj))
        for root, pairs in by_root.items():
            info = root.__chrononaut__
            hist = info.history_mapper
            pk_cols = [hist.get_property(k).columns[0] for k in info.pk_keys]
            version_col = hist.get_property(VERSION).columns[0]
            stmt = (
                sa.select(*pk_cols, sa.func.max(version_col))
                .where(sa.tuple_(*pk_cols).in_([pk for pk, _ in pairs]))
                .group_by(*pk_cols)
            )
            connection = self.session.connection(bind_arguments={"mapper": sa.inspect(root)})
            last = {tuple(row[:-1]): row[-1] for row in connection.execute(stmt)}
            for pk, obj in pairs:
                if (root, pk) in deleted:
                    last[pk] = max(last.get(pk, -1), deleted[(root, pk)])
                if pk in last:
                    obj.version = last[pk] + 1

    def record_unversioned_writes(self, writes: flush_writes.FlushWrites) -> None:
        """Under suppression: note the versioned records written, for the guard."""
        for obj in writes.guarded:
            state = sa.inspect(obj)
            self.plan.write(obj, state, _committed_version(obj, state))

    def stamp(self, obj: RecordChanges) -> None:
        obj.change_info = self.builder.build(obj if _is_versioned(obj) else None, sa.inspect(obj))
        obj.changed = self.now


#: :func:`.history.pk_keys_of`, cached: a flush asks once per new record's class.
_pk_keys = functools.lru_cache(maxsize=1024)(pk_keys_of)


def refuse_history_insert(name: str) -> None:
    """Raise for an insert into history (``name``: the history class, row or table)."""
    raise ChrononautException(
        f"Refusing to insert into {name}: history rows are written by chrononaut only, "
        "when the versioned record changes; change the record instead."
    )


def _check_history_writes(session: Session, writes: flush_writes.FlushWrites) -> None:
    for obj in writes.new:
        if isinstance(obj, HistoryBase):
            refuse_history_insert(repr(obj))
    for obj in writes.deleted:
        if isinstance(obj, HistoryBase) and not context.history_deletion_allowed():
            raise ChrononautException(
                f"Refusing to delete {obj!r}: history rows are kept; delete them only inside "
                "suppress_versioning(allow_deleting_history=True)."
            )
    for obj in writes.dirty:
        if isinstance(obj, HistoryBase) and session.is_modified(obj):
            raise ChrononautException(f"Refusing to modify {obj!r}: history rows are immutable.")


def before_flush(session: Session, flush_context: Any, instances: Any) -> None:
    """Compute history rows and bump versions for everything about to be flushed."""
    session.info.pop(PENDING_ROWS_KEY, None)
    writes = flush_writes.of_flush(session, flush_context)
    _check_history_writes(session, writes)
    recorder = _FlushRecorder(session)
    token = activate(recorder.settings)
    try:
        suppressed = context.versioning_suppressed()
        new = [o for o in writes.new if _is_versioned(o)]
        for obj in writes.new:
            if isinstance(obj, RecordChanges):
                recorder.stamp(obj)
        if new:  # suppressed too: a later versioned update must not repeat a version
            recorder.continue_numbering(new, writes.deletes)
        if new and not suppressed:
            recorder.plan.created = FlushCreations(recorder.builder)
            recorder.plan.created.add_all(new)
        if suppressed:
            recorder.record_unversioned_writes(writes)
            _store(session, recorder.plan)
            return
        for write in writes.untracked_only:  # outside concurrency control: no version, no guard
            optimistic.write_untracked_only(session, write.obj, write.untracked)
        for write in writes.changes:
            recorder.record_update(write)
            if isinstance(write.obj, RecordChanges):
                recorder.stamp(write.obj)
        changed = {id(w.obj) for w in writes.changes}
        for obj in writes.dirty:
            if (
                isinstance(obj, RecordChanges)
                and id(obj) not in changed
                and not _is_versioned(obj)
                and session.is_modified(obj)
            ):
                recorder.stamp(obj)
        for obj in writes.deletes:
            recorder.record_delete(obj)
        _store(session, recorder.plan)
    finally:
        deactivate(token)


def _store(session: Session, plan: _Plan) -> None:
    session.info[optimistic.EXPECTED_KEY] = plan.expected
    if plan.expected:  # where a stale write is explained, should this flush fail
        mapper = sa.inspect(plan.expected[0][0])
        session.info[optimistic.CONNECTION_KEY] = (
            session.connection(bind_arguments={"mapper": mapper}),
            session.in_nested_transaction(),
        )
    if plan.written or plan.rows.order or plan.created is not None:
        session.info[PENDING_ROWS_KEY] = plan


def after_flush(session: Session, flush_context: Any) -> None:
    """Insert the history rows, now that the ORM's writes succeeded, and run the guard.

    The guard's query rides in the same statement as the history INSERT.
    """
    flush_writes.forget(session)
    plan: _Plan | None = session.info.pop(PENDING_ROWS_KEY, None)
    if plan is None:
        return
    for change_info, collections in plan.collections:
        change_info["relationships"] = _describe_collections(collections)
    guard = session.info.get(GUARD_INFO_KEY)
    if guard is None or not plan.written:
        plan.rows.insert(session)
    else:
        run = guard.prepare(session, plan.written)
        found = plan.rows.insert(session, run.queries[0])
        for mapper, query, params in run.queries[1:]:
            connection = session.connection(bind_arguments={"mapper": mapper})
            found += connection.execute(query, params).all()
        run.verdict(found)
    if plan.created is not None:
        plan.created.write(session, plan.now)


def after_soft_rollback(session: Session, previous_transaction: Any) -> None:
    session.info.pop(PENDING_ROWS_KEY, None)
    flush_writes.forget(session)
