"""A column declared on a single-table base and hidden only in a subclass never reaches history.

Every write path follows each row's own class (by discriminator): flush
updates and deletes, bulk statements on the base and on the subclass.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from chrononaut import Versioned


@pytest.fixture
def models(Base, engine, session):
    class Account(Base, Versioned):
        __tablename__ = "account"
        id: Mapped[int] = mapped_column(primary_key=True)
        kind: Mapped[str]
        name: Mapped[str]
        secret: Mapped[str | None]
        __mapper_args__ = {"polymorphic_on": "kind", "polymorphic_identity": "account"}

    class Vault(Account):
        __chrononaut_hidden__ = ["secret"]
        __mapper_args__ = {"polymorphic_identity": "vault"}

    Base.metadata.create_all(engine)
    session.add_all(
        [Account(id=1, name="a", secret="visible"), Vault(id=2, name="v", secret="s3cret")]
    )
    session.commit()
    return Account, Vault


def _history(session, Account):
    table = Account.__history_mapper__.local_table
    stmt = sa.select(table.c.id, table.c.version, table.c.secret, table.c.change_info)
    return [tuple(r) for r in session.execute(stmt.order_by(table.c.id, table.c.version))]


def _no_secret(rows):
    assert all(secret != "s3cret" for _, _, secret, _ in rows), rows


@pytest.mark.parametrize("form", ["flush", "bulk_base", "bulk_subclass", "query_base"])
def test_update_never_copies_a_column_the_subclass_hides(session, models, form):
    Account, Vault = models
    if form == "flush":
        for obj in session.scalars(sa.select(Account)).all():
            obj.secret = "new"
        session.commit()
    elif form == "bulk_base":
        session.execute(sa.update(Account).values(secret="new"))
        session.commit()
    elif form == "query_base":
        session.query(Account).update({"secret": "new"})
        session.commit()
    else:
        session.execute(sa.update(Account).values(name="renamed"))
        session.execute(sa.update(Vault).values(secret="new"))
        session.commit()

    rows = _history(session, Account)
    _no_secret(rows)
    vault_rows = [r for r in rows if r[0] == 2]
    assert [r[2] for r in vault_rows] == [None] * len(vault_rows)
    assert vault_rows[-1][3].get("hidden_cols_changed") == ["secret"]
    account_rows = [r for r in rows if r[0] == 1]
    if form != "bulk_subclass":
        assert [(r[2], r[3].get("hidden_cols_changed")) for r in account_rows] == [
            ("visible", None)
        ]


@pytest.mark.parametrize("form", ["flush", "bulk_base", "bulk_subclass"])
def test_deletion_rows_never_copy_a_column_the_subclass_hides(session, models, form):
    Account, Vault = models
    if form == "flush":
        for obj in session.scalars(sa.select(Account)).all():
            session.delete(obj)
    elif form == "bulk_base":
        session.execute(sa.delete(Account))
    else:
        session.execute(sa.delete(Vault))
    session.commit()

    rows = _history(session, Account)
    _no_secret(rows)
    assert [(r[0], r[2], r[3]["deleted"]) for r in rows if r[0] == 2] == [(2, None, True)]
    if form != "bulk_subclass":
        assert [(r[0], r[2]) for r in rows if r[0] == 1] == [(1, "visible")]


def test_bulk_update_of_a_joined_base_never_copies_a_base_column_a_subclass_hides(
    Base, engine, session
):
    class Person(Base, Versioned):
        __tablename__ = "person"
        id: Mapped[int] = mapped_column(primary_key=True)
        kind: Mapped[str]
        pin: Mapped[str | None]
        __mapper_args__ = {"polymorphic_on": "kind", "polymorphic_identity": "person"}

    class Agent(Person):
        __tablename__ = "agent"
        __chrononaut_hidden__ = ["pin"]
        id: Mapped[int] = mapped_column(sa.ForeignKey("person.id"), primary_key=True)
        codename: Mapped[str]
        __mapper_args__ = {"polymorphic_identity": "agent"}

    Base.metadata.create_all(engine)
    session.add_all([Person(id=1, pin="1111"), Agent(id=2, pin="0007", codename="x")])
    session.commit()

    session.execute(sa.update(Person).values(pin="new"))
    session.commit()

    table = Person.__history_mapper__.local_table
    rows = session.execute(
        sa.select(table.c.id, table.c.pin, table.c.change_info).order_by(table.c.id)
    )
    assert [(i, pin, info.get("hidden_cols_changed")) for i, pin, info in rows] == [
        (1, "1111", None),
        (2, None, ["pin"]),
    ]
