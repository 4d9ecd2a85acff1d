"""The :class:`RecordChanges` mixin: who last changed a record, on the record itself."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from .history import INFO_KEY, _changed_in_utc


class RecordChanges:
    """Mixin adding ``change_info`` (JSONB) and ``changed`` (timestamptz) columns.

    Both are set on insert and on every update, from the same sources as a
    history row's change_info. Combine it with :class:`Versioned` to have both
    the last change on the row and every prior state in history::

        class Invoice(db.Model, Versioned, RecordChanges):
            ...

        invoice.change_info["user_id"]  # who made the latest change
    """

    change_info: Mapped[dict[str, Any]] = mapped_column(
        JSONB, nullable=True, info={INFO_KEY: "record_changes"}
    )
    changed: Mapped[datetime] = mapped_column(
        sa.DateTime(timezone=True), nullable=True, info={INFO_KEY: "record_changes"}
    )


sa.event.listen(RecordChanges, "load", _changed_in_utc, propagate=True, raw=True)
sa.event.listen(RecordChanges, "refresh", _changed_in_utc, propagate=True, raw=True)
