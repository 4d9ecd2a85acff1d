"""``record.revert_to(version)``: set a record's tracked columns back to a prior version.

A revert is an ordinary change made in memory: it reads the history row of
``version`` (no autoflush, nothing written) and sets the record's tracked
columns to its values; the next flush writes a version as any change does,
through the version counter (a stale record raises
:class:`~chrononaut.ConflictError`), the flush guard (``lock()`` and leases)
and the recorder, whose row carries ``change_info["reverted_to"]`` (a pending
top-level entry, like a broken lease). What is not set: the primary key, the
polymorphic discriminator, hidden columns (history never kept their values:
they keep their current ones), untracked columns (not in history either), and
columns the database or SQLAlchemy generates on update (``Computed``,
``onupdate=``, ``server_onupdate=``), which the write generates again. A revert
to values equal to the current ones changes nothing and writes nothing.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from .. import context
from ..exceptions import ChrononautException, VersionNotFoundError
from ..locking.keys import describe
from .arguments import persistent_record
from .history import HistoryBase, versioning_info
from .queries import versions_query

CALL = "revert_to()"


def _requested_version(obj: Any, version: Any) -> int:
    """The version number ``version`` names: an int, or a history object of ``obj``."""
    if isinstance(version, HistoryBase):
        info = versioning_info(type(obj))
        model = type(version).__chrononaut_model__
        same_hierarchy = sa.inspect(model).base_mapper is sa.inspect(type(obj)).base_mapper
        theirs = tuple(getattr(version, k, None) for k in info.pk_keys) if same_hierarchy else ()
        if not same_hierarchy or theirs != tuple(getattr(obj, k) for k in info.pk_keys):
            raise ChrononautException(
                f"{CALL}: {version!r} is not a version of {describe(obj, _pk(obj))}; pass a "
                "history object from this record's versions(), or a version number."
            )
        version = version.version
    if isinstance(version, bool) or not isinstance(version, int):
        raise TypeError(
            f"{CALL} takes a version number (int) or a history object of this record, "
            f"got {version!r}."
        )
    if version < 0:
        raise ValueError(f"{CALL}: versions are numbered from 0, got {version!r}.")
    return version


def _pk(obj: Any) -> tuple[Any, ...]:
    return tuple(getattr(obj, k) for k in versioning_info(type(obj)).pk_keys)


def _not_found(obj: Any, version: int) -> VersionNotFoundError:
    history_cls = versioning_info(type(obj)).history_mapper.class_
    oldest = (
        versions_query(obj).with_entities(sa.func.min(history_cls.version)).order_by(None).scalar()
    )
    record = describe(obj, _pk(obj))
    if version >= obj.version:
        why = f"is not an earlier version (the record is at version {obj.version})"
    elif oldest is None:
        why = "is not in its history, which holds no version (pruned, or never written)"
    elif version < oldest:
        why = f"was pruned; the oldest kept version is {oldest}"
    else:
        why = f"is not in its history (the oldest kept version is {oldest})"
    return VersionNotFoundError(
        f"{CALL}: version {version} of {record} {why}; pick one of its versions().",
        record=record,
        version=version,
        current_version=obj.version,
        oldest_kept=oldest,
    )


def _revertable(cls: type[Any]) -> list[str]:
    """Attribute keys a revert sets: tracked, minus the key, discriminator and generated ones."""
    info = versioning_info(cls)
    mapper = sa.inspect(cls)
    discriminator = mapper.polymorphic_on
    keys = []
    for key, column in info.policy.tracked.items():
        if key in info.pk_keys or column is discriminator:
            continue
        if column.computed is not None or column.onupdate is not None:
            continue
        if column.server_onupdate is not None:
            continue
        keys.append(key)
    return keys


def revert_to(obj: Any, version: Any) -> Any:
    """Set ``obj``'s tracked columns to their values at ``version``; return ``obj``.

    ::

        doc.revert_to(3)  # or doc.revert_to(doc.versions()[3])
        session.commit()  # a new version, change_info["reverted_to"] == 3
    """
    state = persistent_record(obj, CALL)
    number = _requested_version(obj, version)
    session = state.session
    with session.no_autoflush:
        if number >= obj.version:
            raise _not_found(obj, number)
        history_cls = versioning_info(type(obj)).history_mapper.class_
        row = versions_query(obj).filter(history_cls.version == number).one_or_none()
        if row is None:
            raise _not_found(obj, number)
    if type(row).__chrononaut_model__ is not type(obj):
        raise ChrononautException(
            f"{CALL}: version {number} of {describe(obj, _pk(obj))} was a "
            f"{type(row).__chrononaut_model__.__name__}, not a {type(obj).__name__}; a revert "
            "cannot change a record's class."
        )
    changed = False
    for key in _revertable(type(obj)):
        value = getattr(row, key)
        if getattr(obj, key) != value:
            setattr(obj, key, value)
            changed = True
    if changed:
        pending = state.info.get(context.PENDING_TOP_INFO_KEY) or {}
        state.info[context.PENDING_TOP_INFO_KEY] = {**pending, "reverted_to": number}
    return obj
