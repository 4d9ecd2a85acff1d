"""chrononaut: versioning, change tracking and record locking for Flask-SQLAlchemy."""

from __future__ import annotations

from .context import acting_as as acting_as
from .context import append_change_info as append_change_info
from .context import extra_change_info as extra_change_info
from .context import rationale as rationale
from .context import suppress_versioning as suppress_versioning
from .exceptions import Change as Change
from .exceptions import ChrononautException as ChrononautException
from .exceptions import ConfigurationError as ConfigurationError
from .exceptions import ConflictError as ConflictError
from .exceptions import DeadlockError as DeadlockError
from .exceptions import HiddenAttributeError as HiddenAttributeError
from .exceptions import LockTimeoutError as LockTimeoutError
from .exceptions import RecordLockedError as RecordLockedError
from .exceptions import UntrackedAttributeError as UntrackedAttributeError
from .exceptions import VersionNotFoundError as VersionNotFoundError
from .extension import VersionedSQLAlchemy as VersionedSQLAlchemy
from .http import check_if_match as check_if_match
from .http import register_error_handlers as register_error_handlers
from .http import set_etag as set_etag
from .locking.advisory import lock as lock
from .locking.leases import Lease as Lease
from .locking.optimistic import retry_on_conflict as retry_on_conflict
from .session import listen as listen
from .session import remove as remove
from .settings import Settings as Settings
from .versioning import HistoryBase as HistoryBase
from .versioning import RecordChanges as RecordChanges
from .versioning import Versioned as Versioned
from .versioning.database_guard import enable_database_guard as enable_database_guard
from .versioning.restore import restore as restore
from .versioning.retention import prune as prune

__all__ = [
    "Change",
    "ChrononautException",
    "ConfigurationError",
    "ConflictError",
    "DeadlockError",
    "HiddenAttributeError",
    "HistoryBase",
    "Lease",
    "LockTimeoutError",
    "RecordChanges",
    "RecordLockedError",
    "Settings",
    "UntrackedAttributeError",
    "VersionNotFoundError",
    "Versioned",
    "VersionedSQLAlchemy",
    "acting_as",
    "append_change_info",
    "check_if_match",
    "enable_database_guard",
    "extra_change_info",
    "listen",
    "lock",
    "prune",
    "rationale",
    "register_error_handlers",
    "remove",
    "restore",
    "retry_on_conflict",
    "set_etag",
    "suppress_versioning",
]
