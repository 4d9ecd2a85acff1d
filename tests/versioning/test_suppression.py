"""``suppress_versioning()`` and the immutability of history rows."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from chrononaut import ChrononautException, Versioned, suppress_versioning


def history(session, model, *keys: str) -> list[tuple[Any, ...]]:
    """``(id, version, *keys)`` of every history row of ``model``, in order."""
    hist = model.__history_mapper__.class_
    columns = [hist.id, hist.version, *(getattr(hist, k) for k in keys)]
    return [tuple(r) for r in session.execute(sa.select(*columns).order_by(hist.id, hist.version))]


def current(session, model, *keys: str) -> list[tuple[Any, ...]]:
    """``(id, version, *keys)`` of every row of ``model`` as stored, in order."""
    table = model.__table__
    columns = [table.c.id, table.c.version, *(table.c[k] for k in keys)]
    return [tuple(r) for r in session.execute(sa.select(*columns).order_by(table.c.id))]


def test_flushed_changes_inside_suppress_versioning_write_no_history(Base, engine, session):
    class Item(Base, Versioned):
        __tablename__ = "item"
        id: Mapped[int] = mapped_column(primary_key=True)
        name: Mapped[str]

    Base.metadata.create_all(engine)
    kept, dropped = Item(id=1, name="a"), Item(id=2, name="b")
    session.add_all([kept, dropped])
    session.commit()

    with suppress_versioning():
        kept.name = "a2"
        session.delete(dropped)
        session.add(Item(id=3, name="c"))
        session.commit()

    assert history(session, Item) == []
    assert current(session, Item, "name") == [(1, 0, "a2"), (3, 0, "c")]
    assert kept.version == 0


@pytest.mark.parametrize("form", ["update", "delete", "query_update", "query_delete"])
def test_bulk_statements_inside_suppress_versioning_write_no_history(db, form):
    class Item(db.Model, Versioned):
        __tablename__ = "item"
        id = db.Column(db.Integer, primary_key=True)
        name = db.Column(db.String(50), nullable=False)

    db.create_all()
    db.session.add_all([Item(id=1, name="a"), Item(id=2, name="b")])
    db.session.commit()

    with suppress_versioning():
        if form == "update":
            db.session.execute(sa.update(Item).where(Item.id == 1).values(name="z"))
        elif form == "delete":
            db.session.execute(sa.delete(Item).where(Item.id == 1))
        elif form == "query_update":
            Item.query.filter_by(id=1).update({"name": "z"})
        else:
            Item.query.filter_by(id=1).delete()
        db.session.commit()

    assert history(db.session, Item) == []
    expected = [(2, 0, "b")] if "delete" in form else [(1, 0, "z"), (2, 0, "b")]
    assert current(db.session, Item, "name") == expected


def test_versioning_resumes_after_suppress_versioning_block(Base, engine, session):
    class Item(Base, Versioned):
        __tablename__ = "item"
        id: Mapped[int] = mapped_column(primary_key=True)
        name: Mapped[str]

    Base.metadata.create_all(engine)
    item = Item(id=1, name="a")
    session.add(item)
    session.commit()

    with suppress_versioning():
        item.name = "b"
        session.commit()
    item.name = "c"
    session.commit()
    session.execute(sa.update(Item).values(name="d"))
    session.commit()

    assert history(session, Item, "name") == [(1, 0, "b"), (1, 1, "c")]
    assert current(session, Item, "name") == [(1, 2, "d")]


def test_suppress_versioning_is_restored_when_its_block_raises(Base, engine, session):
    class Item(Base, Versioned):
        __tablename__ = "item"
        id: Mapped[int] = mapped_column(primary_key=True)
        name: Mapped[str]

    Base.metadata.create_all(engine)
    item = Item(id=1, name="a")
    session.add(item)
    session.commit()
    item.name = "b"
    session.commit()

    with (
        pytest.raises(ValueError, match="inside"),
        suppress_versioning(allow_deleting_history=True),
    ):
        raise ValueError("raised inside")
    item.name = "c"
    session.commit()
    session.delete(item.versions()[0])
    with pytest.raises(ChrononautException) as exc_info:
        session.flush()  # deleting history is no longer allowed
    session.rollback()

    assert type(exc_info.value) is ChrononautException
    assert str(exc_info.value) == (
        "Refusing to delete <ItemHistory(id=1, version=0)>: history rows are kept; delete "
        "them only inside suppress_versioning(allow_deleting_history=True)."
    )
    assert history(session, Item, "name") == [(1, 0, "a"), (1, 1, "b")]
    assert current(session, Item, "name") == [(1, 2, "c")]


def test_nested_blocks_restore_the_outer_suppression(Base, engine, session):
    class Item(Base, Versioned):
        __tablename__ = "item"
        id: Mapped[int] = mapped_column(primary_key=True)
        name: Mapped[str]

    Base.metadata.create_all(engine)
    item = Item(id=1, name="a")
    session.add(item)
    session.commit()
    item.name = "b"
    session.commit()
    [old] = item.versions()

    with suppress_versioning():
        with suppress_versioning(allow_deleting_history=True):
            pass
        session.delete(old)
        with pytest.raises(ChrononautException) as exc_info:
            session.flush()  # deleting history is no longer allowed
        session.rollback()
        item.name = "c"
        session.commit()  # still suppressed: no history, no bump

    assert type(exc_info.value) is ChrononautException
    assert str(exc_info.value) == (
        "Refusing to delete <ItemHistory(id=1, version=0)>: history rows are kept; delete "
        "them only inside suppress_versioning(allow_deleting_history=True)."
    )
    assert history(session, Item, "name") == [(1, 0, "a")]
    assert current(session, Item, "name") == [(1, 1, "c")]


@pytest.mark.parametrize("allow_deleting_history", [None, False, True])
def test_modifying_a_history_row_raises_and_writes_nothing(
    Base, engine, session, allow_deleting_history
):
    class Item(Base, Versioned):
        __tablename__ = "item"
        id: Mapped[int] = mapped_column(primary_key=True)
        name: Mapped[str]

    Base.metadata.create_all(engine)
    item = Item(id=1, name="a")
    session.add(item)
    session.commit()
    item.name = "b"
    session.commit()
    [old] = item.versions()

    old.name = "forged"
    with pytest.raises(ChrononautException) as exc_info:
        if allow_deleting_history is None:
            session.commit()
        else:
            with suppress_versioning(allow_deleting_history=allow_deleting_history):
                session.commit()
    session.rollback()

    assert type(exc_info.value) is ChrononautException
    assert str(exc_info.value) == (
        "Refusing to modify <ItemHistory(id=1, version=0)>: history rows are immutable."
    )
    assert history(session, Item, "name") == [(1, 0, "a")]


@pytest.mark.parametrize("suppressed", [False, True])
def test_deleting_a_history_row_raises_and_writes_nothing(db, suppressed):
    class Item(db.Model, Versioned):
        __tablename__ = "item"
        id = db.Column(db.Integer, primary_key=True)
        name = db.Column(db.String(50), nullable=False)

    db.create_all()
    item = Item(id=1, name="a")
    db.session.add(item)
    db.session.commit()
    item.name = "b"
    db.session.commit()

    db.session.delete(item.versions()[0])
    with pytest.raises(ChrononautException) as exc_info:
        if suppressed:
            with suppress_versioning():
                db.session.commit()
        else:
            db.session.commit()
    db.session.rollback()

    assert type(exc_info.value) is ChrononautException
    assert str(exc_info.value) == (
        "Refusing to delete <ItemHistory(id=1, version=0)>: history rows are kept; delete "
        "them only inside suppress_versioning(allow_deleting_history=True)."
    )
    assert history(db.session, Item, "name") == [(1, 0, "a")]


@pytest.mark.parametrize("allow_deleting_history", [None, False, True])
@pytest.mark.parametrize("form", ["update", "query_update"])
def test_bulk_update_of_history_class_raises(Base, engine, session, form, allow_deleting_history):
    class Item(Base, Versioned):
        __tablename__ = "item"
        id: Mapped[int] = mapped_column(primary_key=True)
        name: Mapped[str]

    Base.metadata.create_all(engine)
    item = Item(id=1, name="a")
    session.add(item)
    session.commit()
    item.name = "b"
    session.commit()
    hist = Item.__history_mapper__.class_

    def forge() -> None:
        if form == "update":
            session.execute(sa.update(hist).where(hist.id == 1).values(name="forged"))
        else:
            session.query(hist).filter(hist.id == 1).update({"name": "forged"})

    with pytest.raises(ChrononautException) as exc_info:
        if allow_deleting_history is None:
            forge()
        else:
            with suppress_versioning(allow_deleting_history=allow_deleting_history):
                forge()
    session.commit()

    assert type(exc_info.value) is ChrononautException
    assert str(exc_info.value) == "Refusing to update ItemHistory: history rows are immutable."
    assert history(session, Item, "name") == [(1, 0, "a")]


@pytest.mark.parametrize("suppressed", [False, True])
@pytest.mark.parametrize("form", ["delete", "query_delete"])
def test_bulk_delete_of_history_class_raises(Base, engine, session, form, suppressed):
    class Item(Base, Versioned):
        __tablename__ = "item"
        id: Mapped[int] = mapped_column(primary_key=True)
        name: Mapped[str]

    Base.metadata.create_all(engine)
    item = Item(id=1, name="a")
    session.add(item)
    session.commit()
    item.name = "b"
    session.commit()
    hist = Item.__history_mapper__.class_

    def purge() -> None:
        if form == "delete":
            session.execute(sa.delete(hist).where(hist.id == 1))
        else:
            session.query(hist).filter(hist.id == 1).delete()

    with pytest.raises(ChrononautException) as exc_info:
        if suppressed:
            with suppress_versioning():
                purge()
        else:
            purge()
    session.commit()

    assert type(exc_info.value) is ChrononautException
    assert str(exc_info.value) == (
        "Refusing to delete from ItemHistory: history rows are immutable; delete them only "
        "inside suppress_versioning(allow_deleting_history=True)."
    )
    assert history(session, Item, "name") == [(1, 0, "a")]


def test_history_rows_can_be_deleted_when_allowed(db):
    class User(db.Model, Versioned):
        __tablename__ = "appuser"
        id = db.Column(db.Integer, primary_key=True)
        email = db.Column(db.String(255))

    db.create_all()
    ada, bob = User(id=1, email="ada@a.org"), User(id=2, email="bob@b.org")
    db.session.add_all([ada, bob])
    db.session.commit()
    for n in range(2):
        ada.email, bob.email = f"ada{n}@a.org", f"bob{n}@b.org"
        db.session.commit()

    with suppress_versioning(allow_deleting_history=True):
        for old in ada.versions():
            db.session.delete(old)
        db.session.commit()

    assert ada.versions() == []
    assert [v.email for v in bob.versions()] == ["bob@b.org", "bob0@b.org"]
    assert current(db.session, User, "email") == [(1, 2, "ada1@a.org"), (2, 2, "bob1@b.org")]


@pytest.mark.parametrize("form", ["delete", "query_delete"])
def test_bulk_delete_of_history_rows_when_allowed(Base, engine, session, form):
    class Item(Base, Versioned):
        __tablename__ = "item"
        id: Mapped[int] = mapped_column(primary_key=True)
        name: Mapped[str]

    Base.metadata.create_all(engine)
    a, b = Item(id=1, name="a"), Item(id=2, name="b")
    session.add_all([a, b])
    session.commit()
    a.name, b.name = "a2", "b2"
    session.commit()
    hist = Item.__history_mapper__.class_

    with suppress_versioning(allow_deleting_history=True):
        if form == "delete":
            result = session.execute(sa.delete(hist).where(hist.id == 1))
            purged = result.rowcount
        else:
            purged = session.query(hist).filter(hist.id == 1).delete()
        session.commit()

    assert purged == 1
    assert history(session, Item, "name") == [(2, 0, "b")]
    assert current(session, Item, "name") == [(1, 1, "a2"), (2, 1, "b2")]


@pytest.mark.parametrize("form", ["update", "delete"])
def test_core_statement_on_history_table_through_session_raises(Base, engine, session, form):
    class Item(Base, Versioned):
        __tablename__ = "item"
        id: Mapped[int] = mapped_column(primary_key=True)
        name: Mapped[str]

    Base.metadata.create_all(engine)
    item = Item(id=1, name="a")
    session.add(item)
    session.commit()
    item.name = "b"
    session.commit()
    table = Item.__history_mapper__.local_table

    with pytest.raises(ChrononautException) as exc_info:
        if form == "update":
            session.execute(sa.update(table).values(name="forged"))
        else:
            session.execute(sa.delete(table))
    session.commit()

    expected = {
        "update": "Refusing to update item_history: history rows are immutable.",
        "delete": (
            "Refusing to delete from item_history: history rows are immutable; delete them "
            "only inside suppress_versioning(allow_deleting_history=True)."
        ),
    }
    assert type(exc_info.value) is ChrononautException
    assert str(exc_info.value) == expected[form]
    assert history(session, Item, "name") == [(1, 0, "a")]
