"""Awaitable forms of chrononaut's database calls, for ``AsyncSession`` records.

Same names and arguments as the sync calls, with the record first:
``record.versions()`` becomes ``await chrononaut.aio.versions(record)``,
``with chrononaut.lock(a, b):`` becomes ``async with chrononaut.aio.lock(a, b):``.
Each runs the sync implementation inside the AsyncSession's greenlet
(``AsyncSession.run_sync``). Versioning itself needs nothing here:
``chrononaut.listen(async_sessionmaker(...))`` versions every flush.
"""

from __future__ import annotations

from .actions import prune as prune
from .actions import restore as restore
from .actions import revert_to as revert_to
from .actor import TaskActor as TaskActor
from .history import diff as diff
from .history import has_changed_since as has_changed_since
from .history import previous_version as previous_version
from .history import version_at as version_at
from .history import versions as versions
from .history import versions_select as versions_select
from .leases import acquire_lease as acquire_lease
from .leases import lease as lease
from .leases import release_lease as release_lease
from .locking import apply_changes as apply_changes
from .locking import check_version as check_version
from .locking import is_locked as is_locked
from .locking import lock as lock
from .retry import retry_on_conflict as retry_on_conflict

__all__ = [
    "TaskActor",
    "acquire_lease",
    "apply_changes",
    "check_version",
    "diff",
    "has_changed_since",
    "is_locked",
    "lease",
    "lock",
    "previous_version",
    "prune",
    "release_lease",
    "restore",
    "retry_on_conflict",
    "revert_to",
    "version_at",
    "versions",
    "versions_select",
]
