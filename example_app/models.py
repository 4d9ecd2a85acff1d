"""The example app's models: a versioned :class:`Document` and a plain :class:`User`."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from flask_login import UserMixin
from sqlalchemy.orm import Mapped, mapped_column
from werkzeug.security import check_password_hash, generate_password_hash

from chrononaut import RecordChanges, Versioned, VersionedSQLAlchemy

#: The app's database: every Versioned model's changes are written to history.
db = VersionedSQLAlchemy()

#: Document statuses, in workflow order: (value, label).
STATUSES = (
    ("draft", "Draft"),
    ("review", "In review"),
    ("published", "Published"),
    ("archived", "Archived"),
)
STATUS_LABELS = dict(STATUSES)
TITLE_MAX = 120


class User(db.Model, UserMixin):
    """Someone who logs in. Not versioned: passwords and logins have no history here."""

    __tablename__ = "app_user"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(sa.String(40), unique=True)
    password_hash: Mapped[str] = mapped_column(sa.Text)

    def get_id(self) -> str:
        """Flask-Login's id, and so the ``user_id`` in change_info and lease owners."""
        return self.username

    def set_password(self, password: str) -> None:
        """Store a salted hash of ``password`` (werkzeug's scrypt)."""
        self.password_hash = generate_password_hash(password)

    def check_password(self, password: str) -> bool:
        """Whether ``password`` matches the stored hash."""
        return check_password_hash(self.password_hash, password)


class Document(db.Model, Versioned, RecordChanges):
    """A versioned document.

    ``reviewer_notes`` is hidden (its changes are recorded, its old values are
    not kept) and ``view_count`` is untracked (bumping it writes no version).
    ``RecordChanges`` keeps the latest change's ``change_info`` and ``changed``
    on the row, which the list shows as the last editor.
    """

    __tablename__ = "document"
    __chrononaut_hidden__ = ["reviewer_notes"]
    __chrononaut_untracked__ = ["view_count"]

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(sa.String(TITLE_MAX))
    body: Mapped[str] = mapped_column(sa.Text, default="")
    status: Mapped[str] = mapped_column(sa.String(20), default="draft")
    reviewer_notes: Mapped[str] = mapped_column(sa.Text, default="")
    view_count: Mapped[int] = mapped_column(default=0, server_default=sa.text("0"))
    created_by: Mapped[str | None] = mapped_column(sa.String(40))
    created_at: Mapped[datetime] = mapped_column(
        sa.DateTime(timezone=True), server_default=sa.func.now()
    )

    @property
    def status_label(self) -> str:
        """The status as shown to people."""
        return STATUS_LABELS.get(self.status, self.status)

    @property
    def last_editor(self) -> str | None:
        """Who wrote the current version (the creator for version 0)."""
        info = self.change_info or {}
        return info.get("user_id") or self.created_by


class LeaseBreak(db.Model):
    """A take-over of someone's edit lease, recorded when it commits.

    ``open`` while the taker still holds the lease and has not saved: their
    next save with changes records the break in that version's change_info
    (``version``); any other end of their lease (saving nothing, Cancel,
    deleting, someone else taking it) closes it with ``version`` empty. The
    row stays either way: it is the audit record of the take-over.
    """

    __tablename__ = "lease_break"

    id: Mapped[int] = mapped_column(primary_key=True)
    document_id: Mapped[int] = mapped_column(index=True)  # no foreign key: outlives the document
    owner: Mapped[str] = mapped_column(sa.String(40))
    expires_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))
    taken_by: Mapped[str] = mapped_column(sa.String(40))
    taken_at: Mapped[datetime] = mapped_column(
        sa.DateTime(timezone=True), server_default=sa.func.now()
    )
    open: Mapped[bool] = mapped_column(default=True)
    version: Mapped[int | None] = mapped_column()

    def as_change_info(self) -> dict[str, str]:
        """What the version's change_info records: whose lease, until when, broken by whom."""
        return {
            "owner": self.owner,
            "expires_at": self.expires_at.isoformat(),
            "by": self.taken_by,
        }
