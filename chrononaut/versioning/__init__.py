"""Versioning: history tables, recording on flush and reading history back."""

from __future__ import annotations

from .history import HistoryBase as HistoryBase
from .listeners import is_listening as is_listening
from .listeners import listen as listen
from .listeners import remove as remove
from .mixin import Versioned as Versioned
from .record_changes import RecordChanges as RecordChanges

__all__ = ["HistoryBase", "RecordChanges", "Versioned", "is_listening", "listen", "remove"]
