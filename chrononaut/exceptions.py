"""Every exception chrononaut raises, rooted at :class:`ChrononautException`.

Callers catch the subtree they care about and read structured attributes;
they never need to parse a message.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from sqlalchemy.orm.exc import StaleDataError


class ChrononautException(Exception):
    """Base class of every chrononaut error."""


class ConfigurationError(ChrononautException, ValueError):
    """A model or an app is configured in a way chrononaut cannot honour.

    Raised at mapping time, for example for an unknown column name in
    ``__chrononaut_hidden__``.
    """


class HiddenAttributeError(ChrononautException, AttributeError):
    """Read of a hidden column on a history object (its value is not kept)."""


class UntrackedAttributeError(ChrononautException, AttributeError):
    """Read of an untracked column on a history object (it is not versioned)."""


class VersionNotFoundError(ChrononautException, LookupError):
    """``revert_to()`` named a version the record's history does not hold.

    Attributes: ``record`` (e.g. ``"Document(id=42)"``), ``version`` (the one
    asked for), ``current_version`` (the record's), and ``oldest_kept`` (the
    oldest version its history still holds, None if it holds none: never
    changed, or pruned to nothing).
    """

    def __init__(
        self,
        message: str,
        record: str,
        version: int,
        current_version: int,
        oldest_kept: int | None,
    ) -> None:
        super().__init__(message)
        self.record = record
        self.version = version
        self.current_version = current_version
        self.oldest_kept = oldest_kept


# --- locking -----------------------------------------------------------------


@dataclass(frozen=True)
class Change:
    """One version written since a record was loaded, as a conflict reports it.

    ``version`` is the version the change produced, ``user_id`` who made it,
    ``changed`` when, and ``columns`` the columns it changed (hidden ones named,
    their values never shown). A change written outside the ORM and recorded by
    the database guard has ``source="database"`` and ``db_user``, the database
    role that made it.
    """

    version: int
    user_id: Any
    changed: datetime
    columns: tuple[str, ...]
    deleted: bool = False
    source: str | None = None
    db_user: str | None = None

    def describe(self) -> str:
        who = self.user_id if self.user_id is not None else "an unknown user"
        if self.source == "database":
            who = f"database user {self.db_user} outside the ORM"
        when = self.changed.astimezone(timezone.utc).strftime("%H:%M:%S UTC")
        if self.deleted:
            return f"version {self.version} by {who} at {when} deleted it"
        what = ", ".join(self.columns) if self.columns else "nothing visible"
        return f"version {self.version} by {who} at {when} changed {what}"


class ConflictError(ChrononautException, StaleDataError):
    """A write was based on a version of the record that is no longer current.

    Attributes: ``record`` (e.g. ``"Document(id=42)"``), ``model`` (the class
    name), ``identity`` (the primary key tuple), ``expected_version`` (the
    version the writer loaded), ``current_version`` (None if the record was
    deleted), ``changes`` (a list of :class:`Change`, oldest first) and
    ``columns`` (the columns in conflict: for :meth:`apply_changes` the overlap,
    otherwise every column changed since).
    """

    #: The session whose write failed (set by chrononaut), for :func:`retry_on_conflict`.
    session: Any = None

    def __init__(
        self,
        model: str,
        identity: tuple[Any, ...],
        record: str,
        expected_version: int | None,
        current_version: int | None,
        changes: list[Change],
        columns: tuple[str, ...] | None = None,
    ) -> None:
        self.model = model
        self.identity = identity
        self.record = record
        self.expected_version = expected_version
        self.current_version = current_version
        self.changes = list(changes)
        self.columns = (
            tuple(columns)
            if columns is not None
            else tuple(sorted({c for change in self.changes for c in change.columns}))
        )
        super().__init__(self._message())

    def _message(self) -> str:
        head = f"{self.record} changed since you loaded version {self.expected_version}"
        if self.current_version is None:
            head = f"{self.record} was deleted since you loaded version {self.expected_version}"
        if not self.changes:
            return head + "."
        return head + ": " + "; ".join(change.describe() for change in self.changes)

    def to_dict(self) -> dict[str, Any]:
        """The attributes as JSON-ready values (for HTTP error bodies)."""
        return {
            "record": self.record,
            "expected_version": self.expected_version,
            "current_version": self.current_version,
            "columns": list(self.columns),
            "changes": [
                {
                    "version": c.version,
                    "user_id": c.user_id,
                    "changed": c.changed.isoformat(),
                    "columns": list(c.columns),
                    "deleted": c.deleted,
                    "source": c.source,
                    "db_user": c.db_user,
                }
                for c in self.changes
            ],
        }


class RecordLockedError(ChrononautException):
    """Someone else holds the record: an advisory lock or an edit lease.

    ``owner`` and ``expires_at`` name the lease holder and its expiry; both are
    None for advisory locks, whose holder is a database transaction.
    """

    def __init__(
        self,
        message: str,
        record: str | None = None,
        owner: Any = None,
        expires_at: datetime | None = None,
    ) -> None:
        super().__init__(message)
        self.record = record
        self.owner = owner
        self.expires_at = expires_at

    def to_dict(self) -> dict[str, Any]:
        return {
            "record": self.record,
            "owner": self.owner,
            "expires_at": self.expires_at.isoformat() if self.expires_at else None,
        }


class LockTimeoutError(RecordLockedError):
    """``lock(timeout=...)`` gave up waiting; the caller's transaction is still usable."""


class DeadlockError(RecordLockedError):
    """PostgreSQL broke a deadlock by aborting this transaction; roll back and retry."""
