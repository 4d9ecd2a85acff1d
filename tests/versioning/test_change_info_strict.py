"""change_info, exactly: reserved keys, strict JSON, strict mode that means it.

Without Flask; the config parsing of strict mode is in ``tests/flask/test_config_booleans.py``.
"""

from __future__ import annotations

import math
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
from chrononaut.versioning.change_info import RESERVED_KEYS


def history_of(session, model) -> list[Any]:
    history_cls = model.__history_mapper__.class_
    return session.scalars(sa.select(history_cls).order_by(history_cls.version)).all()


@pytest.fixture
def Ticket(Base, engine):
    class Ticket(Base, Versioned):
        __tablename__ = "ticket"
        id: Mapped[int] = mapped_column(primary_key=True)
        title: Mapped[str]

    Base.metadata.create_all(engine)
    return Ticket


def factory_with(engine, **settings: Any) -> sessionmaker:
    factory = sessionmaker(engine)
    chrononaut.listen(factory, settings=Settings(**settings))
    return factory


def test_reserved_keys_cover_every_top_level_key_chrononaut_writes():
    assert {"user_id", "remote_addr", "deleted", "extra", "hidden_cols_changed"} <= RESERVED_KEYS
    assert {"lease_broken", "relationships", "source", "db_user", "application_name"} <= (
        RESERVED_KEYS
    )


def test_extra_change_info_func_cannot_overwrite_reserved_keys(Ticket, engine):
    def func():
        return {"user_id": "mallory", "remote_addr": "6.6.6.6", "deleted": True, "app": "cms"}

    factory = factory_with(engine, extra_change_info_func=func)
    with factory() as session, chrononaut.acting_as("ada"):
        ticket = Ticket(id=1, title="a")
        session.add(ticket)
        session.commit()
        with extra_change_info(ticket="OPS-1"):
            ticket.title = "b"
            session.commit()
        [old] = history_of(session, Ticket)
        assert old.change_info == {
            "user_id": "ada",
            "remote_addr": None,
            "app": "cms",
            "extra": {
                "user_id": "mallory",
                "remote_addr": "6.6.6.6",
                "deleted": True,
                "ticket": "OPS-1",
            },
        }
        assert not old.is_deletion


def test_extra_change_info_func_extra_key_goes_under_extra_and_given_info_wins(Ticket, engine):
    factory = factory_with(
        engine,
        extra_change_info_func=lambda: {"extra": "x", "ticket": "func", "hidden_cols_changed": 1},
    )
    with factory() as session:
        ticket = Ticket(id=1, title="a")
        session.add(ticket)
        session.commit()
        with extra_change_info(ticket="given"):
            ticket.title = "b"
            session.commit()
        [old] = history_of(session, Ticket)
        assert old.change_info["extra"] == {
            "extra": "x",
            "hidden_cols_changed": 1,
            "ticket": "given",
        }
        assert old.change_info["ticket"] == "func"
        assert "hidden_cols_changed" not in old.change_info


@pytest.mark.parametrize("returned", [None, ["a", 1], "cms", 42], ids=repr)
def test_extra_change_info_func_returning_a_non_dict_raises_naming_the_key(
    Ticket, engine, returned
):
    factory = factory_with(engine, extra_change_info_func=lambda: returned)
    with factory() as session:
        # An insert records its creation event with the same change_info: refused too.
        session.add(Ticket(id=1, title="a"))
        with pytest.raises(ChrononautException) as exc_info:
            session.commit()
        session.rollback()
        assert str(exc_info.value) == (
            f"CHRONONAUT_EXTRA_CHANGE_INFO_FUNC() must return a dict, got {returned!r}; "
            "return {} to add nothing."
        )
        assert session.scalar(sa.select(sa.func.count()).select_from(Ticket)) == 0
        assert history_of(session, Ticket) == []


NOT_STRICT_JSON = [
    float("nan"),
    math.inf,
    -math.inf,
    {"nested": [1.0, float("nan")]},
    "a\x00b",
    ["ok", {"deep": "x\x00"}],
    {"key\x00": 1},
]


@pytest.mark.parametrize("value", NOT_STRICT_JSON, ids=repr)
@pytest.mark.parametrize("manager", ["extra_change_info", "append_change_info"])
def test_nan_infinity_and_nul_are_refused_at_the_with_line(Ticket, session, value, manager):
    ticket = Ticket(id=1, title="a")
    session.add(ticket)
    session.commit()
    block = (
        extra_change_info(v=value)
        if manager == "extra_change_info"
        else append_change_info(ticket, v=value)
    )
    with pytest.raises(ChrononautException) as exc_info, block:
        pass  # pragma: no cover
    assert f"{manager}() must be JSON-serialisable" in str(exc_info.value)
    ticket.title = "b"
    session.commit()
    [old] = history_of(session, Ticket)
    assert "extra" not in old.change_info


def test_nan_from_extra_change_info_func_is_refused_naming_the_key(Ticket, engine):
    factory = factory_with(engine, extra_change_info_func=lambda: {"load": float("nan")})
    with factory() as session:
        session.add(Ticket(id=1, title="a"))  # the creation event carries the same info
        with pytest.raises(ChrononautException) as exc_info:
            session.commit()
        session.rollback()
        assert "CHRONONAUT_EXTRA_CHANGE_INFO_FUNC() must be JSON-serialisable" in str(
            exc_info.value
        )


@pytest.mark.parametrize(
    "block",
    [
        lambda t: rationale(""),
        lambda t: rationale("   "),
        lambda t: extra_change_info(x=None),
        lambda t: extra_change_info(x="", y=[], z={}),
        lambda t: append_change_info(t, reason=None),
    ],
    ids=["rationale-empty", "rationale-blank", "none", "empties", "append-none"],
)
def test_strict_mode_is_not_satisfied_by_empty_info(Ticket, engine, block):
    factory = factory_with(engine, require_extra_change_info=True)
    with factory() as session:
        session.add(Ticket(id=1, title="a"))
        session.commit()
        ticket = session.get(Ticket, 1)
        with block(ticket):
            ticket.title = "b"
            with pytest.raises(ChrononautException) as exc_info:
                session.flush()
        session.rollback()
        assert "CHRONONAUT_REQUIRE_EXTRA_CHANGE_INFO" in str(exc_info.value)
        assert history_of(session, Ticket) == []


@pytest.mark.parametrize("value", [0, False, "x", [None, 1]], ids=repr)
def test_strict_mode_is_satisfied_by_info_that_says_something(Ticket, engine, value):
    factory = factory_with(engine, require_extra_change_info=True)
    with factory() as session:
        session.add(Ticket(id=1, title="a"))
        session.commit()
        ticket = session.get(Ticket, 1)
        with extra_change_info(x=value):
            ticket.title = "b"
            session.commit()
        [old] = history_of(session, Ticket)
        assert old.change_info["extra"] == {"x": value}
