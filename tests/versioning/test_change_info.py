"""change_info without Flask: its keys, the acting user, model overrides, RecordChanges.

Context managers and strict mode are in ``test_change_info_context.py``.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import sqlalchemy as sa
from freezegun import freeze_time
from sqlalchemy.orm import Mapped, mapped_column

from chrononaut import RecordChanges, Versioned, acting_as, rationale


def history_of(session, model) -> list[Any]:
    history_cls = model.__history_mapper__.class_
    return session.scalars(sa.select(history_cls).order_by(history_cls.version)).all()


def test_change_info_outside_flask_has_only_user_id_and_remote_addr(Base, engine, session):
    class Note(Base, Versioned):
        __tablename__ = "note"
        id: Mapped[int] = mapped_column(primary_key=True)
        body: Mapped[str]

    Base.metadata.create_all(engine)
    note = Note(body="draft")
    session.add(note)
    session.commit()
    note.body = "final"
    session.commit()

    [old] = history_of(session, Note)
    assert old.body == "draft"
    assert old.change_info == {"user_id": None, "remote_addr": None}


def test_hidden_column_change_lists_hidden_cols_changed(Base, engine, session):
    class Account(Base, Versioned):
        __tablename__ = "account"
        __chrononaut_hidden__ = ["password", "pin"]
        id: Mapped[int] = mapped_column(primary_key=True)
        email: Mapped[str]
        password: Mapped[str]
        pin: Mapped[str]

    Base.metadata.create_all(engine)
    account = Account(email="a@example.com", password="one", pin="1234")
    session.add(account)
    session.commit()
    account.pin = "4321"
    account.password = "two"
    session.commit()
    account.email = "b@example.com"
    session.commit()

    hidden_change, tracked_change = history_of(session, Account)
    assert hidden_change.change_info == {
        "user_id": None,
        "remote_addr": None,
        "hidden_cols_changed": ["password", "pin"],
    }
    assert "hidden_cols_changed" not in tracked_change.change_info


def test_hidden_and_tracked_change_together_lists_only_the_hidden_column(Base, engine, session):
    class Account(Base, Versioned):
        __tablename__ = "account"
        __chrononaut_hidden__ = ["password"]
        id: Mapped[int] = mapped_column(primary_key=True)
        email: Mapped[str]
        password: Mapped[str]

    Base.metadata.create_all(engine)
    account = Account(email="a@example.com", password="one")
    session.add(account)
    session.commit()
    account.email = "b@example.com"
    account.password = "two"
    session.commit()

    [old] = history_of(session, Account)
    assert old.email == "a@example.com"
    assert old.change_info["hidden_cols_changed"] == ["password"]


def test_changed_comes_back_timezone_aware_in_utc(Base, engine, session):
    class Note(Base, Versioned):
        __tablename__ = "note"
        id: Mapped[int] = mapped_column(primary_key=True)
        body: Mapped[str]

    Base.metadata.create_all(engine)
    note = Note(body="draft")
    session.add(note)
    session.commit()
    with freeze_time("2024-03-01 12:34:56.789012"):
        note.body = "final"
        session.commit()
    session.expire_all()

    [old] = history_of(session, Note)
    assert old.changed.tzinfo is not None
    assert old.changed.utcoffset() is not None
    assert old.changed == datetime(2024, 3, 1, 12, 34, 56, 789012, tzinfo=timezone.utc)


def test_acting_as_sets_user_id_inside_the_block_only(Base, engine, session):
    class Job(Base, Versioned):
        __tablename__ = "job"
        id: Mapped[int] = mapped_column(primary_key=True)
        status: Mapped[str]

    Base.metadata.create_all(engine)
    job = Job(status="queued")
    session.add(job)
    session.commit()
    with acting_as("worker-7"):
        job.status = "running"
        session.commit()
    job.status = "done"
    session.commit()

    inside, after = history_of(session, Job)
    assert inside.change_info == {"user_id": "worker-7", "remote_addr": None}
    assert after.change_info == {"user_id": None, "remote_addr": None}


def test_acting_as_is_restored_when_the_block_raises(Base, engine, session):
    class Job(Base, Versioned):
        __tablename__ = "job"
        id: Mapped[int] = mapped_column(primary_key=True)
        status: Mapped[str]

    Base.metadata.create_all(engine)
    job = Job(status="queued")
    session.add(job)
    session.commit()
    with pytest.raises(RuntimeError), acting_as(7):
        raise RuntimeError("boom")
    job.status = "done"
    session.commit()

    [old] = history_of(session, Job)
    assert old.change_info["user_id"] is None


def test_acting_as_rejects_a_user_id_that_is_not_str_or_int():
    with pytest.raises(TypeError) as exc_info, acting_as(object()):
        pass  # pragma: no cover
    assert "acting_as() takes a str or int user id" in str(exc_info.value)


def test_model_can_override_fetch_current_user_id_and_remote_addr(Base, engine, session):
    class Gadget(Base, Versioned):
        __tablename__ = "gadget"
        id: Mapped[int] = mapped_column(primary_key=True)
        name: Mapped[str]

        def _fetch_current_user_id(self):
            return f"owner-of-{self.id}"

        def _fetch_remote_addr(self):
            return "192.0.2.1"

    Base.metadata.create_all(engine)
    gadget = Gadget(id=5, name="lamp")
    session.add(gadget)
    session.commit()
    gadget.name = "desk lamp"
    session.commit()

    [old] = history_of(session, Gadget)
    assert old.change_info == {"user_id": "owner-of-5", "remote_addr": "192.0.2.1"}


def test_subclass_of_versioned_overrides_the_actor_for_every_model(Base, engine, session):
    class AuditedVersioned(Versioned):
        def _fetch_current_user_id(self):
            return "system"

    class Gadget(Base, AuditedVersioned):
        __tablename__ = "gadget"
        id: Mapped[int] = mapped_column(primary_key=True)
        name: Mapped[str]

    Base.metadata.create_all(engine)
    gadget = Gadget(name="lamp")
    session.add(gadget)
    session.commit()
    gadget.name = "desk lamp"
    session.commit()

    [old] = history_of(session, Gadget)
    assert old.change_info == {"user_id": "system", "remote_addr": None}


def test_record_changes_is_set_on_insert_and_update_of_a_plain_model(Base, engine, session):
    class Invoice(Base, RecordChanges):
        __tablename__ = "invoice"
        id: Mapped[int] = mapped_column(primary_key=True)
        total: Mapped[int]

    Base.metadata.create_all(engine)
    created_at = datetime(2024, 1, 1, 9, 0, tzinfo=timezone.utc)
    with freeze_time(created_at):
        invoice = Invoice(total=10)
        session.add(invoice)
        session.commit()
    assert invoice.change_info == {"user_id": None, "remote_addr": None}
    assert invoice.changed == created_at
    assert invoice.changed.tzinfo is not None

    with freeze_time(created_at + timedelta(hours=1)), acting_as("clerk"), rationale("typo"):
        invoice.total = 12
        session.commit()
    assert invoice.change_info == {
        "user_id": "clerk",
        "remote_addr": None,
        "extra": {"rationale": "typo"},
    }
    assert invoice.changed == created_at + timedelta(hours=1)
    assert "version" not in sa.inspect(Invoice).attrs


def test_record_changes_combined_with_versioned(Base, engine, session):
    class Invoice(Base, Versioned, RecordChanges):
        __tablename__ = "invoice"
        id: Mapped[int] = mapped_column(primary_key=True)
        total: Mapped[int]

    Base.metadata.create_all(engine)
    created_at = datetime(2024, 1, 1, 9, 0, tzinfo=timezone.utc)
    with freeze_time(created_at), acting_as("author"):
        invoice = Invoice(total=10)
        session.add(invoice)
        session.commit()
    assert invoice.change_info == {"user_id": "author", "remote_addr": None}
    assert invoice.changed == created_at

    updated_at = created_at + timedelta(minutes=5)
    with freeze_time(updated_at), acting_as("editor"):
        invoice.total = 12
        session.commit()

    assert invoice.version == 1
    assert invoice.change_info == {"user_id": "editor", "remote_addr": None}
    assert invoice.changed == updated_at
    [old] = history_of(session, Invoice)
    assert (old.total, old.version) == (10, 0)
    assert old.changed == updated_at
    assert old.change_info == {"user_id": "editor", "remote_addr": None}


def test_record_changes_with_versioned_history_can_be_filtered_by_changed(Base, engine, session):
    class Invoice(Base, Versioned, RecordChanges):
        __tablename__ = "invoice"
        id: Mapped[int] = mapped_column(primary_key=True)
        total: Mapped[int]

    Base.metadata.create_all(engine)
    invoice = Invoice(total=10)
    session.add(invoice)
    session.commit()
    with freeze_time("2024-01-01 10:00:00"):
        invoice.total = 11
        session.commit()
    with freeze_time("2024-01-02 10:00:00"):
        invoice.total = 12
        session.commit()

    recent = invoice.versions(after=datetime(2024, 1, 2, tzinfo=timezone.utc))
    assert [v.total for v in recent] == [11]
