"""``chrononaut.restore(session, Model, *primary_key)``: bring a deleted record back.

A record deleted through chrononaut leaves a deletion row in its history: its
last state, at the version it had. :func:`restore` reads the newest history row
of the key; if it is a deletion row and no record holds the key, it builds a
new instance of the class that row belongs to (the right subclass, for joined
and single-table inheritance alike) from the row's tracked columns, adds it to
the session and returns it. Nothing is written until the caller flushes: the
insert then continues the key's version numbering after the deletion row (see
``continue_numbering`` in the recorder), as any insert of a known key does.
The key's edit lease and ``lock()``, which the flush guard checks for changes
and deletions only, are checked when ``restore()`` is called
(:class:`~chrononaut.RecordLockedError` if someone else holds either). Hidden
and untracked columns, whose values history does not keep, start as for any
new record: their column default (Python or server side) or NULL. Columns the
database computes (``Computed``) are computed again.

``change_info["restored"] = True`` rides on the instance as a pending
top-level change_info entry (as ``append_change_info`` does for ``extra``): the
next history row written for this instance carries it. Today that is the row of
its next change or deletion, made through the same instance (a session that
discards the instance first loses the mark; the version numbering after a
deletion row still shows the restore); where creation events are recorded,
they carry it at the insert.
"""

from __future__ import annotations

import math
from typing import Any

import sqlalchemy as sa

from .. import context
from ..exceptions import ChrononautException, RecordLockedError
from ..locking import advisory, leases
from ..locking.keys import describe, normalise_identity
from .arguments import session_of, versioned_class
from .history import versioning_info

CALL = "restore()"


def _identity(model: type[Any], primary_key: tuple[Any, ...]) -> tuple[Any, ...]:
    keys = versioning_info(model).pk_keys
    if len(primary_key) != len(keys):
        raise TypeError(
            f"{CALL}: {model.__name__}'s primary key has {len(keys)} column(s) "
            f"({', '.join(keys)}); got {len(primary_key)} value(s): {primary_key!r}."
        )
    for key, value in zip(keys, primary_key, strict=True):
        if value is None or isinstance(value, bool):
            raise TypeError(f"{CALL}: {model.__name__}.{key} cannot be {value!r}.")
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"{CALL}: {model.__name__}.{key} cannot be {value!r}.")
    return normalise_identity(model, primary_key)


def _newest_row(session: Any, model: type[Any], identity: tuple[Any, ...]) -> Any:
    base = sa.inspect(model).base_mapper.class_
    info = versioning_info(base)
    history_cls = info.history_mapper.class_
    query = session.query(history_cls)
    for key, value in zip(info.pk_keys, identity, strict=True):
        query = query.filter(getattr(history_cls, key) == value)
    return query.order_by(history_cls.version.desc()).first()


def _exists(session: Any, model: type[Any], identity: tuple[Any, ...]) -> bool:
    base = sa.inspect(model).base_mapper.class_
    info = versioning_info(base)
    query = sa.select(base)
    for key, value in zip(info.pk_keys, identity, strict=True):
        query = query.where(getattr(base, key) == value)
    return bool(session.scalar(sa.select(query.exists())))


def restore(session: Any, model: type[Any], *primary_key: Any) -> Any:
    """Re-create the deleted ``model`` record ``primary_key`` from its deletion row.

    Returns the new instance, added to the session; commit to write it::

        doc = chrononaut.restore(db.session, Document, 42)
        db.session.commit()  # version: the deletion row's + 1
    """
    session = session_of(session, CALL)
    model = versioned_class(model, CALL)
    identity = _identity(model, primary_key)
    described = describe(model, identity)
    with session.no_autoflush:
        if _exists(session, model, identity):
            raise ChrononautException(
                f"{CALL}: {described} exists; only a deleted record can be restored "
                "(revert_to() sets an existing one back to an earlier version)."
            )
        row = _newest_row(session, model, identity)
    if row is None:
        raise ChrononautException(
            f"{CALL}: {described} has no history: it never existed, was never changed "
            "through chrononaut, or its history was pruned; there is nothing to restore."
        )
    if not row.is_deletion:
        raise ChrononautException(
            f"{CALL}: {described} does not exist, but its newest history row (version "
            f"{row.version}) is not a deletion row: it was deleted without history "
            "(suppress_versioning or SQL outside chrononaut), so its last state is unknown."
        )
    cls = type(row).__chrononaut_model__
    if not issubclass(cls, model):
        raise ChrononautException(
            f"{CALL}: {described} was a {cls.__name__}, not a {model.__name__}; restore it "
            f"as chrononaut.restore(session, {cls.__name__}, ...)."
        )
    obj = sa.inspect(cls).class_manager.new_instance()
    for key, column in versioning_info(cls).policy.tracked.items():
        if column.computed is None:
            setattr(obj, key, getattr(row, key))
    sa.inspect(obj).info[context.PENDING_TOP_INFO_KEY] = {"restored": True}
    session.add(obj)
    try:
        _refuse_if_held(session, obj, described)
    except BaseException:
        session.expunge(obj)
        raise
    return obj


def _refuse_if_held(session: Any, obj: Any, described: str) -> None:
    """Raise :class:`RecordLockedError` if someone else holds the key's lease or ``lock()``.

    The flush guard checks the records a flush changes or deletes, not inserts;
    a key can still be held after its record was deleted (a lease not released,
    a ``lock()`` of a transaction still running), and a restore honours that.
    """
    lease = leases.current_lease(obj)
    if lease is not None and lease.owner != leases.acting_owner(session):
        raise RecordLockedError(
            f"{CALL}: {described} is being edited by {lease.owner} until "
            f"{lease.expires_at:%Y-%m-%d %H:%M:%S %Z}; restore it after the lease ends, or "
            "break the lease first.",
            record=described,
            owner=lease.owner,
            expires_at=lease.expires_at,
        )
    if advisory.is_locked(obj):
        raise RecordLockedError(
            f"{CALL}: another transaction holds lock() on {described}; retry when it ends.",
            record=described,
        )
