"""``append_change_info`` is kept until a version is actually written.

A flush that carried it and was then rolled back (a savepoint, a failed
commit) wrote nothing, so the info waits for the change's next flush.
"""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, sessionmaker

import chrononaut
from chrononaut import ChrononautException, Settings, Versioned, append_change_info


def extras(session, model) -> list[Any]:
    history_cls = model.__history_mapper__.class_
    rows = session.scalars(sa.select(history_cls).order_by(history_cls.version)).all()
    return [row.change_info.get("extra") for row in rows]


@pytest.fixture
def Ticket(Base, engine):
    class Ticket(Base, Versioned):
        __tablename__ = "ticket"
        id: Mapped[int] = mapped_column(primary_key=True)
        title: Mapped[str]

    Base.metadata.create_all(engine)
    return Ticket


def test_append_change_info_survives_a_rolled_back_savepoint(Ticket, session):
    ticket = Ticket(id=1, title="a")
    session.add(ticket)
    session.commit()
    savepoint = session.begin_nested()
    with append_change_info(ticket, reason="merge"):
        ticket.title = "b"
    session.flush()
    savepoint.rollback()
    assert extras(session, Ticket) == []
    ticket.title = "b"
    session.commit()
    ticket.title = "c"
    session.commit()

    assert extras(session, Ticket) == [{"reason": "merge"}, None]


def test_append_change_info_survives_a_failed_commit(Ticket, session):
    ticket = Ticket(id=1, title="a")
    session.add(ticket)
    session.commit()
    with append_change_info(ticket, reason="merge"):
        ticket.title = "b"
    session.execute(sa.text("CREATE UNIQUE INDEX ticket_title ON ticket (title)"))
    session.execute(sa.text("INSERT INTO ticket (id, title, version) VALUES (2, 'b', 0)"))
    with pytest.raises(sa.exc.IntegrityError):
        session.commit()
    session.rollback()
    ticket.title = "b"
    session.commit()

    assert extras(session, Ticket) == [{"reason": "merge"}]


def test_append_change_info_after_a_rollback_merges_with_newer_info(Ticket, session):
    ticket = Ticket(id=1, title="a")
    session.add(ticket)
    session.commit()
    savepoint = session.begin_nested()
    with append_change_info(ticket, reason="merge", ticket="OPS-1"):
        ticket.title = "b"
    session.flush()
    savepoint.rollback()
    with append_change_info(ticket, ticket="OPS-2"):
        ticket.title = "b"
    session.commit()

    assert extras(session, Ticket) == [{"reason": "merge", "ticket": "OPS-2"}]


def test_append_change_info_kept_for_a_rollback_satisfies_strict_mode(Ticket, engine):
    factory = sessionmaker(engine)
    chrononaut.listen(factory, settings=Settings(require_extra_change_info=True))
    with factory() as session:
        session.add(Ticket(id=1, title="a"))
        session.commit()
        ticket = session.get(Ticket, 1)
        savepoint = session.begin_nested()
        with append_change_info(ticket, reason="merge"):
            ticket.title = "b"
        session.flush()
        savepoint.rollback()
        ticket.title = "b"
        session.commit()
        ticket.title = "c"
        with pytest.raises(ChrononautException):
            session.flush()  # the info went with version 0: none left for this one
        session.rollback()

        assert extras(session, Ticket) == [{"reason": "merge"}]


def test_append_change_info_of_two_flushes_survives_the_rollback_of_their_transaction(
    Ticket, session
):
    ticket = Ticket(id=1, title="a")
    session.add(ticket)
    session.commit()
    with append_change_info(ticket, reason="first"):
        ticket.title = "b"
    session.flush()  # writes version 0 with "first"
    with append_change_info(ticket, ticket="OPS-7"):
        ticket.title = "c"
    session.flush()  # writes version 1 with "OPS-7"
    session.rollback()  # neither was written
    assert extras(session, Ticket) == []
    ticket.title = "c"
    session.commit()
    ticket.title = "d"
    session.commit()

    assert extras(session, Ticket) == [{"reason": "first", "ticket": "OPS-7"}, None]


def test_append_change_info_of_committed_versions_is_not_repeated(Ticket, session):
    ticket = Ticket(id=1, title="a")
    session.add(ticket)
    session.commit()
    with append_change_info(ticket, reason="first"):
        ticket.title = "b"
    session.commit()  # version 0 written with "first"
    savepoint = session.begin_nested()
    with append_change_info(ticket, reason="second"):
        ticket.title = "c"
    session.flush()
    savepoint.rollback()
    ticket.title = "c"
    session.commit()
    ticket.title = "d"
    session.commit()

    assert extras(session, Ticket) == [{"reason": "first"}, {"reason": "second"}, None]
