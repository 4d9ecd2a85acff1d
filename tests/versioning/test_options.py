"""Model options: misconfiguration at mapping time, validators, non-unique primary keys
and relationships.

The schema the options produce is in ``test_history_schema.py``.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship, validates

from chrononaut import ChrononautException, ConfigurationError, Versioned


def history_of(session, model) -> list:
    history_cls = model.__history_mapper__.class_
    return session.scalars(sa.select(history_cls).order_by(history_cls.version)).all()


def declare(Base, name: str, **namespace) -> type:
    """Declare ``name(Base, Versioned)`` from a namespace whose keys vary by test."""
    return type(name, (Base, Versioned), namespace)


@pytest.mark.parametrize(
    "option",
    ["__chrononaut_hidden__", "__chrononaut_untracked__", "__chrononaut_disable_indices__"],
)
def test_unknown_column_in_option_raises_at_class_definition(Base, option):
    with pytest.raises(ConfigurationError) as exc_info:
        declare(
            Base,
            "Account",
            __tablename__="account",
            id=mapped_column(sa.Integer, primary_key=True),
            password=mapped_column(sa.Text),
            **{option: ["pasword"]},
        )

    error = exc_info.value
    assert isinstance(error, ChrononautException)
    assert isinstance(error, ValueError)
    assert "'pasword'" in str(error)
    assert option in str(error)
    assert "Account" in str(error)


def test_classic_misspelled_hidden_column_raises_at_class_definition(db):
    with pytest.raises(ConfigurationError) as exc_info:

        class User(db.Model, Versioned):
            __tablename__ = "appuser"
            __chrononaut_hidden__ = ["passwd"]
            id = db.Column(db.Integer, primary_key=True)
            password = db.Column(db.Text)

    assert "'passwd'" in str(exc_info.value)
    assert "__chrononaut_hidden__" in str(exc_info.value)


def test_option_given_as_a_string_raises_configuration_error(Base):
    with pytest.raises(ConfigurationError) as exc_info:

        class Account(Base, Versioned):
            __tablename__ = "account"
            __chrononaut_hidden__ = "password"
            id: Mapped[int] = mapped_column(primary_key=True)
            password: Mapped[str]

    assert "'password'" in str(exc_info.value)
    assert "list of column names" in str(exc_info.value)


def test_column_both_hidden_and_untracked_raises(Base):
    with pytest.raises(ConfigurationError) as exc_info:

        class Account(Base, Versioned):
            __tablename__ = "account"
            __chrononaut_hidden__ = ["password"]
            __chrononaut_untracked__ = ["password", "login_count"]
            id: Mapped[int] = mapped_column(primary_key=True)
            password: Mapped[str]
            login_count: Mapped[int]

    message = str(exc_info.value)
    assert "'password'" in message
    assert "'login_count'" not in message
    assert "__chrononaut_hidden__" in message
    assert "__chrononaut_untracked__" in message


@pytest.mark.parametrize("option", ["__chrononaut_hidden__", "__chrononaut_untracked__"])
def test_primary_key_cannot_be_hidden_or_untracked(Base, option):
    with pytest.raises(ConfigurationError) as exc_info:
        declare(
            Base,
            "Account",
            __tablename__="account",
            account_no=mapped_column(sa.Integer, primary_key=True),
            email=mapped_column(sa.Text),
            **{option: ["account_no"]},
        )

    assert "'account_no'" in str(exc_info.value)
    assert "primary key" in str(exc_info.value)


@pytest.mark.parametrize("name", ["changed", "change_info"])
def test_model_column_named_like_a_history_meta_column_raises(Base, name):
    with pytest.raises(ConfigurationError) as exc_info:
        declare(
            Base,
            "Event",
            __tablename__="event",
            id=mapped_column(sa.Integer, primary_key=True),
            **{name: mapped_column(sa.String(40))},
        )

    assert repr(name) in str(exc_info.value)
    assert "Event" in str(exc_info.value)


def test_classic_column_named_changed_under_another_attribute_raises(db):
    with pytest.raises(ConfigurationError) as exc_info:

        class Event(db.Model, Versioned):
            __tablename__ = "event"
            id = db.Column(db.Integer, primary_key=True)
            changed_at = db.Column("changed", db.DateTime(timezone=True))

    assert "'changed'" in str(exc_info.value)
    assert "Event" in str(exc_info.value)


class _Lowercase:
    """``@validates`` that lowercases an email and rejects one without '@'."""

    @validates("email")
    def _check_email(self, key, value):
        if "@" not in value:
            raise ValueError(f"{key} needs an @, got {value!r}")
        return value.lower()


def test_validators_are_not_applied_to_history_objects(Base):
    class Member(_Lowercase, Base, Versioned):
        __tablename__ = "member"
        id: Mapped[int] = mapped_column(primary_key=True)
        email: Mapped[str]

    assert Member(email="Ada@Example.com").email == "ada@example.com"
    history = Member.__history_mapper__.class_()
    history.email = "NOT AN EMAIL"
    assert history.email == "NOT AN EMAIL"


def test_classic_validators_are_not_applied_to_history_objects(db):
    class Member(db.Model, Versioned):
        __tablename__ = "member"
        id = db.Column(db.Integer, primary_key=True)
        email = db.Column(db.String(80))

        @validates("email")
        def _check_email(self, key, value):
            return value.lower()

    assert Member(email="Ada@Example.com").email == "ada@example.com"
    history = Member.__history_mapper__.class_()
    history.email = "Ada@Example.com"
    assert history.email == "Ada@Example.com"


def test_copy_validators_applies_validators_to_history_objects(Base):
    class Member(_Lowercase, Base, Versioned):
        __tablename__ = "member"
        __chrononaut_copy_validators__ = True
        id: Mapped[int] = mapped_column(primary_key=True)
        email: Mapped[str]

    history = Member.__history_mapper__.class_()
    history.email = "Ada@Example.com"
    assert history.email == "ada@example.com"
    with pytest.raises(ValueError) as exc_info:
        history.email = "NOT AN EMAIL"
    assert "'NOT AN EMAIL'" in str(exc_info.value)


def test_classic_copy_validators_applies_validators_to_history_objects(db):
    class Member(db.Model, Versioned):
        __tablename__ = "member"
        __chrononaut_copy_validators__ = True
        id = db.Column(db.Integer, primary_key=True)
        email = db.Column(db.String(80))

        @validates("email")
        def _check_email(self, key, value):
            return value.lower()

    history = Member.__history_mapper__.class_()
    history.email = "Ada@Example.com"
    assert history.email == "ada@example.com"


def test_primary_key_nonunique_continues_version_numbering_after_reinsert(Base, engine, session):
    class Slot(Base, Versioned):
        __tablename__ = "slot"
        __chrononaut_primary_key_nonunique__ = True
        id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
        label: Mapped[str]

    Base.metadata.create_all(engine)
    session.add(Slot(id=7, label="first"))
    session.commit()
    session.get(Slot, 7).label = "second"
    session.commit()
    session.delete(session.get(Slot, 7))
    session.commit()

    again = Slot(id=7, label="reborn")
    session.add(again)
    session.commit()
    assert again.version == 2
    again.label = "reborn, edited"
    session.commit()

    rows = [(h.version, h.label, h.is_deletion) for h in history_of(session, Slot)]
    assert rows == [
        (0, "first", False),
        (1, "second", True),
        (2, "reborn", False),
    ]
    assert again.version == 3
    assert [h.version for h in again.versions()] == [0, 1, 2]


def test_classic_primary_key_nonunique_continues_version_numbering(db):
    class Slot(db.Model, Versioned):
        __tablename__ = "slot"
        __chrononaut_primary_key_nonunique__ = True
        id = db.Column(db.Integer, primary_key=True, autoincrement=False)
        label = db.Column(db.String(40))

    db.create_all()
    db.session.add(Slot(id=7, label="first"))
    db.session.commit()
    db.session.delete(db.session.get(Slot, 7))
    db.session.commit()
    db.session.add(Slot(id=7, label="reborn"))
    db.session.commit()

    assert db.session.get(Slot, 7).version == 1


def test_reinserted_primary_key_without_nonunique_continues_numbering(Base, engine, session):
    """The numbering continues by default (the option is no longer needed)."""

    class Slot(Base, Versioned):
        __tablename__ = "slot"
        id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
        label: Mapped[str]

    Base.metadata.create_all(engine)
    session.add(Slot(id=7, label="first"))
    session.commit()
    session.delete(session.get(Slot, 7))
    session.commit()
    again = Slot(id=7, label="reborn")
    session.add(again)
    session.commit()
    assert again.version == 1

    again.label = "reborn, edited"
    session.commit()
    assert [(h.version, h.label) for h in history_of(session, Slot)] == [
        (0, "first"),
        (1, "reborn"),
    ]


def test_many_to_one_change_writes_history_with_old_foreign_key(Base, engine, session):
    class Team(Base):
        __tablename__ = "team"
        id: Mapped[int] = mapped_column(primary_key=True)
        name: Mapped[str]

    class Player(Base, Versioned):
        __tablename__ = "player"
        id: Mapped[int] = mapped_column(primary_key=True)
        name: Mapped[str]
        team_id: Mapped[int] = mapped_column(sa.ForeignKey("team.id"))
        team: Mapped[Team] = relationship()

    Base.metadata.create_all(engine)
    reds, blues = Team(id=1, name="reds"), Team(id=2, name="blues")
    player = Player(id=1, name="Ada", team=reds)
    session.add_all([reds, blues, player])
    session.commit()

    player.team = blues
    session.commit()

    [old] = history_of(session, Player)
    assert (old.version, old.team_id, old.name) == (0, 1, "Ada")
    assert (player.version, player.team_id) == (1, 2)
    history_mapper = Player.__history_mapper__
    assert "team" not in history_mapper.relationships
    assert sa.inspect(engine).get_foreign_keys("player_history") == []


def test_classic_many_to_one_change_writes_history_with_old_foreign_key(db):
    class Team(db.Model):
        __tablename__ = "team"
        id = db.Column(db.Integer, primary_key=True)

    class Player(db.Model, Versioned):
        __tablename__ = "player"
        id = db.Column(db.Integer, primary_key=True)
        team_id = db.Column(db.Integer, db.ForeignKey("team.id"))
        team = db.relationship(Team)

    db.create_all()
    reds, blues = Team(id=1), Team(id=2)
    db.session.add_all([reds, blues, Player(id=1, team=reds)])
    db.session.commit()

    db.session.get(Player, 1).team = blues
    db.session.commit()

    assert [(h.version, h.team_id) for h in history_of(db.session, Player)] == [(0, 1)]
