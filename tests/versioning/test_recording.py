"""Recording history on flush: version numbers, which rows are written and what they hold."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from chrononaut import Versioned


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


def test_versions_count_from_zero_and_history_keeps_replaced_values_classic(db):
    class Document(db.Model, Versioned):
        __tablename__ = "document"
        id = db.Column(db.Integer, primary_key=True)
        title = db.Column(db.String(80))
        body = db.Column(db.Text)

    db.create_all()
    doc = Document(title="draft", body="a")
    db.session.add(doc)
    db.session.commit()
    assert doc.version == 0
    assert history_rows(db.session, Document) == []

    doc.title = "review"
    db.session.commit()
    doc.body = "b"
    db.session.commit()

    assert stored_version(db.session, doc) == 2
    assert history_rows(db.session, Document, "title", "body") == [
        (0, "draft", "a"),
        (1, "review", "a"),
    ]


def test_versions_count_from_zero_and_history_keeps_replaced_values_mapped(session, Base):
    class Document(Base, Versioned):
        __tablename__ = "document"
        id: Mapped[int] = mapped_column(primary_key=True)
        title: Mapped[str] = mapped_column(sa.String(80))
        body: Mapped[str | None]

    Base.metadata.create_all(session.get_bind())
    doc = Document(title="draft", body="a")
    session.add(doc)
    session.commit()
    assert doc.version == 0
    assert history_rows(session, Document) == []

    doc.title = "review"
    session.commit()
    doc.body = "b"
    session.commit()

    assert stored_version(session, doc) == 2
    assert history_rows(session, Document, "title", "body") == [
        (0, "draft", "a"),
        (1, "review", "a"),
    ]


def test_update_of_untracked_column_writes_no_history_classic(db):
    class User(db.Model, Versioned):
        __tablename__ = "appuser"
        __chrononaut_untracked__ = ["login_count"]
        id = db.Column(db.Integer, primary_key=True)
        name = db.Column(db.String(80))
        login_count = db.Column(db.Integer)

    db.create_all()
    user = User(name="Ada", login_count=0)
    db.session.add(user)
    db.session.commit()

    user.login_count = 1
    db.session.commit()

    assert user.login_count == 1
    assert stored_version(db.session, user) == 0
    assert history_rows(db.session, User) == []


def test_update_of_untracked_column_writes_no_history_mapped(session, Base):
    class User(Base, Versioned):
        __tablename__ = "appuser"
        __chrononaut_untracked__ = ["login_count"]
        id: Mapped[int] = mapped_column(primary_key=True)
        name: Mapped[str]
        login_count: Mapped[int]

    Base.metadata.create_all(session.get_bind())
    user = User(name="Ada", login_count=0)
    session.add(user)
    session.commit()

    user.login_count = 1
    session.commit()

    assert user.login_count == 1
    assert stored_version(session, user) == 0
    assert history_rows(session, User) == []


def test_update_of_tracked_and_untracked_columns_writes_one_row_without_untracked(db):
    class User(db.Model, Versioned):
        __tablename__ = "appuser"
        __chrononaut_untracked__ = ["login_count"]
        id = db.Column(db.Integer, primary_key=True)
        name = db.Column(db.String(80))
        login_count = db.Column(db.Integer)

    db.create_all()
    user = User(name="Ada", login_count=0)
    db.session.add(user)
    db.session.commit()

    user.name = "Ada L."
    user.login_count = 5
    db.session.commit()

    assert "login_count" not in User.__history_mapper__.local_table.c
    assert history_rows(db.session, User, "name") == [(0, "Ada")]
    assert stored_version(db.session, user) == 1


def test_update_of_hidden_column_writes_one_row_naming_it_classic(db):
    class Account(db.Model, Versioned):
        __tablename__ = "account"
        __chrononaut_hidden__ = ["password"]
        id = db.Column(db.Integer, primary_key=True)
        email = db.Column(db.String(255))
        password = db.Column(db.Text)

    db.create_all()
    account = Account(email="ada@example.com", password="s3cret")
    db.session.add(account)
    db.session.commit()

    account.password = "n3w"
    db.session.commit()

    assert "password" not in Account.__history_mapper__.local_table.c
    rows = history_rows(db.session, Account, "email", "change_info")
    assert len(rows) == 1
    version, email, change_info = rows[0]
    assert (version, email) == (0, "ada@example.com")
    assert change_info["hidden_cols_changed"] == ["password"]
    assert stored_version(db.session, account) == 1


def test_update_of_hidden_column_writes_one_row_naming_it_mapped(session, Base):
    class Account(Base, Versioned):
        __tablename__ = "account"
        __chrononaut_hidden__ = ["password", "pin"]
        id: Mapped[int] = mapped_column(primary_key=True)
        email: Mapped[str]
        password: Mapped[str]
        pin: Mapped[str]

    Base.metadata.create_all(session.get_bind())
    account = Account(email="ada@example.com", password="s3cret", pin="1234")
    session.add(account)
    session.commit()

    account.pin = "1234"  # its current value: nothing to record
    session.commit()
    assert history_rows(session, Account) == []
    account.pin = "4321"
    session.commit()

    rows = history_rows(session, Account, "email", "change_info")
    assert [(v, e) for v, e, _ in rows] == [(0, "ada@example.com")]
    assert rows[0][2]["hidden_cols_changed"] == ["pin"]
    assert stored_version(session, account) == 1


def test_update_of_tracked_and_hidden_columns_writes_one_row(session, Base):
    class Account(Base, Versioned):
        __tablename__ = "account"
        __chrononaut_hidden__ = ["password"]
        id: Mapped[int] = mapped_column(primary_key=True)
        email: Mapped[str]
        password: Mapped[str]

    Base.metadata.create_all(session.get_bind())
    account = Account(email="ada@example.com", password="s3cret")
    session.add(account)
    session.commit()

    account.email = "ada@lovelace.org"
    account.password = "n3w"
    session.commit()

    rows = history_rows(session, Account, "email", "change_info")
    assert [(v, e) for v, e, _ in rows] == [(0, "ada@example.com")]
    assert rows[0][2]["hidden_cols_changed"] == ["password"]


def test_update_of_tracked_column_only_does_not_list_hidden_columns(session, Base):
    class Account(Base, Versioned):
        __tablename__ = "account"
        __chrononaut_hidden__ = ["password"]
        id: Mapped[int] = mapped_column(primary_key=True)
        email: Mapped[str]
        password: Mapped[str]

    Base.metadata.create_all(session.get_bind())
    account = Account(email="ada@example.com", password="s3cret")
    session.add(account)
    session.commit()

    account.email = "ada@lovelace.org"
    session.commit()

    [(_, change_info)] = history_rows(session, Account, "change_info")
    assert "hidden_cols_changed" not in change_info
    assert "deleted" not in change_info


def test_change_before_the_insert_is_flushed_writes_no_history(session, Base):
    class Document(Base, Versioned):
        __tablename__ = "document"
        id: Mapped[int] = mapped_column(primary_key=True)
        title: Mapped[str]

    Base.metadata.create_all(session.get_bind())
    doc = Document(title="a")
    session.add(doc)
    doc.title = "b"
    session.commit()

    assert history_rows(session, Document) == []
    assert stored_version(session, doc) == 0


def test_update_after_commit_records_values_another_session_committed(session_factory, Base):
    class Document(Base, Versioned):
        __tablename__ = "document"
        id: Mapped[int] = mapped_column(primary_key=True)
        title: Mapped[str]

    with session_factory() as mine, session_factory() as theirs:
        Base.metadata.create_all(mine.get_bind())
        doc = Document(title="a")
        mine.add(doc)
        mine.flush()
        doc_id = doc.id
        mine.commit()
        their_doc = theirs.get(Document, doc_id)
        their_doc.title = "theirs"
        theirs.commit()

        doc.title = "mine"  # expired by the commit: prior values come from the database
        mine.commit()

        assert history_rows(mine, Document, "title") == [(0, "a"), (1, "theirs")]
        assert stored_version(mine, doc) == 2
