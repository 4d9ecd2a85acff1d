"""chrononaut: versioning, change tracking and record locking for Flask-SQLAlchemy."""

from __future__ import annotations

from .context import acting_as as acting_as
from .context import append_change_info as append_change_info
from .context import extra_change_info as extra_change_info
from .context import rationale as rationale
from .context import suppress_versioning as suppress_versioning
from .exceptions import ChrononautException as ChrononautException
from .exceptions import ConfigurationError as ConfigurationError
from .exceptions import HiddenAttributeError as HiddenAttributeError
from .exceptions import UntrackedAttributeError as UntrackedAttributeError
from .extension import VersionedSQLAlchemy as VersionedSQLAlchemy
from .settings import Settings as Settings
from .versioning import HistoryBase as HistoryBase
from .versioning import RecordChanges as RecordChanges
from .versioning import Versioned as Versioned
from .versioning import listen as listen
from .versioning import remove as remove

__all__ = [
    "ChrononautException",
    "ConfigurationError",
    "HiddenAttributeError",
    "HistoryBase",
    "RecordChanges",
    "Settings",
    "UntrackedAttributeError",
    "Versioned",
    "VersionedSQLAlchemy",
    "acting_as",
    "append_change_info",
    "extra_change_info",
    "listen",
    "rationale",
    "remove",
    "suppress_versioning",
]
