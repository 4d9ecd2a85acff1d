"""extra_change_info, rationale, append_change_info and strict mode, without Flask."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, sessionmaker

import chrononaut
from chrononaut import (
    ChrononautException,
    Settings,
    Versioned,
    append_change_info,
    extra_change_info,
    rationale,
)


def history_of(session, model) -> list[Any]:
    history_cls = model.__history_mapper__.class_
    return session.scalars(sa.select(history_cls).order_by(history_cls.version)).all()


def test_extra_change_info_lands_in_every_version_written_inside(Base, engine, session):
    class Ticket(Base, Versioned):
        __tablename__ = "ticket"
        id: Mapped[int] = mapped_column(primary_key=True)
        title: Mapped[str]

    Base.metadata.create_all(engine)
    first, second = Ticket(title="a"), Ticket(title="b")
    session.add_all([first, second])
    session.commit()
    with extra_change_info(ticket="OPS-12", attempt=2):
        first.title = "a2"
        second.title = "b2"
        session.commit()
        first.title = "a3"
        session.commit()

    infos = [h.change_info for h in history_of(session, Ticket)]
    expected = {
        "user_id": None,
        "remote_addr": None,
        "extra": {"ticket": "OPS-12", "attempt": 2},
    }
    assert infos == [expected, expected, expected]


def test_nested_extra_change_info_merges_and_inner_keys_win(Base, engine, session):
    class Ticket(Base, Versioned):
        __tablename__ = "ticket"
        id: Mapped[int] = mapped_column(primary_key=True)
        title: Mapped[str]

    Base.metadata.create_all(engine)
    ticket = Ticket(title="a")
    session.add(ticket)
    session.commit()
    with extra_change_info(source="import", batch=1):
        with extra_change_info(batch=2, row=17):
            ticket.title = "inner"
            session.commit()
        ticket.title = "outer"
        session.commit()

    inner, outer = history_of(session, Ticket)
    assert inner.change_info["extra"] == {"source": "import", "batch": 2, "row": 17}
    assert outer.change_info["extra"] == {"source": "import", "batch": 1}


def test_extra_change_info_is_restored_after_the_block(Base, engine, session):
    class Ticket(Base, Versioned):
        __tablename__ = "ticket"
        id: Mapped[int] = mapped_column(primary_key=True)
        title: Mapped[str]

    Base.metadata.create_all(engine)
    ticket = Ticket(title="a")
    session.add(ticket)
    session.commit()
    with extra_change_info(ticket="OPS-12"):
        ticket.title = "b"  # committed only after the block: no extra info
    session.commit()

    [old] = history_of(session, Ticket)
    assert old.change_info == {"user_id": None, "remote_addr": None}


def test_extra_change_info_is_restored_when_the_block_raises(Base, engine, session):
    class Ticket(Base, Versioned):
        __tablename__ = "ticket"
        id: Mapped[int] = mapped_column(primary_key=True)
        title: Mapped[str]

    Base.metadata.create_all(engine)
    ticket = Ticket(title="a")
    session.add(ticket)
    session.commit()
    with pytest.raises(RuntimeError) as exc_info, extra_change_info(ticket="OPS-12"):
        raise RuntimeError("boom")
    assert str(exc_info.value) == "boom"
    ticket.title = "b"
    session.commit()

    [old] = history_of(session, Ticket)
    assert "extra" not in old.change_info


def test_rationale_is_extra_change_info_with_a_rationale_key(Base, engine, session):
    class Ticket(Base, Versioned):
        __tablename__ = "ticket"
        id: Mapped[int] = mapped_column(primary_key=True)
        title: Mapped[str]

    Base.metadata.create_all(engine)
    ticket = Ticket(title="a")
    session.add(ticket)
    session.commit()
    with rationale("Customer asked by phone"):
        ticket.title = "b"
        session.commit()
    with extra_change_info(rationale="Customer asked by phone"):
        ticket.title = "c"
        session.commit()

    by_rationale, by_extra = history_of(session, Ticket)
    assert by_rationale.change_info == by_extra.change_info
    assert by_rationale.change_info["extra"] == {"rationale": "Customer asked by phone"}


@pytest.mark.parametrize("text", [None, 42, b"bytes"])
def test_rationale_rejects_a_non_str(text):
    with pytest.raises(TypeError) as exc_info:
        rationale(text)
    assert "rationale() takes a str" in str(exc_info.value)
    assert repr(text) in str(exc_info.value)


def test_append_change_info_applies_to_that_objects_next_version_only(Base, engine, session):
    class Ticket(Base, Versioned):
        __tablename__ = "ticket"
        id: Mapped[int] = mapped_column(primary_key=True)
        title: Mapped[str]

    Base.metadata.create_all(engine)
    target, bystander = Ticket(id=1, title="a"), Ticket(id=2, title="x")
    session.add_all([target, bystander])
    session.commit()
    with append_change_info(target, reason="merge of duplicates"):
        target.title = "b"
    bystander.title = "y"
    session.commit()  # after the block
    target.title = "c"
    session.commit()

    target_history = target.versions()
    assert [h.change_info.get("extra") for h in target_history] == [
        {"reason": "merge of duplicates"},
        None,
    ]
    [bystander_old] = bystander.versions()
    assert "extra" not in bystander_old.change_info


def test_append_change_info_combines_with_extra_change_info(Base, engine, session):
    class Ticket(Base, Versioned):
        __tablename__ = "ticket"
        id: Mapped[int] = mapped_column(primary_key=True)
        title: Mapped[str]

    Base.metadata.create_all(engine)
    ticket = Ticket(title="a")
    session.add(ticket)
    session.commit()
    with extra_change_info(batch=3, reason="bulk"), append_change_info(ticket, reason="dup"):
        ticket.title = "b"
        session.commit()

    [old] = history_of(session, Ticket)
    assert old.change_info["extra"] == {"batch": 3, "reason": "dup"}


def test_append_change_info_is_restored_when_the_block_raises(Base, engine, session):
    class Ticket(Base, Versioned):
        __tablename__ = "ticket"
        id: Mapped[int] = mapped_column(primary_key=True)
        title: Mapped[str]

    Base.metadata.create_all(engine)
    ticket = Ticket(title="a")
    session.add(ticket)
    session.commit()
    with append_change_info(ticket, first="kept"):
        pass
    with pytest.raises(RuntimeError), append_change_info(ticket, second="dropped"):
        raise RuntimeError("boom")
    ticket.title = "b"
    session.commit()

    [old] = history_of(session, Ticket)
    assert old.change_info["extra"] == {"first": "kept"}


def test_append_change_info_dropped_entirely_when_the_only_block_raises(Base, engine, session):
    class Ticket(Base, Versioned):
        __tablename__ = "ticket"
        id: Mapped[int] = mapped_column(primary_key=True)
        title: Mapped[str]

    Base.metadata.create_all(engine)
    ticket = Ticket(title="a")
    session.add(ticket)
    session.commit()
    with pytest.raises(RuntimeError), append_change_info(ticket, reason="dropped"):
        ticket.title = "b"
        raise RuntimeError("boom")
    session.commit()

    [old] = history_of(session, Ticket)
    assert "extra" not in old.change_info


@pytest.mark.parametrize(
    "value",
    [datetime(2024, 1, 1, tzinfo=timezone.utc), object(), {1, 2}],
    ids=["datetime", "object", "set"],
)
@pytest.mark.parametrize("manager", ["extra_change_info", "append_change_info"])
def test_non_json_value_raises_before_anything_is_written(Base, engine, session, value, manager):
    class Ticket(Base, Versioned):
        __tablename__ = "ticket"
        id: Mapped[int] = mapped_column(primary_key=True)
        title: Mapped[str]

    Base.metadata.create_all(engine)
    ticket = Ticket(title="a")
    session.add(ticket)
    session.commit()
    if manager == "extra_change_info":
        block = extra_change_info(when=value)
    else:
        block = append_change_info(ticket, when=value)
    body_ran = False
    with pytest.raises(ChrononautException) as exc_info, block:
        body_ran = True  # pragma: no cover
        ticket.title = "b"  # pragma: no cover
        session.commit()  # pragma: no cover

    assert not body_ran
    assert f"{manager}() must be JSON-serialisable" in str(exc_info.value)
    assert repr(value) in str(exc_info.value)
    assert history_of(session, Ticket) == []
    assert chrononaut.context.current_extra_info() == {}
    ticket.title = "c"
    session.commit()
    [old] = history_of(session, Ticket)
    assert "extra" not in old.change_info


@pytest.fixture
def strict_factory(engine):
    factory = sessionmaker(engine)
    chrononaut.listen(factory, settings=Settings(require_extra_change_info=True))
    return factory


def test_strict_mode_refuses_an_update_without_extra_info(Base, engine, strict_factory):
    class Ticket(Base, Versioned):
        __tablename__ = "ticket"
        id: Mapped[int] = mapped_column(primary_key=True)
        title: Mapped[str]

    Base.metadata.create_all(engine)
    with strict_factory() as session:
        session.add(Ticket(id=1, title="a"))
        session.commit()  # inserts are allowed
        ticket = session.get(Ticket, 1)
        ticket.title = "b"
        with pytest.raises(ChrononautException) as exc_info:
            session.flush()
        session.rollback()
        assert "Ticket" in str(exc_info.value)
        assert "CHRONONAUT_REQUIRE_EXTRA_CHANGE_INFO" in str(exc_info.value)
        stored = session.get(Ticket, 1)
        assert (stored.title, stored.version) == ("a", 0)
        assert history_of(session, Ticket) == []


def test_strict_mode_refuses_a_delete_without_extra_info(Base, engine, strict_factory):
    class Ticket(Base, Versioned):
        __tablename__ = "ticket"
        id: Mapped[int] = mapped_column(primary_key=True)
        title: Mapped[str]

    Base.metadata.create_all(engine)
    with strict_factory() as session:
        session.add(Ticket(id=1, title="a"))
        session.commit()
        session.delete(session.get(Ticket, 1))
        with pytest.raises(ChrononautException) as exc_info:
            session.commit()
        session.rollback()
        assert "CHRONONAUT_REQUIRE_EXTRA_CHANGE_INFO" in str(exc_info.value)
        assert session.get(Ticket, 1) is not None
        assert history_of(session, Ticket) == []


def test_strict_mode_accepts_changes_with_extra_info(Base, engine, strict_factory):
    class Ticket(Base, Versioned):
        __tablename__ = "ticket"
        id: Mapped[int] = mapped_column(primary_key=True)
        title: Mapped[str]

    Base.metadata.create_all(engine)
    with strict_factory() as session:
        session.add_all([Ticket(id=1, title="a"), Ticket(id=2, title="x")])
        session.commit()
        first, second = session.get(Ticket, 1), session.get(Ticket, 2)
        with rationale("fix typo"):
            first.title = "b"
            session.commit()
        with append_change_info(second, reason="duplicate"):
            session.delete(second)
        session.commit()

        by_rationale, by_append = history_of(session, Ticket)
        assert by_rationale.change_info["extra"] == {"rationale": "fix typo"}
        assert by_append.change_info["extra"] == {"reason": "duplicate"}
        assert session.get(Ticket, 2) is None
