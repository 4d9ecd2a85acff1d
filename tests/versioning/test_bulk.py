"""ORM bulk statements write history: ``update()``, ``delete()``, ``Query.update/delete``.

Refused statements (explicit ``version``, by primary key, joined inheritance) are in
``test_bulk_edge_cases.py``.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest
import sqlalchemy as sa
from freezegun import freeze_time
from sqlalchemy.orm import Mapped, mapped_column

from chrononaut import HiddenAttributeError, Versioned, extra_change_info, rationale

#: None: the caller passes no synchronize_session at all (SQLAlchemy's default).
SYNCHRONIZE = [None, "auto", "fetch", "evaluate", False]


def run(session, statement, synchronize: Any) -> Any:
    options = {} if synchronize is None else {"synchronize_session": synchronize}
    return session.execute(statement, execution_options=options)


def history(session, model, *keys: str) -> list[tuple[Any, ...]]:
    """``(id, version, *keys)`` of every history row of ``model``, in order."""
    hist = model.__history_mapper__.class_
    columns = [hist.id, hist.version, *(getattr(hist, k) for k in keys)]
    return [tuple(r) for r in session.execute(sa.select(*columns).order_by(hist.id, hist.version))]


def current(session, model, *keys: str) -> list[tuple[Any, ...]]:
    """``(id, version, *keys)`` of every row of ``model`` as stored, in order."""
    columns = [model.__table__.c.id, model.__table__.c.version]
    columns += [model.__table__.c[k] for k in keys]
    return [tuple(r) for r in session.execute(sa.select(*columns).order_by(columns[0]))]


@pytest.mark.parametrize("synchronize", SYNCHRONIZE)
def test_update_statement_writes_one_history_row_per_matched_record(
    Base, engine, session, synchronize
):
    class Item(Base, Versioned):
        __tablename__ = "item"
        id: Mapped[int] = mapped_column(primary_key=True)
        name: Mapped[str]
        colour: Mapped[str]

    Base.metadata.create_all(engine)
    session.add_all([Item(id=1, name="a", colour="blue"), Item(id=2, name="b", colour="blue")])
    session.add(Item(id=3, name="c", colour="green"))
    session.commit()
    loaded = session.scalars(sa.select(Item)).all()

    stmt = sa.update(Item).where(Item.colour == "blue").values(colour="red")
    result = run(session, stmt, synchronize)
    session.commit()

    assert result.rowcount == 2
    assert history(session, Item, "name", "colour") == [(1, 0, "a", "blue"), (2, 0, "b", "blue")]
    assert current(session, Item, "colour") == [(1, 1, "red"), (2, 1, "red"), (3, 0, "green")]
    assert [(i.id, i.version) for i in loaded] == [(1, 1), (2, 1), (3, 0)]


@pytest.mark.parametrize("synchronize", SYNCHRONIZE)
def test_query_update_writes_one_history_row_per_matched_record(db, synchronize):
    class Item(db.Model, Versioned):
        __tablename__ = "item"
        id = db.Column(db.Integer, primary_key=True)
        name = db.Column(db.String(50), nullable=False)
        colour = db.Column(db.String(20))

    db.create_all()
    db.session.add_all([Item(id=1, name="a", colour="blue"), Item(id=2, name="b", colour="blue")])
    db.session.add(Item(id=3, name="c", colour="green"))
    db.session.commit()
    a = db.session.get(Item, 1)

    query = Item.query.filter(Item.colour == "blue")
    if synchronize is None:
        matched = query.update({"colour": "red"})
    else:
        matched = query.update({"colour": "red"}, synchronize_session=synchronize)

    assert matched == 2
    db.session.commit()
    assert (a.version, a.colour) == (1, "red")
    assert history(db.session, Item, "colour") == [(1, 0, "blue"), (2, 0, "blue")]
    assert current(db.session, Item, "colour") == [(1, 1, "red"), (2, 1, "red"), (3, 0, "green")]


@pytest.mark.parametrize("synchronize", SYNCHRONIZE)
def test_delete_statement_writes_one_deletion_row_per_matched_record(
    Base, engine, session, synchronize
):
    class Item(Base, Versioned):
        __tablename__ = "item"
        id: Mapped[int] = mapped_column(primary_key=True)
        name: Mapped[str]

    Base.metadata.create_all(engine)
    a, b, c = Item(id=1, name="a"), Item(id=2, name="b"), Item(id=3, name="c")
    session.add_all([a, b, c])
    session.commit()
    a.name = "a2"
    session.commit()

    result = run(session, sa.delete(Item).where(Item.id < 3), synchronize)

    assert result.rowcount == 2
    session.commit()
    assert history(session, Item, "name") == [(1, 0, "a"), (1, 1, "a2"), (2, 0, "b")]
    hist = Item.__history_mapper__.class_
    rows = session.scalars(sa.select(hist).order_by(hist.id, hist.version)).all()
    assert [r.is_deletion for r in rows] == [False, True, True]
    assert current(session, Item) == [(3, 0)]


@pytest.mark.parametrize("synchronize", SYNCHRONIZE)
def test_query_delete_writes_one_deletion_row_per_matched_record(db, synchronize):
    class Item(db.Model, Versioned):
        __tablename__ = "item"
        id = db.Column(db.Integer, primary_key=True)
        name = db.Column(db.String(50), nullable=False)

    db.create_all()
    db.session.add_all([Item(id=1, name="a"), Item(id=2, name="b"), Item(id=3, name="c")])
    db.session.commit()

    query = Item.query.filter(Item.name != "b")
    matched = query.delete() if synchronize is None else query.delete(synchronize)

    assert matched == 2
    db.session.commit()
    hist = Item.__history_mapper__.class_
    rows = db.session.scalars(sa.select(hist).order_by(hist.id)).all()
    assert [(r.id, r.version, r.name, r.is_deletion) for r in rows] == [
        (1, 0, "a", True),
        (3, 0, "c", True),
    ]
    assert current(db.session, Item) == [(2, 0)]


def test_repeated_expression_updates_bump_version_by_one_each(Base, engine, session):
    class Item(Base, Versioned):
        __tablename__ = "item"
        id: Mapped[int] = mapped_column(primary_key=True)
        name: Mapped[str]

    Base.metadata.create_all(engine)
    session.add_all([Item(id=1, name="a"), Item(id=2, name="b")])
    session.commit()

    for _ in range(2):
        session.execute(sa.update(Item).where(Item.id == 1).values({Item.name: Item.name + "!"}))
    session.commit()

    assert history(session, Item, "name") == [(1, 0, "a"), (1, 1, "a!")]
    assert current(session, Item, "name") == [(1, 2, "a!!"), (2, 0, "b")]
    assert [v.name for v in session.get(Item, 1).versions()] == ["a", "a!"]


def test_update_statement_without_where_versions_every_record(Base, engine, session):
    class Item(Base, Versioned):
        __tablename__ = "item"
        id: Mapped[int] = mapped_column(primary_key=True)
        name: Mapped[str]

    Base.metadata.create_all(engine)
    session.add_all([Item(id=1, name="a"), Item(id=2, name="b")])
    session.commit()

    session.execute(sa.update(Item).values(name="z"))
    session.commit()

    assert history(session, Item, "name") == [(1, 0, "a"), (2, 0, "b")]
    assert current(session, Item, "name") == [(1, 1, "z"), (2, 1, "z")]


def test_update_matching_nothing_writes_nothing(Base, engine, session):
    class Item(Base, Versioned):
        __tablename__ = "item"
        id: Mapped[int] = mapped_column(primary_key=True)
        name: Mapped[str]

    Base.metadata.create_all(engine)
    session.add(Item(id=1, name="a"))
    session.commit()

    result = session.execute(sa.update(Item).where(Item.name == "nobody").values(name="z"))
    session.commit()

    assert result.rowcount == 0
    assert history(session, Item) == []
    assert current(session, Item, "name") == [(1, 0, "a")]


def test_rollback_discards_bulk_changes_and_their_history(Base, engine, session):
    class Item(Base, Versioned):
        __tablename__ = "item"
        id: Mapped[int] = mapped_column(primary_key=True)
        name: Mapped[str]

    Base.metadata.create_all(engine)
    session.add_all([Item(id=1, name="a"), Item(id=2, name="b")])
    session.commit()

    session.execute(sa.update(Item).where(Item.id == 1).values(name="z"))
    session.query(Item).filter(Item.id == 2).delete()
    assert len(history(session, Item)) == 2  # written in the statement's transaction
    session.rollback()

    assert history(session, Item) == []
    assert current(session, Item, "name") == [(1, 0, "a"), (2, 0, "b")]


@pytest.mark.parametrize("style", ["statement", "query"])
def test_bulk_update_of_untracked_column_writes_no_history(db, style):
    class User(db.Model, Versioned):
        __tablename__ = "appuser"
        __chrononaut_untracked__ = ["login_count"]
        __chrononaut_hidden__ = ["password"]
        id = db.Column(db.Integer, primary_key=True)
        name = db.Column(db.String(80))
        password = db.Column(db.Text())
        login_count = db.Column(db.Integer())

    db.create_all()
    db.session.add(User(id=1, name="Ada", password="s3cret", login_count=0))
    db.session.commit()

    if style == "statement":
        db.session.execute(sa.update(User).values(login_count=User.login_count + 1))
    else:
        User.query.filter_by(id=1).update({User.login_count: User.login_count + 1})
    db.session.commit()

    assert history(db.session, User) == []
    assert current(db.session, User, "login_count") == [(1, 0, 1)]


@pytest.mark.parametrize("style", ["statement", "query"])
def test_bulk_update_of_hidden_column_records_hidden_cols_changed(db, style):
    class User(db.Model, Versioned):
        __tablename__ = "appuser"
        __chrononaut_untracked__ = ["login_count"]
        __chrononaut_hidden__ = ["password"]
        id = db.Column(db.Integer, primary_key=True)
        name = db.Column(db.String(80))
        password = db.Column(db.Text())
        login_count = db.Column(db.Integer())

    db.create_all()
    db.session.add(User(id=1, name="Ada", password="s3cret", login_count=0))
    db.session.commit()

    if style == "statement":
        db.session.execute(sa.update(User).where(User.id == 1).values(password="n3w"))
    else:
        User.query.filter_by(id=1).update({"password": "n3w", "login_count": 5})
    db.session.commit()

    [old] = db.session.get(User, 1).versions()
    assert (old.version, old.name) == (0, "Ada")
    assert old.change_info == {
        "user_id": None,
        "remote_addr": None,
        "hidden_cols_changed": ["password"],
    }
    with pytest.raises(HiddenAttributeError) as exc_info:
        _ = old.password
    assert "User.password is hidden" in str(exc_info.value)
    assert current(db.session, User, "password") == [(1, 1, "n3w")]


@freeze_time("2024-05-01 12:30:00")
def test_extra_change_info_and_rationale_apply_to_bulk_statements(Base, engine, session):
    class Item(Base, Versioned):
        __tablename__ = "item"
        id: Mapped[int] = mapped_column(primary_key=True)
        name: Mapped[str]

    Base.metadata.create_all(engine)
    session.add_all([Item(id=1, name="a"), Item(id=2, name="b"), Item(id=3, name="c")])
    session.commit()

    with extra_change_info(ticket="OPS-12"):
        session.execute(sa.update(Item).where(Item.id == 1).values(name="a2"))
        session.commit()
    with rationale("duplicate"):
        session.query(Item).filter(Item.id == 2).delete()
        session.commit()
    session.execute(sa.update(Item).where(Item.id == 3).values(name="c2"))
    session.commit()

    hist = Item.__history_mapper__.class_
    rows = session.scalars(sa.select(hist).order_by(hist.id)).all()
    assert [r.change_info for r in rows] == [
        {"user_id": None, "remote_addr": None, "extra": {"ticket": "OPS-12"}},
        {
            "user_id": None,
            "remote_addr": None,
            "extra": {"rationale": "duplicate"},
            "deleted": True,
        },
        {"user_id": None, "remote_addr": None},
    ]
    assert {r.changed for r in rows} == {datetime(2024, 5, 1, 12, 30, tzinfo=timezone.utc)}


@pytest.mark.parametrize("synchronize", [None, "auto", "fetch", "evaluate"])
@pytest.mark.parametrize("style", ["statement", "query"])
def test_loaded_objects_see_bulk_update_and_new_version(Base, engine, session, style, synchronize):
    class Item(Base, Versioned):
        __tablename__ = "item"
        id: Mapped[int] = mapped_column(primary_key=True)
        colour: Mapped[str]

    Base.metadata.create_all(engine)
    session.add_all([Item(id=1, colour="blue"), Item(id=2, colour="green")])
    session.commit()
    blue, green = session.scalars(sa.select(Item).order_by(Item.id)).all()

    if style == "statement":
        run(session, sa.update(Item).where(Item.id == 1).values(colour="red"), synchronize)
    else:
        options = {} if synchronize is None else {"synchronize_session": synchronize}
        session.query(Item).filter(Item.id == 1).update({"colour": "red"}, **options)

    # No commit, no refresh: the statement itself must update the loaded objects.
    assert (blue.colour, blue.version) == ("red", 1)
    assert (green.colour, green.version) == ("green", 0)


@pytest.mark.parametrize("synchronize", [None, "auto", "fetch", "evaluate"])
def test_loaded_objects_leave_the_session_after_bulk_delete(Base, engine, session, synchronize):
    class Item(Base, Versioned):
        __tablename__ = "item"
        id: Mapped[int] = mapped_column(primary_key=True)
        name: Mapped[str]

    Base.metadata.create_all(engine)
    session.add_all([Item(id=1, name="a"), Item(id=2, name="b")])
    session.commit()
    a, b = session.scalars(sa.select(Item).order_by(Item.id)).all()

    run(session, sa.delete(Item).where(Item.id == 1), synchronize)

    assert a not in session
    assert sa.inspect(a).was_deleted
    assert b in session


def test_editing_a_loaded_object_after_bulk_update_continues_its_history(Base, engine, session):
    class Item(Base, Versioned):
        __tablename__ = "item"
        id: Mapped[int] = mapped_column(primary_key=True)
        name: Mapped[str]
        colour: Mapped[str]

    Base.metadata.create_all(engine)
    item = Item(id=1, name="a", colour="blue")
    session.add(item)
    session.commit()
    session.refresh(item)

    session.execute(sa.update(Item).where(Item.id == 1).values(colour="red"))
    item.name = "b"
    session.commit()

    assert history(session, Item, "name", "colour") == [(1, 0, "a", "blue"), (1, 1, "a", "red")]
    assert current(session, Item, "name", "colour") == [(1, 2, "b", "red")]
