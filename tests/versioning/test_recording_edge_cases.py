"""Recording history on flush: several changes, no-op changes, deletes, expiry, failures, time."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from freezegun import freeze_time
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column, relationship, sessionmaker

import chrononaut
from chrononaut import Versioned
from chrononaut.sqlstate import UNIQUE_VIOLATION, sqlstate


def history_rows(session, model, *columns):
    """``(version, *columns)`` of every history row of ``model``, read with plain SQL."""
    table = model.__history_mapper__.local_table
    selected = [table.c.version, *(table.c[c] for c in columns)]
    stmt = sa.select(*selected).order_by(table.c.id, table.c.version)
    return [tuple(row) for row in session.execute(stmt)]


def stored_version(session, obj):
    """The ``version`` column of ``obj``'s row in the database, not the one in memory."""
    table = sa.inspect(type(obj)).local_table
    return session.execute(sa.select(table.c.version).where(table.c.id == obj.id)).scalar_one()


def test_update_of_several_columns_writes_one_row(session, Base):
    class Document(Base, Versioned):
        __tablename__ = "document"
        id: Mapped[int] = mapped_column(primary_key=True)
        title: Mapped[str]
        body: Mapped[str]
        tag: Mapped[str | None]

    Base.metadata.create_all(session.get_bind())
    doc = Document(title="t0", body="b0", tag=None)
    session.add(doc)
    session.commit()

    doc.title, doc.body, doc.tag = "t1", "b1", "x"
    session.commit()

    assert history_rows(session, Document, "title", "body", "tag") == [(0, "t0", "b0", None)]
    assert stored_version(session, doc) == 1


def test_several_flushes_in_one_transaction_each_write_one_row(db):
    class Document(db.Model, Versioned):
        __tablename__ = "document"
        id = db.Column(db.Integer, primary_key=True)
        title = db.Column(db.String(80))

    db.create_all()
    doc = Document(title="a")
    db.session.add(doc)
    db.session.flush()
    doc.title = "b"
    db.session.flush()
    doc.title = "c"
    db.session.flush()
    db.session.commit()

    assert history_rows(db.session, Document, "title") == [(0, "a"), (1, "b")]
    assert stored_version(db.session, doc) == 2


def test_changes_to_several_records_in_one_flush_write_one_row_each(session, Base):
    class Document(Base, Versioned):
        __tablename__ = "document"
        id: Mapped[int] = mapped_column(primary_key=True)
        title: Mapped[str]

    Base.metadata.create_all(session.get_bind())
    first, second, third = Document(title="1"), Document(title="2"), Document(title="3")
    session.add_all([first, second, third])
    session.commit()

    first.title, second.title = "1b", "2b"
    session.commit()

    table = Document.__history_mapper__.local_table
    stmt = sa.select(table.c.id, table.c.version, table.c.title).order_by(table.c.id)
    assert [tuple(r) for r in session.execute(stmt)] == [(first.id, 0, "1"), (second.id, 0, "2")]
    assert [stored_version(session, d) for d in (first, second, third)] == [1, 1, 0]


def test_setting_a_column_to_its_current_value_writes_nothing(session, Base):
    class Document(Base, Versioned):
        __tablename__ = "document"
        id: Mapped[int] = mapped_column(primary_key=True)
        title: Mapped[str]

    Base.metadata.create_all(session.get_bind())
    doc = Document(title="a")
    session.add(doc)
    session.commit()

    doc.title = "a"  # attributes expired by the commit: the old value is loaded
    session.commit()
    assert doc.title == "a"
    doc.title = "a"  # attribute loaded
    session.commit()
    doc.title = "b"
    doc.title = "a"  # changed and changed back before the flush
    session.commit()

    assert history_rows(session, Document) == []
    assert stored_version(session, doc) == 0


def test_update_right_after_commit_records_prior_values_classic(db):
    class Document(db.Model, Versioned):
        __tablename__ = "document"
        id = db.Column(db.Integer, primary_key=True)
        title = db.Column(db.String(80))
        body = db.Column(db.Text)

    db.create_all()
    doc = Document(title="a", body="x")
    db.session.add(doc)
    db.session.commit()
    doc.title = "b"
    db.session.commit()

    assert "title" not in doc.__dict__  # expired: the next write happens without a load
    doc.title = "c"
    db.session.commit()

    assert history_rows(db.session, Document, "title", "body") == [(0, "a", "x"), (1, "b", "x")]
    assert stored_version(db.session, doc) == 2


def test_update_right_after_commit_records_prior_values_mapped(session, Base):
    class Account(Base, Versioned):
        __tablename__ = "account"
        __chrononaut_hidden__ = ["password"]
        id: Mapped[int] = mapped_column(primary_key=True)
        email: Mapped[str]
        password: Mapped[str]

    Base.metadata.create_all(session.get_bind())
    account = Account(email="a@example.com", password="p0")
    session.add(account)
    session.commit()

    assert "email" not in account.__dict__
    account.email = "b@example.com"
    session.commit()
    account.password = "p1"
    session.commit()

    rows = history_rows(session, Account, "email", "change_info")
    assert [(v, e) for v, e, _ in rows] == [(0, "a@example.com"), (1, "b@example.com")]
    assert rows[1][2]["hidden_cols_changed"] == ["password"]
    assert stored_version(session, account) == 2


def test_delete_writes_one_row_of_the_last_state_classic(db):
    class Document(db.Model, Versioned):
        __tablename__ = "document"
        id = db.Column(db.Integer, primary_key=True)
        title = db.Column(db.String(80))

    db.create_all()
    doc = Document(title="a")
    db.session.add(doc)
    db.session.commit()
    doc.title = "b"
    db.session.commit()
    doc_id = doc.id

    db.session.delete(doc)  # expired by the commit: its last state is loaded
    db.session.commit()

    rows = history_rows(db.session, Document, "title", "change_info")
    assert [(v, t) for v, t, _ in rows] == [(0, "a"), (1, "b")]
    assert "deleted" not in rows[0][2]
    assert rows[1][2]["deleted"] is True
    history = db.session.query(Document.__history_mapper__.class_).order_by("version").all()
    assert [h.is_deletion for h in history] == [False, True]
    assert all(h.id == doc_id for h in history)


def test_delete_writes_one_row_of_the_last_state_mapped(session, Base):
    class Account(Base, Versioned):
        __tablename__ = "account"
        __chrononaut_hidden__ = ["password"]
        __chrononaut_untracked__ = ["logins"]
        id: Mapped[int] = mapped_column(primary_key=True)
        email: Mapped[str]
        password: Mapped[str]
        logins: Mapped[int]

    Base.metadata.create_all(session.get_bind())
    account = Account(email="a@example.com", password="p", logins=0)
    session.add(account)
    session.commit()

    session.delete(account)
    session.commit()

    [(version, email, change_info)] = history_rows(session, Account, "email", "change_info")
    assert (version, email) == (0, "a@example.com")
    assert change_info["deleted"] is True
    assert "hidden_cols_changed" not in change_info
    [history] = session.query(Account.__history_mapper__.class_).all()
    assert history.is_deletion is True


def test_failed_flush_writes_no_history_and_session_can_be_reused(session, Base):
    class Account(Base, Versioned):
        __tablename__ = "account"
        id: Mapped[int] = mapped_column(primary_key=True)
        email: Mapped[str] = mapped_column(unique=True)

    Base.metadata.create_all(session.get_bind())
    ada, bob = Account(email="ada@example.com"), Account(email="bob@example.com")
    session.add_all([ada, bob])
    session.commit()

    bob.email = "ada@example.com"
    with pytest.raises(IntegrityError) as exc_info:
        session.flush()
    assert sqlstate(exc_info.value) == UNIQUE_VIOLATION
    session.rollback()

    assert history_rows(session, Account) == []
    assert bob.version == 0
    bob.email = "robert@example.com"
    session.commit()
    table = Account.__history_mapper__.local_table
    stmt = sa.select(table.c.id, table.c.version, table.c.email)
    assert [tuple(r) for r in session.execute(stmt)] == [(bob.id, 0, "bob@example.com")]
    assert stored_version(session, bob) == 1


def test_failed_flush_in_savepoint_writes_no_history_and_transaction_goes_on(db):
    class Account(db.Model, Versioned):
        __tablename__ = "account"
        id = db.Column(db.Integer, primary_key=True)
        email = db.Column(db.String(255), unique=True)

    db.create_all()
    ada, bob = Account(email="ada@example.com"), Account(email="bob@example.com")
    db.session.add_all([ada, bob])
    db.session.commit()

    ada.email = "ada@lovelace.org"
    db.session.flush()
    with pytest.raises(IntegrityError) as exc_info, db.session.begin_nested():
        bob.email = "ada@lovelace.org"
    assert sqlstate(exc_info.value) == UNIQUE_VIOLATION
    bob.email = "robert@example.com"
    db.session.commit()

    assert history_rows(db.session, Account, "email") == [
        (0, "ada@example.com"),
        (0, "bob@example.com"),
    ]
    assert [stored_version(db.session, a) for a in (ada, bob)] == [1, 1]


def test_changed_is_utc_aware_with_microseconds(session, Base):
    class Document(Base, Versioned):
        __tablename__ = "document"
        id: Mapped[int] = mapped_column(primary_key=True)
        title: Mapped[str]

    Base.metadata.create_all(session.get_bind())
    doc = Document(title="a")
    session.add(doc)
    session.commit()

    with freeze_time("2024-03-05 12:34:56.789012"):
        doc.title = "b"
        session.commit()

    [(_, changed)] = history_rows(session, Document, "changed")
    assert changed == datetime(2024, 3, 5, 12, 34, 56, 789012, tzinfo=timezone.utc)
    assert changed.utcoffset() == timedelta(0)
    assert changed.microsecond == 789012
    [history] = session.query(Document.__history_mapper__.class_).all()
    assert history.changed == changed
    assert history.changed.utcoffset() == timedelta(0)


def test_changed_reads_back_in_utc_whatever_the_connection_time_zone(engine, Base):
    class Document(Base, Versioned):
        __tablename__ = "document"
        id: Mapped[int] = mapped_column(primary_key=True)
        title: Mapped[str]

    Base.metadata.create_all(engine)
    factory = sessionmaker(engine)
    chrononaut.listen(factory)
    with factory() as session:
        session.execute(sa.text("SET TIME ZONE 'America/New_York'"))
        doc = Document(title="a")
        session.add(doc)
        session.flush()
        with freeze_time("2024-03-05 12:00:00.000001"):
            doc.title = "b"
            session.flush()
        [history] = session.query(Document.__history_mapper__.class_).all()
        assert history.changed == datetime(2024, 3, 5, 12, 0, 0, 1, tzinfo=timezone.utc)
        assert history.changed.utcoffset() == timedelta(0)
        session.rollback()


def test_change_then_delete_in_one_flush_writes_one_row_of_the_stored_state(session, Base):
    class Document(Base, Versioned):
        __tablename__ = "document"
        id: Mapped[int] = mapped_column(primary_key=True)
        title: Mapped[str]

    Base.metadata.create_all(session.get_bind())
    doc = Document(title="a")
    session.add(doc)
    session.commit()

    doc.title = "b"
    session.delete(doc)
    session.commit()

    [(version, title, change_info)] = history_rows(session, Document, "title", "change_info")
    assert (version, title, change_info["deleted"]) == (0, "a", True)


def test_update_records_the_prior_value_of_an_unloaded_deferred_column(session, Base):
    class Document(Base, Versioned):
        __tablename__ = "document"
        id: Mapped[int] = mapped_column(primary_key=True)
        title: Mapped[str]
        body: Mapped[str] = mapped_column(deferred=True)

    Base.metadata.create_all(session.get_bind())
    session.add(Document(title="a", body="long text"))
    session.commit()
    session.expunge_all()

    doc = session.query(Document).one()
    assert "body" not in doc.__dict__
    doc.title = "b"
    session.commit()

    assert history_rows(session, Document, "title", "body") == [(0, "a", "long text")]


def test_changing_a_relationship_records_the_prior_foreign_key(session, Base):
    class Author(Base):
        __tablename__ = "author"
        id: Mapped[int] = mapped_column(primary_key=True)

    class Book(Base, Versioned):
        __tablename__ = "book"
        id: Mapped[int] = mapped_column(primary_key=True)
        author_id: Mapped[int] = mapped_column(sa.ForeignKey("author.id"))
        author: Mapped[Author] = relationship()

    Base.metadata.create_all(session.get_bind())
    first, second = Author(), Author()
    book = Book(author=first)
    session.add_all([first, second, book])
    session.commit()
    first_id = first.id

    book.author = second
    session.commit()

    assert history_rows(session, Book, "author_id") == [(0, first_id)]
    assert stored_version(session, book) == 1
