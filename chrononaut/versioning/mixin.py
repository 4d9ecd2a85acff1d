"""The :class:`Versioned` mixin: options, the mapper hook and instance methods."""

from __future__ import annotations

from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from typing import Any, ClassVar, cast

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, Mapper, Query, mapped_column

from ..async_check import refuse_async
from ..exceptions import ConfigurationError
from ..locking import advisory, leases, optimistic
from . import change_info, creations, database_guard, queries, revert
from .history import INFO_KEY, HistoryBase, VersioningInfo, build_history
from .names import RESERVED_COLUMNS, VERSION


class Versioned:
    """Mixin that gives a model a ``<table>_history`` table and a ``version`` column.

    ::

        class User(db.Model, Versioned):
            __tablename__ = "appuser"
            __chrononaut_untracked__ = ["login_count"]
            __chrononaut_hidden__ = ["password"]

            id = db.Column(db.Integer, primary_key=True)
            ...

    Options, all class attributes: ``__chrononaut_tablename__``,
    ``__chrononaut_hidden__``, ``__chrononaut_untracked__``,
    ``__chrononaut_disable_indices__``, ``__chrononaut_copy_validators__`` and
    ``__chrononaut_database_guard__`` (see :mod:`chrononaut.versioning.database_guard`).
    ``__chrononaut_primary_key_nonunique__`` is accepted and has no effect: a
    primary key inserted again after its deletion always continues its numbering.
    """

    #: 0 on insert, +1 for every versioned change.
    version: Mapped[int] = mapped_column(
        sa.Integer,
        nullable=False,
        default=0,
        server_default=sa.text("0"),
        info={INFO_KEY: VERSION},
    )

    __chrononaut__: ClassVar[VersioningInfo]
    __history_mapper__: ClassVar[Mapper[Any]]

    def versions(
        self,
        before: datetime | None = None,
        after: datetime | None = None,
        return_query: bool = False,
    ) -> list[Any] | Query[Any]:
        """Prior versions of this record, oldest first.

        ``before`` and ``after`` bound the ``changed`` time, inclusively.
        ``return_query=True`` returns a query to refine instead of a list::

            first = user.versions()[0]
            recent = user.versions(after=yesterday, return_query=True).limit(5).all()
        """
        refuse_async(
            self,
            "record.versions()",
            "chrononaut.aio.versions_select(record) with await session.scalars(...)"
            if return_query
            else "await chrononaut.aio.versions(record)",
        )
        if return_query:
            return queries.versions_query(self, before=before, after=after)
        return queries.versions(self, before=before, after=after)

    def version_at(self, at: datetime) -> Any:
        """The record as it was at ``at``: a history object, or ``self`` if unchanged since."""
        refuse_async(self, "record.version_at()", "await chrononaut.aio.version_at(record, at)")
        return queries.version_at(self, at)

    def has_changed_since(self, since: datetime) -> bool:
        """True if a version of this record was written at or after ``since``."""
        refuse_async(
            self,
            "record.has_changed_since()",
            "await chrononaut.aio.has_changed_since(record, since)",
        )
        return queries.has_changed_since(self, since)

    def previous_version(self) -> Any:
        """The latest history object of this record, or None."""
        refuse_async(
            self, "record.previous_version()", "await chrononaut.aio.previous_version(record)"
        )
        return queries.previous_version(self)

    def diff(
        self, from_model: Any, to: Any = None, include_hidden: bool = False
    ) -> dict[str, tuple[Any, Any]]:
        """Columns that differ between ``from_model`` (a history object) and ``to``.

        ``to`` defaults to this record. Returns ``{column: (old, new)}``::

            user.diff(user.versions()[0])  # {"email": ("old@x.org", "new@x.org")}
        """
        if include_hidden:  # reads the history rows in between
            refuse_async(
                self,
                "record.diff(..., include_hidden=True)",
                "await chrononaut.aio.diff(record, ..., include_hidden=True)",
            )
        return queries.diff(self, from_model, to=to, include_hidden=include_hidden)

    def revert_to(self, version: Any) -> Any:
        """Set this record's tracked columns back to ``version`` (a number or history object).

        Returns the record; the next commit writes a new version whose history
        row has ``change_info["reverted_to"]``. Hidden columns keep their
        current values (history never kept theirs)::

            doc.revert_to(2)
            session.commit()
        """
        refuse_async(self, "record.revert_to()", "await chrononaut.aio.revert_to(record, version)")
        return revert.revert_to(self, version)

    # --- locking: see chrononaut.locking ---------------------------------------

    def lock(
        self, nowait: bool = False, timeout: float | None = None, shared: bool = False
    ) -> AbstractContextManager[None]:
        """Lock this record until the block ends, refreshed from the database.

        ::

            with doc.lock(timeout=5):
                doc.counter += 1
            # committed, lock released
        """
        return advisory.lock(self, nowait=nowait, timeout=timeout, shared=shared)

    def is_locked(self) -> bool:
        """Whether another transaction holds this record's ``lock()``."""
        refuse_async(self, "record.is_locked()", "await chrononaut.aio.is_locked(record)")
        return advisory.is_locked(self)

    def check_version(self, expected: int) -> None:
        """Raise :class:`~chrononaut.ConflictError` unless this record is at ``expected``."""
        refuse_async(
            self, "record.check_version()", "await chrononaut.aio.check_version(record, expected)"
        )
        optimistic.check_version(self, expected)

    @property
    def etag(self) -> str:
        """Strong HTTP ETag of this version of the record, quoted: ``"Document-42-7"``.

        ::

            response.headers["ETag"] = doc.etag  # or chrononaut.set_etag(response, doc)
        """
        return optimistic.etag(self)

    def apply_changes(self, changes: dict[str, Any], base_version: int) -> None:
        """Apply a stale form's ``changes`` if none of those columns changed since."""
        refuse_async(
            self,
            "record.apply_changes()",
            "await chrononaut.aio.apply_changes(record, changes, base_version)",
        )
        optimistic.apply_changes(self, changes, base_version)

    def acquire_lease(
        self, ttl: timedelta = leases.DEFAULT_TTL, owner: Any = None, force: bool = False
    ) -> leases.Lease:
        """Take or renew the edit lease on this record (see :mod:`chrononaut.locking.leases`)."""
        refuse_async(self, "record.acquire_lease()", "await chrononaut.aio.acquire_lease(record)")
        return leases.acquire_lease(self, ttl=ttl, owner=owner, force=force)

    @property
    def lease(self) -> leases.Lease | None:
        """The current unexpired lease on this record, or None."""
        refuse_async(self, "record.lease", "await chrononaut.aio.lease(record)")
        return leases.current_lease(self)

    def release_lease(self, force: bool = False) -> None:
        """Release this record's lease; another owner's needs ``force=True``."""
        refuse_async(self, "record.release_lease()", "await chrononaut.aio.release_lease(record)")
        leases.release_lease(self, force=force)

    # --- change_info hooks ---------------------------------------------------

    def _fetch_current_user_id(self) -> Any:
        """The acting user's id for change_info; override to change who is recorded."""
        return change_info.current_user_id()

    def _fetch_remote_addr(self) -> Any:
        """The client address for change_info; override to change what is recorded."""
        return change_info.current_remote_addr()


def reserved_names() -> frozenset[str]:
    """Attribute names a versioned model cannot define: ``Versioned``'s and its history's API.

    ``lock``, ``etag``, ``diff``, ``versions``... on the model; ``is_deletion``,
    ``version``, ``changed`` and ``change_info`` on its history class, which
    shares the model's attribute names.
    """
    names = {n for cls in (Versioned, HistoryBase) for n in vars(cls) if not n.startswith("_")}
    names.update(HistoryBase.__annotations__)
    return frozenset(n for n in names if not n.startswith("_"))


def _shadowing_class(mapper: Mapper[Any], cls: type[Any], name: str) -> type[Any] | None:
    """The class of ``cls``'s hierarchy that redefines chrononaut's ``name``, if any."""
    # mapper.attrs would configure every mapper
    prop = next((p for p in mapper.iterate_properties if p.key == name), None)
    if prop is not None:
        columns = getattr(prop, "columns", ())
        if columns and getattr(columns[0], "info", {}).get(INFO_KEY) is not None:
            return None  # Versioned's version, RecordChanges' change_info and changed
        return cls
    owner = next((k for k in cls.__mro__ if name in vars(k)), None)
    if owner is None or owner.__module__.startswith("chrononaut."):
        return None
    return owner


def _refuse_reserved_names(mapper: Mapper[Any], cls: type[Any]) -> None:
    """Raise :class:`ConfigurationError` if ``cls`` shadows a name chrononaut uses."""
    for name in sorted(reserved_names()):
        owner = _shadowing_class(mapper, cls, name)
        if owner is None:
            continue
        if name in RESERVED_COLUMNS:
            raise ConfigurationError(
                f"{owner.__name__}.{name} clashes with the history table's own {name!r} "
                f"column; rename the attribute and its column, e.g. {name}_value = "
                f"mapped_column({name + '_value'!r}, ...) (Versioned keeps the version itself)."
            )
        raise ConfigurationError(
            f"{owner.__name__}.{name} shadows chrononaut's {name!r} (on versioned models or "
            f"their history); rename the attribute, keeping the column name if you need it: "
            f"{name}_ = mapped_column({name!r}, ...)."
        )


@sa.event.listens_for(Versioned, "after_mapper_constructed", propagate=True)
def _build_history_for(mapper: Mapper[Any], cls: type[Any]) -> None:
    _refuse_reserved_names(mapper, cls)
    info = build_history(mapper)
    if len(info.history_tables) == 1 and not mapper.single:  # the hierarchy's base
        optimistic.configure_version_counter(mapper)
        leases.leases_table(cast(sa.Table, mapper.local_table).metadata)
        creations.creations_table(cast(sa.Table, mapper.local_table).metadata)
    cls.__chrononaut__ = info
    cls.__history_mapper__ = info.history_mapper
    database_guard.configure(mapper)
