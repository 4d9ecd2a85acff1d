"""The version counter: stale writes fail, and the failure explains itself.

Every versioned model's ``version`` column is SQLAlchemy's ``version_id_col``
(with chrononaut choosing the values): each ORM UPDATE and DELETE carries
``WHERE version = <loaded version>``. When another transaction changed the row
first, the statement matches nothing and the flush raises
:class:`~chrononaut.ConflictError`, built from history: who changed which
columns since the version the writer loaded.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import re
from collections import defaultdict
from collections.abc import Callable
from datetime import date, datetime
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.orm import Mapper, Session
from sqlalchemy.orm.attributes import set_committed_value

from .. import flush_writes
from ..exceptions import Change, ConflictError, RecordLockedError
from ..versioning.names import VERSION
from . import keys

F = TypeVar("F", bound=Callable[..., Any])

#: Key in ``Session.info``: (class, identity, expected version) of this flush's writes.
EXPECTED_KEY = "chrononaut_expected_versions"
#: Key in ``Session.info``: (the connection this flush writes on, whether in a savepoint).
CONNECTION_KEY = "chrononaut_flush_connection"


def configure_version_counter(mapper: Mapper[Any]) -> None:
    """Make the ``version`` column the mapper's version_id_col (values set by chrononaut)."""
    mapper.version_id_col = mapper.local_table.c.version
    mapper.version_id_generator = False


def write_untracked_only(session: Session, obj: Any, changed: list[str]) -> None:
    """Write changes of untracked columns outside the version counter.

    Untracked columns are outside concurrency control: the UPDATE is keyed by
    primary key alone and neither checks nor bumps ``version``, so a UI counter
    never causes a false conflict.
    """
    state = sa.inspect(obj)
    mapper = state.mapper
    pk_values = dict(
        zip(
            (mapper.get_property_by_column(c).key for c in mapper.primary_key),
            state.identity,
            strict=True,
        )
    )
    by_table: dict[sa.Table, dict[str, Any]] = defaultdict(dict)
    for key in changed:
        column = mapper.get_property(key).columns[0]
        by_table[column.table][column.key] = state.dict[key]
    connection = session.connection(bind_arguments={"mapper": mapper})
    to_expire = []
    for table, values in by_table.items():
        criteria = [
            c == pk_values[mapper.get_property_by_column(c).key] for c in table.primary_key
        ]
        result = connection.execute(table.update().where(*criteria).values(values))
        if result.rowcount != 1:
            raise conflict_for(session, type(obj), tuple(state.identity), obj.version)
        to_expire += [
            mapper.get_property_by_column(c).key
            for c in table.c
            if (c.onupdate is not None or c.server_onupdate is not None) and c.key not in values
        ]
    for key in changed:
        value = state.dict[key]
        if isinstance(value, sa.sql.ClauseElement) or hasattr(value, "__clause_element__"):
            to_expire.append(key)
        else:
            set_committed_value(obj, key, value)
    if to_expire:
        session.expire(obj, to_expire)


def _columns_between(
    info: Any, older: Any, newer: Any, hidden_changed: list[str]
) -> tuple[str, ...]:
    changed = [k for k in info.policy.tracked if getattr(older, k) != getattr(newer, k)]
    changed += [h for h in hidden_changed if h not in changed]
    return tuple(changed)


def changes_since(
    session: Session, cls: type[Any], identity: tuple[Any, ...], base_version: int
) -> tuple[int | None, list[Change]]:
    """(current version or None if deleted, changes written from ``base_version`` on).

    Reads history through ``session``. History row *v* holds the state before
    the change that produced version *v + 1*, so the change's columns are the
    difference between row *v* and the next row (or the current record).
    """
    info = cls.__chrononaut__
    history_cls = info.history_mapper.class_
    # The current row first, then only the history up to it: a commit landing
    # between the two reads cannot make them disagree.
    current = session.get(cls, identity, populate_existing=True)
    current_version = current.version if current is not None else None
    query = session.query(history_cls)
    for key, value in zip(info.pk_keys, identity, strict=True):
        query = query.filter(getattr(history_cls, key) == value)
    query = query.filter(history_cls.version >= base_version)
    if current_version is not None:
        query = query.filter(history_cls.version < current_version)
    rows = query.order_by(history_cls.version).all()
    changes = []
    for index, row in enumerate(rows):
        change_info = row.change_info or {}
        newer = rows[index + 1] if index + 1 < len(rows) else current
        deleted = bool(change_info.get("deleted"))
        named = list(change_info.get("hidden_cols_changed", []))
        named += sorted(change_info.get("relationships", {}))
        columns = () if deleted or newer is None else _columns_between(info, row, newer, named)
        changes.append(
            Change(
                version=row.version + 1,
                user_id=change_info.get("user_id"),
                changed=row.changed,
                columns=columns,
                deleted=deleted,
                source=change_info.get("source"),
                db_user=change_info.get("db_user"),
            )
        )
    return current_version, changes


def conflict_for(
    session: Session,
    cls: type[Any],
    identity: tuple[Any, ...],
    expected_version: int,
    columns: tuple[str, ...] | None = None,
) -> ConflictError:
    """A :class:`ConflictError` for ``cls`` at ``identity``, explained from history."""
    current_version, changes = changes_since(session, cls, identity, expected_version)
    error = ConflictError(
        model=cls.__name__,
        identity=identity,
        record=keys.describe(cls, identity),
        expected_version=expected_version,
        current_version=current_version,
        changes=changes,
        columns=columns,
    )
    error.session = session
    return error


def explain_stale_flush(
    session: Session, error: Exception, deleting: Any = ()
) -> ConflictError | None:
    """Turn the StaleDataError of a failed flush into a ConflictError, if one is found.

    ``deleting`` are the records the flush was to delete (the session's
    ``deleted`` before the flush). The failed flush left the session's
    transaction unusable, so the current state is read on a new connection
    (it sees what the other writer committed).

    When no committed change explains the failure, the row was changed inside
    the session's own transaction behind the ORM's back (a bulk statement run
    with ``synchronize_session=False``, or SQL on the session's connection),
    and the failed flush rolled that change back with everything else: the
    error names the first record the flush wrote to the failing table, with
    its committed version as ``current_version`` and no ``changes``.
    """
    writes = session.info.pop(EXPECTED_KEY, None) or []
    own, nested = session.info.pop(CONNECTION_KEY, (None, True))
    if not writes:
        return None
    with _reading(session, writes[0][0], own, nested) as reading:
        if reading is None:
            return None  # a session bound to a Connection in a savepoint: nothing can read
        return _explain(session, reading, writes, error, deleting)


@contextlib.contextmanager
def _reading(session: Session, cls: type[Any], own: Any, nested: bool) -> Any:
    """A connection to read the committed state on, after a failed flush.

    The flush's own connection when the failure rolled back its whole
    transaction (no second pooled connection is needed, so a pool with none to
    spare still explains conflicts), else a new one of the session's engine.
    """
    if own is not None and not nested and not own.closed and not own.in_transaction():
        own.execution_options(isolation_level="REPEATABLE READ")
        try:
            yield own
        finally:
            own.execution_options(isolation_level=own.default_isolation_level)
        return
    bind = session.get_bind(mapper=sa.inspect(cls))
    if not isinstance(bind, sa.Engine):
        yield None
        return
    with bind.connect().execution_options(isolation_level="REPEATABLE READ") as connection:
        yield connection


def _explain(
    session: Session, connection: sa.Connection, writes: Any, error: Exception, deleting: Any
) -> ConflictError | None:
    with Session(bind=connection) as reader:
        for cls, identity, expected in writes:
            found = reader.get(cls, identity)
            if found is not None and found.version == expected:
                continue
            conflict = conflict_for(reader, cls, identity, expected)
            conflict.session = session
            return conflict
        failed = _failed_write(writes, error, deleting)
        if failed is None:
            return None
        conflict = conflict_for(reader, *failed)
    conflict.session = session
    return conflict


def _failed_write(
    writes: list[tuple[type[Any], tuple[Any, ...], int]], error: Exception, deleting: Any
) -> tuple[type[Any], tuple[Any, ...], int] | None:
    """The first write of the kind and table SQLAlchemy's StaleDataError names, if versioned.

    The message reads "UPDATE statement on table 'document' expected to update
    1 row(s); 0 were matched." (or DELETE); a table of no versioned write is a
    stale plain model, which stays a StaleDataError. ``deleting`` are the
    records the flush was to delete.
    """
    named = _STALE_TABLE.search(str(error))
    if named is None:
        return writes[0]
    verb, table_name = named.groups()
    deleted = {(type(obj), tuple(sa.inspect(obj).identity or ())) for obj in deleting}
    for cls, identity, expected in writes:
        if ((cls, identity) in deleted) != (verb == "DELETE"):
            continue
        if any(table_name in (table.name, table.fullname) for table in sa.inspect(cls).tables):
            return cls, identity, expected
    return None


_STALE_TABLE = re.compile(r"^(UPDATE|DELETE) statement on table '([^']*)'")


def load_version_for_merge(session: Session, obj: Any) -> None:
    """Load the ``version`` of ``obj``'s copy in ``session`` if it is expired.

    ``merge()`` compares the merged record's version with the session copy's
    only when the copy's is loaded; an expired copy (after any commit or
    rollback) would let a stale record be merged and written over newer data.
    """
    if getattr(type(obj), "__chrononaut__", None) is None:
        return
    state = sa.inspect(obj)
    if VERSION not in state.dict:
        return  # no version to compare: merge() does not check either
    key = state.key if state.key is not None else state.mapper.identity_key_from_instance(obj)
    if key[1] is None or None in key[1]:
        return
    existing = session.identity_map.get(key)
    if existing is None or existing is obj:
        return
    copy = sa.inspect(existing)
    if copy.persistent and VERSION not in copy.dict:
        with contextlib.suppress(sa.exc.InvalidRequestError):  # row gone: the flush says so
            session.refresh(existing, [VERSION])


def explain_stale_merge(session: Session, obj: Any) -> ConflictError | None:
    """The ConflictError for ``session.merge(obj)`` refused over a version mismatch.

    SQLAlchemy's ``merge()`` raises StaleDataError when ``obj``'s ``version``
    differs from the version of the same record in the session. The expected
    version is ``obj``'s, or the session's copy's when ``obj`` is the current
    one (the session's copy is the stale one then). The record is read in the
    session's transaction, through a second Session on its connection, so
    nothing in the session is flushed or refreshed.
    """
    cls = type(obj)
    if getattr(cls, "__chrononaut__", None) is None:
        return None
    state = sa.inspect(obj)
    mapper = state.mapper
    key = state.key if state.key is not None else mapper.identity_key_from_instance(obj)
    merged_version = state.dict.get(VERSION)
    if key[1] is None or None in key[1] or not isinstance(merged_version, int):
        return None
    existing = session.identity_map.get(key)
    in_session = existing.__dict__.get(VERSION) if existing is not None else None
    identity = keys.normalise_identity(cls, tuple(key[1]))
    connection = session.connection(bind_arguments={"mapper": mapper})
    with Session(bind=connection) as reader:
        current = reader.get(cls, identity)
        current_version = current.version if current is not None else None
        expected = merged_version
        if merged_version == current_version and isinstance(in_session, int):
            expected = in_session
        conflict = conflict_for(reader, cls, identity, expected)
    conflict.session = session
    return conflict


def check_version(obj: Any, expected: int) -> None:
    """Raise :class:`ConflictError` unless ``obj`` is at version ``expected``.

    Use it with the version an HTML form or API client was rendered from. When
    it passes, ``expected`` is the version the session loaded, so the UPDATE at
    flush is conditioned on it: no check-then-write race.
    """
    if not isinstance(expected, int) or isinstance(expected, bool):
        raise TypeError(f"check_version() takes the expected version as an int, got {expected!r}")
    session = _session_of(obj)
    identity = keys.identity_of(obj)
    loaded = sa.inspect(obj).committed_state.get(VERSION, obj.version)
    if loaded != expected:
        raise conflict_for(session, type(obj), identity, expected)


def apply_changes(obj: Any, changes: dict[str, Any], base_version: int) -> None:
    """Apply a stale form's ``changes`` if nobody changed those columns since ``base_version``.

    A three-way merge: when every column in ``changes`` is untouched since the
    version the form was rendered from, they are set on the (current) record
    and the flush writes them; otherwise :class:`ConflictError` is raised with
    ``columns`` naming the overlap.
    """
    cls = type(obj)
    mapper = sa.inspect(cls)
    editable = {p.key for p in mapper.column_attrs} | {
        r.key for r in mapper.relationships if not r.viewonly
    }
    unknown = [k for k in changes if k not in editable or k == VERSION]
    if unknown:
        raise ValueError(
            f"apply_changes() got {unknown!r}, which are not editable columns or "
            f"relationships of {cls.__name__}"
        )
    if not isinstance(base_version, int) or base_version < 0:
        raise TypeError(f"base_version must be a version number, got {base_version!r}")
    for column in mapper.primary_key:
        key = mapper.get_property_by_column(column).key
        if key in changes and changes[key] != getattr(obj, key):
            flush_writes.refuse_primary_key_change(obj, key, changes[key])
    if base_version > obj.version:
        raise ValueError(
            f"base_version {base_version} is newer than {cls.__name__}'s version {obj.version}"
        )
    if base_version != obj.version:
        session = _session_of(obj)
        identity = keys.identity_of(obj)
        _, history = changes_since(session, cls, identity, base_version)
        touched = {c for change in history for c in change.columns}
        # Untracked columns have no history, so they never conflict.
        overlap = tuple(sorted(set(changes) & touched))
        if overlap:
            raise conflict_for(session, cls, identity, base_version, columns=overlap)
    for key, value in changes.items():
        setattr(obj, key, value)


#: Printable ASCII characters an ETag cannot hold (``"``) or that could be misread.
_ETAG_ESCAPED = frozenset('"%\\')


def _etag_text(value: Any) -> str:
    """``value`` as ETag text: printable ASCII kept, anything else percent-encoded."""
    if isinstance(value, bytes):
        text = value.hex()
    elif isinstance(value, datetime | date):
        text = value.isoformat()
    else:
        text = str(value)
    return "".join(
        char
        if "!" <= char <= "~" and char not in _ETAG_ESCAPED
        else "".join(f"%{byte:02X}" for byte in char.encode())
        for char in text
    )


def etag_prefix(obj: Any) -> str:
    """The part of ``obj``'s ETag before its version: ``Document-42-``."""
    state = sa.inspect(obj)
    if state.identity is None:
        raise ValueError(
            f"{type(obj).__name__} instance has no ETag until it is in the database; "
            "flush it first."
        )
    parts = [type(obj).__name__, *state.identity]
    return "".join(_etag_text(part) + "-" for part in parts)


def etag(obj: Any) -> str:
    """``obj``'s strong HTTP ETag, quoted: ``"Document-42-7"``.

    Model name, primary key values (joined by ``-`` for composite keys) and
    version; characters an ETag cannot hold are percent-encoded. It changes
    with every versioned change, so it names exactly one state of the record.
    """
    return f'"{etag_prefix(obj)}{obj.version}"'


def _session_of(obj: Any) -> Session:
    session = sa.inspect(obj).session
    if session is None:
        raise ValueError(f"{type(obj).__name__} instance is not attached to a session")
    return session


def retry_on_conflict(
    attempts: int | Callable[..., Any] = 3, session: Any = None
) -> Callable[[F], F] | Any:
    """Re-run a unit of work after a rollback when it raises :class:`ConflictError`.

    The function must load what it changes itself, so each attempt starts from
    fresh data. Lock errors (:class:`RecordLockedError`) are never retried. The
    session rolled back is ``session`` (a Session, scoped_session or callable
    returning one) or else the one that raised::

        @retry_on_conflict(attempts=5)
        def bump(doc_id):
            doc = db.session.get(Document, doc_id)
            doc.views_total += 1
            db.session.commit()
    """
    if callable(attempts) and not isinstance(attempts, int):
        return retry_on_conflict()(attempts)
    if not isinstance(attempts, int) or attempts < 1:
        raise ValueError(f"retry_on_conflict() needs attempts >= 1, got {attempts!r}")

    def decorate(fn: F) -> F:
        if inspect.iscoroutinefunction(fn):
            raise TypeError(
                f"retry_on_conflict() cannot retry the coroutine function {fn.__qualname__}: "
                "it would return the coroutine unawaited; decorate it with "
                "chrononaut.aio.retry_on_conflict instead."
            )

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            for attempt in range(1, attempts + 1):
                try:
                    return fn(*args, **kwargs)
                except RecordLockedError:
                    raise
                except ConflictError as error:
                    target = (
                        session()
                        if callable(session) and not hasattr(session, "rollback")
                        else session
                    )
                    target = target if target is not None else getattr(error, "session", None)
                    if target is not None:
                        target.rollback()
                    if attempt == attempts:
                        raise
            raise AssertionError("unreachable")

        return wrapper  # type: ignore[return-value]

    return decorate
