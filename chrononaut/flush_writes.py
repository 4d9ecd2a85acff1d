"""What a flush writes: the one definition the recorder, the version counter and the guard read.

Before a flush, every versioned record the session will write falls in exactly
one of three groups, worked out once per flush by :func:`of_flush`:

- ``changes``: persistent records whose tracked or hidden columns, tracked
  many-to-one references or tracked collections change. Their UPDATE is
  conditioned on the loaded ``version`` and bumps it, a history row records
  the prior values, and the lock guard checks them.
- ``untracked_only``: persistent records whose only changes are untracked
  columns (or untracked relationships). They are written by primary key alone,
  outside the version counter, history and the guard.
- ``deletes``: records the flush deletes: conditioned on ``version``, a
  deletion row in history, checked by the guard. Orphans of a
  ``delete-orphan`` relationship are among them: the ORM decides during the
  flush that it deletes them, but they are still in ``session.dirty`` (or not
  even there) before it.

Children a deleted parent detaches (the ORM sets their foreign key to NULL:
a one-to-many relationship without delete cascade) are ``changes`` too, their
foreign key columns among the changed ones, although nothing in the session
has changed them yet.

The recorder writes history from these groups and the guard checks exactly
``changes`` and ``deletes`` (:attr:`FlushWrites.guarded`), so the two cannot
disagree about what a flush writes. ``GUARD_INFO_KEY`` is the other half of
that seam: where the locking listeners put the guard that the recorder runs
inside its history INSERT.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import (
    NO_VALUE,
    PASSIVE_NO_INITIALIZE,
    PASSIVE_OFF,
    get_history,
    instance_state,
)

from .exceptions import ChrononautException

#: Key in ``Session.info`` of a guard checking the flush's writes (set by the locking
#: listeners): ``guard.prepare(session, objects)`` gives ``.queries`` and ``.verdict(rows)``.
GUARD_INFO_KEY = "chrononaut_flush_guard"

_CACHE_KEY = "chrononaut_flush_writes"


@dataclass
class RecordWrite:
    """One versioned record's changes in a flush."""

    obj: Any
    #: tracked attribute keys whose value changes (foreign keys of changed references too)
    tracked: set[str] = field(default_factory=set)
    #: hidden attribute keys whose value changes
    hidden: set[str] = field(default_factory=set)
    #: untracked attribute keys whose value changes
    untracked: list[str] = field(default_factory=list)
    #: tracked collection key -> (objects added, objects removed)
    collections: dict[str, tuple[list[Any], list[Any]]] = field(default_factory=dict)

    @property
    def is_versioned_change(self) -> bool:
        return bool(self.tracked or self.hidden or self.collections)


@dataclass
class FlushWrites:
    """The versioned records one flush writes, in three groups (see the module doc)."""

    changes: list[RecordWrite] = field(default_factory=list)
    untracked_only: list[RecordWrite] = field(default_factory=list)
    deletes: list[Any] = field(default_factory=list)
    #: the session's new, dirty and deleted objects as the flush began (``Session.new``,
    #: ``.dirty`` and ``.deleted`` build a new set on each access: read them here)
    new: list[Any] = field(default_factory=list)
    dirty: list[Any] = field(default_factory=list)
    deleted: list[Any] = field(default_factory=list)

    @property
    def guarded(self) -> list[Any]:
        """The records the lock guard checks: versioned changes and deletes."""
        return [w.obj for w in self.changes] + self.deletes


def is_versioned(obj: Any) -> bool:
    return getattr(type(obj), "__chrononaut__", None) is not None


def _same_objects(added: Any, deleted: Any) -> bool:
    return len(added) == len(deleted) and all(a is d for a, d in zip(added, deleted, strict=True))


def refuse_primary_key_change(obj: Any, key: str, value: Any) -> None:
    """Raise: history is keyed by the primary key, so changing it would orphan the history."""
    identity = instance_state(obj).identity
    raise ChrononautException(
        f"{type(obj).__name__} {identity!r}: changing primary key column {key!r} to "
        f"{value!r} would cut the record off from its history; insert a new record instead."
    )


def examine(obj: Any) -> RecordWrite:
    """What a flush would write for the persistent versioned ``obj``."""
    state = instance_state(obj)
    info = type(obj).__chrononaut__
    policy = info.policy
    mapper = state.mapper
    write = RecordWrite(obj)
    committed = state.committed_state
    for key in committed:
        if key in policy.tracked:
            group: Any = write.tracked
        elif key in policy.hidden_keys:
            group = write.hidden
        elif key in policy.untracked_keys:
            group = None
        else:
            continue
        old = committed[key]
        new = state.dict.get(key, NO_VALUE)
        if old is not NO_VALUE and state.manager[key].impl.is_equal(new, old):
            continue
        if key in info.pk_keys:
            refuse_primary_key_change(obj, key, new)
        if group is None:
            write.untracked.append(key)
        else:
            group.add(key)
    for prop in mapper.relationships:
        if prop.key not in committed or prop.viewonly:
            continue
        history = get_history(obj, prop.key, passive=PASSIVE_NO_INITIALIZE)
        if not history.added and not history.deleted:
            continue
        if prop.direction.name == "MANYTOONE":
            # The flush updates the foreign key: record its prior value now, unless
            # the reference was set to the object it already pointed at.
            if _same_objects(history.added, history.deleted):
                continue
            for column in prop.local_columns:
                key = mapper.get_property_by_column(column).key
                if key in policy.tracked:
                    write.tracked.add(key)
        elif prop.uselist and prop.key not in policy.untracked_relationships:
            added = [o for o in history.added if o is not None]
            removed = [o for o in history.deleted if o is not None]
            if added or removed:
                write.collections[prop.key] = (added, removed)
    return write


def _is_orphan(obj: Any) -> bool:
    """True if the flush deletes the persistent ``obj`` as a delete-orphan."""
    state = instance_state(obj)
    return state.key is not None and bool(state.mapper._is_orphan(state))


def _orphans(dirty: list[Any], deleted: Any) -> list[Any]:
    """Versioned persistent records the flush deletes as orphans, not in ``deleted``.

    An orphan removed from its parent's collection without a backref is not
    dirty itself: look at the removed members of every dirty parent too.
    """
    candidates = [o for o in dirty if is_versioned(o)]
    for parent in dirty:
        state = instance_state(parent)
        for prop in state.mapper.relationships:
            if not prop.cascade.delete_orphan or prop.key not in state.committed_state:
                continue
            history = get_history(parent, prop.key, passive=PASSIVE_NO_INITIALIZE)
            candidates += [o for o in history.deleted if o is not None and is_versioned(o)]
    seen: set[int] = set()
    found = []
    for obj in candidates:
        if id(obj) in seen or obj in deleted:
            continue
        seen.add(id(obj))
        if _is_orphan(obj):
            found.append(obj)
    return found


def _detached_children(deleted: Any, deletes: list[Any]) -> list[tuple[Any, set[str]]]:
    """(child, tracked foreign key keys) for versioned children deleted parents detach.

    The ORM nulls the foreign key of a deleted parent's children when the
    one-to-many relationship neither cascades the delete nor has
    ``passive_deletes="all"``; it loads the collection unless ``passive_deletes``.
    """
    deleting = {id(o) for o in deletes}
    out = []
    for parent in deleted:
        state = instance_state(parent)
        for prop in state.mapper.relationships:
            if (
                prop.direction.name != "ONETOMANY"
                or prop.viewonly
                or prop.cascade.delete
                or prop.passive_deletes == "all"
            ):
                continue
            passive = PASSIVE_NO_INITIALIZE if prop.passive_deletes else PASSIVE_OFF
            history = get_history(parent, prop.key, passive=passive)
            impl = state.manager[prop.key].impl
            children = list(history.unchanged) + [
                o
                for o in history.deleted
                if o is not None and impl.hasparent(instance_state(o)) is False
            ]
            for child in children:
                if child is None or not is_versioned(child) or id(child) in deleting:
                    continue
                if instance_state(child).key is None:
                    continue
                keys = _foreign_keys(prop, child)
                if keys:
                    out.append((child, keys))
    return out


def _foreign_keys(prop: Any, child: Any) -> set[str]:
    """The tracked attribute keys of ``child`` that one-to-many ``prop`` sets."""
    child_state = instance_state(child)
    info = type(child).__chrononaut__
    return {
        child_state.mapper.get_property_by_column(c).key for c in prop.remote_side
    } & info.policy.tracked.keys()


def _moved_children(dirty: list[Any], deleting: set[int]) -> list[tuple[Any, set[str]]]:
    """(child, tracked foreign key keys) for versioned children the flush moves or detaches.

    A child added to or removed from a parent's one-to-many collection gets its
    foreign key set by the flush itself; without a backref nothing in the
    session has changed the child before it.
    """
    out = []
    for parent in dirty:
        state = instance_state(parent)
        for prop in state.mapper.relationships:
            if (
                prop.direction.name != "ONETOMANY"
                or prop.viewonly
                or prop.key not in state.committed_state
            ):
                continue
            history = get_history(parent, prop.key, passive=PASSIVE_NO_INITIALIZE)
            for child in (*history.added, *history.deleted):
                if child is None or not is_versioned(child) or id(child) in deleting:
                    continue
                if instance_state(child).key is None:
                    continue  # new: inserted with its foreign key, no history
                keys = _foreign_keys(prop, child)
                if keys:
                    out.append((child, keys))
    return out


def of_flush(session: Session, flush_context: Any) -> FlushWrites:
    """The versioned writes of the flush ``flush_context``, worked out on first use."""
    cached = session.info.get(_CACHE_KEY)
    if cached is not None and cached[0] is flush_context:
        return cached[1]
    deleted = session.deleted
    writes = FlushWrites(new=list(session.new), dirty=list(session.dirty), deleted=list(deleted))
    dirty = writes.dirty
    writes.deletes = [obj for obj in deleted if is_versioned(obj)]
    writes.deletes += _orphans(dirty, deleted)
    deleting = {id(o) for o in writes.deletes}
    by_obj: dict[int, RecordWrite] = {}
    for obj in dirty:
        if not is_versioned(obj) or instance_state(obj).key is None or id(obj) in deleting:
            continue
        by_obj[id(obj)] = examine(obj)
    moved = _detached_children(deleted, writes.deletes) + _moved_children(dirty, deleting)
    for child, keys in moved:
        write = by_obj.setdefault(id(child), RecordWrite(child))
        write.tracked |= keys
    for write in by_obj.values():
        if write.is_versioned_change:
            writes.changes.append(write)
        elif write.untracked:
            writes.untracked_only.append(write)
    session.info[_CACHE_KEY] = (flush_context, writes)
    return writes


def forget(session: Session) -> None:
    """Drop the cached writes once the flush that computed them is over."""
    session.info.pop(_CACHE_KEY, None)
