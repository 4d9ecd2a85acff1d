"""Reading history back: diff() between a history object and a later state."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Mapped, mapped_column

from chrononaut import ChrononautException, Versioned


def test_diff_against_the_current_instance_classic(db):
    class Document(db.Model, Versioned):
        __tablename__ = "document"
        __chrononaut_untracked__ = ["views"]
        id = db.Column(db.Integer, primary_key=True)
        title = db.Column(db.String(80))
        body = db.Column(db.Text)
        views = db.Column(db.Integer)

    db.create_all()
    doc = Document(title="a", body="x", views=0)
    db.session.add(doc)
    db.session.commit()
    doc.title = "b"
    doc.views = 7
    db.session.commit()
    first = doc.versions()[0]

    assert doc.diff(first) == {"title": ("a", "b")}

    doc.body = "y"
    db.session.commit()

    assert doc.diff(first) == {"title": ("a", "b"), "body": ("x", "y")}
    assert doc.diff(doc.versions()[1]) == {"body": ("x", "y")}


def test_diff_against_the_current_instance_mapped(session, Base):
    class Document(Base, Versioned):
        __tablename__ = "document"
        __chrononaut_untracked__ = ["views"]
        id: Mapped[int] = mapped_column(primary_key=True)
        title: Mapped[str]
        body: Mapped[str | None]
        views: Mapped[int]

    Base.metadata.create_all(session.get_bind())
    doc = Document(title="a", body=None, views=0)
    session.add(doc)
    session.commit()
    doc.body = "x"
    session.commit()
    doc.views = 3  # untracked: no version, never in a diff
    session.commit()

    result = doc.diff(doc.versions()[0])

    assert result == {"body": (None, "x")}
    assert "version" not in result
    assert "views" not in result


def test_diff_to_a_later_history_object(session, Base):
    class Document(Base, Versioned):
        __tablename__ = "document"
        id: Mapped[int] = mapped_column(primary_key=True)
        title: Mapped[str]
        body: Mapped[str]

    Base.metadata.create_all(session.get_bind())
    doc = Document(title="a", body="x")
    session.add(doc)
    session.commit()
    for title, body in [("b", "x"), ("b", "y"), ("c", "y")]:
        doc.title, doc.body = title, body
        session.commit()
    v0, v1, v2 = doc.versions()

    assert doc.diff(v0, to=v1) == {"title": ("a", "b")}
    assert doc.diff(v0, to=v2) == {"title": ("a", "b"), "body": ("x", "y")}
    assert doc.diff(v1, to=v2) == {"body": ("x", "y")}
    assert doc.diff(v2) == {"title": ("b", "c")}


def test_diff_of_a_value_changed_back_is_empty(session, Base):
    class Document(Base, Versioned):
        __tablename__ = "document"
        id: Mapped[int] = mapped_column(primary_key=True)
        title: Mapped[str]

    Base.metadata.create_all(session.get_bind())
    doc = Document(title="a")
    session.add(doc)
    session.commit()
    doc.title = "b"
    session.commit()
    doc.title = "a"
    session.commit()

    assert doc.version == 2
    assert doc.diff(doc.versions()[0]) == {}


def test_diff_includes_hidden_columns_changed_since_from_model(session, Base):
    class Account(Base, Versioned):
        __tablename__ = "account"
        __chrononaut_hidden__ = ["password", "pin"]
        id: Mapped[int] = mapped_column(primary_key=True)
        email: Mapped[str]
        password: Mapped[str]
        pin: Mapped[str]

    Base.metadata.create_all(session.get_bind())
    account = Account(email="a@example.com", password="p0", pin="0000")
    session.add(account)
    session.commit()
    account.password = "p1"
    session.commit()
    account.email = "b@example.com"
    session.commit()
    v0, v1 = account.versions()

    assert account.diff(v0, include_hidden=True) == {
        "email": ("a@example.com", "b@example.com"),
        "password": (None, "p1"),
    }
    assert account.diff(v1, include_hidden=True) == {
        "email": ("a@example.com", "b@example.com"),
    }
    assert account.diff(v0) == {"email": ("a@example.com", "b@example.com")}


def test_diff_include_hidden_without_hidden_changes_adds_nothing(db):
    class Account(db.Model, Versioned):
        __tablename__ = "account"
        __chrononaut_hidden__ = ["password"]
        id = db.Column(db.Integer, primary_key=True)
        email = db.Column(db.String(255))
        password = db.Column(db.Text)

    db.create_all()
    account = Account(email="a@example.com", password="p0")
    db.session.add(account)
    db.session.commit()
    account.email = "b@example.com"
    db.session.commit()

    assert account.diff(account.versions()[0], include_hidden=True) == {
        "email": ("a@example.com", "b@example.com"),
    }


def test_diff_of_models_with_different_primary_keys_raises(session, Base):
    class Document(Base, Versioned):
        __tablename__ = "document"
        id: Mapped[int] = mapped_column(primary_key=True)
        title: Mapped[str]

    Base.metadata.create_all(session.get_bind())
    mine, other = Document(title="a"), Document(title="z")
    session.add_all([mine, other])
    session.commit()
    mine.title, other.title = "b", "y"
    session.commit()
    mine.title = "c"
    session.commit()

    with pytest.raises(ChrononautException) as exc_info:
        mine.diff(other.versions()[0])
    assert str(exc_info.value) == "You can only diff models with the same primary keys."

    with pytest.raises(ChrononautException) as exc_info:
        mine.diff(mine.versions()[0], to=other)
    assert str(exc_info.value) == "You can only diff models with the same primary keys."


def test_diff_from_a_non_history_model_raises(session, Base):
    class Document(Base, Versioned):
        __tablename__ = "document"
        id: Mapped[int] = mapped_column(primary_key=True)
        title: Mapped[str]

    Base.metadata.create_all(session.get_bind())
    doc = Document(title="a")
    session.add(doc)
    session.commit()
    doc.title = "b"
    session.commit()

    with pytest.raises(ChrononautException) as exc_info:
        doc.diff(doc)
    assert str(exc_info.value) == "Cannot diff from a non-history model."


def test_diff_that_is_not_chronological_raises(session, Base):
    class Document(Base, Versioned):
        __tablename__ = "document"
        id: Mapped[int] = mapped_column(primary_key=True)
        title: Mapped[str]

    Base.metadata.create_all(session.get_bind())
    doc = Document(title="a")
    session.add(doc)
    session.commit()
    for title in ["b", "c"]:
        doc.title = title
        session.commit()
    v0, v1 = doc.versions()

    with pytest.raises(ChrononautException) as exc_info:
        doc.diff(v1, to=v0)
    assert str(exc_info.value).startswith("Diffs must be chronological.")

    assert str(exc_info.value) == (
        "Diffs must be chronological. Your from_model (version 1) post-dates your to (version 0)."
    )


def test_diff_of_a_version_with_itself_is_empty(session, Base):
    class Document(Base, Versioned):
        __tablename__ = "document"
        __chrononaut_hidden__ = ["secret"]
        id: Mapped[int] = mapped_column(primary_key=True)
        title: Mapped[str]
        secret: Mapped[str]

    Base.metadata.create_all(session.get_bind())
    doc = Document(title="a", secret="s")
    session.add(doc)
    session.commit()
    for title, secret in [("b", "t"), ("c", "u")]:
        doc.title, doc.secret = title, secret
        session.commit()
    v0, v1 = doc.versions()

    assert doc.diff(v1, to=v1) == {}
    assert doc.diff(v0, to=v0, include_hidden=True) == {}
