"""The :class:`Versioned` mixin: options, the mapper hook and instance methods."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, Mapper, Query, mapped_column

from . import change_info, queries
from .history import INFO_KEY, VersioningInfo, build_history


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
    ``__chrononaut_primary_key_nonunique__``.
    """

    #: 0 on insert, +1 for every versioned change.
    version: Mapped[int] = mapped_column(
        sa.Integer,
        nullable=False,
        default=0,
        server_default=sa.text("0"),
        info={INFO_KEY: "version"},
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
        query = queries.versions_query(self, before=before, after=after)
        return query if return_query else query.all()

    def version_at(self, at: datetime) -> Any:
        """The record as it was at ``at``: a history object, or ``self`` if unchanged since."""
        return queries.version_at(self, at)

    def has_changed_since(self, since: datetime) -> bool:
        """True if a version of this record was written at or after ``since``."""
        return queries.has_changed_since(self, since)

    def previous_version(self) -> Any:
        """The latest history object of this record, or None."""
        return queries.previous_version(self)

    def diff(
        self, from_model: Any, to: Any = None, include_hidden: bool = False
    ) -> dict[str, tuple[Any, Any]]:
        """Columns that differ between ``from_model`` (a history object) and ``to``.

        ``to`` defaults to this record. Returns ``{column: (old, new)}``::

            user.diff(user.versions()[0])  # {"email": ("old@x.org", "new@x.org")}
        """
        return queries.diff(self, from_model, to=to, include_hidden=include_hidden)

    def _fetch_current_user_id(self) -> Any:
        """The acting user's id for change_info; override to change who is recorded."""
        return change_info.current_user_id()

    def _fetch_remote_addr(self) -> Any:
        """The client address for change_info; override to change what is recorded."""
        return change_info.current_remote_addr()


@sa.event.listens_for(Versioned, "after_mapper_constructed", propagate=True)
def _build_history_for(mapper: Mapper[Any], cls: type[Any]) -> None:
    info = build_history(mapper)
    cls.__chrononaut__ = info
    cls.__history_mapper__ = info.history_mapper
