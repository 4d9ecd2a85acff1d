"""Models that used to define fine and fail later: generated columns, long names,
names that shadow chrononaut's API, and history tables that clash.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from chrononaut import ConfigurationError, Versioned
from chrononaut.versioning.mixin import reserved_names


def history_of(session, model) -> list:
    history_cls = model.__history_mapper__.class_
    return session.scalars(sa.select(history_cls).order_by(history_cls.version)).all()


def declare(Base, name: str, **namespace) -> type:
    return type(name, (Base, Versioned), namespace)


# --- generated columns --------------------------------------------------------


def test_computed_column_is_copied_to_history_as_a_plain_column(Base, engine, session):
    class Line(Base, Versioned):
        __tablename__ = "line"
        id: Mapped[int] = mapped_column(primary_key=True)
        price: Mapped[int]
        qty: Mapped[int]
        total: Mapped[int] = mapped_column(sa.Computed("price * qty", persisted=True))

    Base.metadata.create_all(engine)
    assert Line.__chrononaut__.history_table.c.total.computed is None
    line = Line(id=1, price=2, qty=3)
    session.add(line)
    session.commit()
    line.price = 5
    session.commit()
    session.execute(sa.update(Line).where(Line.id == 1).values(qty=10))
    session.commit()

    assert [(h.version, h.price, h.qty, h.total) for h in history_of(session, Line)] == [
        (0, 2, 3, 6),
        (1, 5, 3, 15),
    ]
    assert session.get(Line, 1).total == 50


def test_identity_always_primary_key_history_keeps_the_generated_key(Base, engine, session):
    class Ticket(Base, Versioned):
        __tablename__ = "ticket"
        id: Mapped[int] = mapped_column(sa.Identity(always=True), primary_key=True)
        title: Mapped[str]

    Base.metadata.create_all(engine)
    ticket = Ticket(title="a")
    session.add(ticket)
    session.commit()
    ticket.title = "b"
    session.commit()
    session.delete(ticket)
    session.commit()

    rows = history_of(session, Ticket)
    assert [(h.id, h.version, h.title, h.is_deletion) for h in rows] == [
        (ticket.id, 0, "a", False),
        (ticket.id, 1, "b", True),
    ]


def test_plain_identity_does_not_give_history_its_own_identity(Base, engine):
    class Ticket(Base, Versioned):
        __tablename__ = "ticket"
        id: Mapped[int] = mapped_column(sa.Identity(), primary_key=True)

    Base.metadata.create_all(engine)
    history = Ticket.__chrononaut__.history_table
    assert history.c.id.identity is None
    with engine.connect() as connection:
        is_identity = connection.exec_driver_sql(
            "SELECT is_identity FROM information_schema.columns "
            "WHERE table_name = %s AND column_name = 'id'",
            (history.name,),
        ).scalar_one()
    assert is_identity == "NO"


# --- long names ---------------------------------------------------------------

LONG = "a_rather_long_table_name_for_an_enterprise_resource_planning"


def test_long_tablename_gives_a_history_table_name_that_fits(Base, engine, session):
    table_name = LONG + "_x"  # 62 characters: "<table>_history" would be 70
    Model = declare(
        Base,
        "Model",
        __tablename__=table_name,
        id=mapped_column(sa.Integer, primary_key=True),
        code=mapped_column(sa.Text, index=True),
    )
    Base.metadata.create_all(engine)

    history = Model.__chrononaut__.history_table
    assert len(history.name) <= 63 and history.name.endswith("_history")
    assert all(len(ix.name) <= 63 for ix in history.indexes)
    assert history.name in sa.inspect(engine).get_table_names()
    row = Model(id=1, code="a")
    session.add(row)
    session.commit()
    row.code = "b"
    session.commit()
    assert [h.code for h in history_of(session, Model)] == ["a"]


def test_long_names_are_the_same_for_every_declaration(engine):
    def build() -> tuple[str, set[str]]:
        class Base(DeclarativeBase):
            pass

        Model = declare(
            Base,
            "Model",
            __tablename__=LONG + "_x",
            id=mapped_column(sa.Integer, primary_key=True),
            code=mapped_column(sa.Text, index=True),
        )
        history = Model.__chrononaut__.history_table
        return history.name, {ix.name for ix in history.indexes}

    assert build() == build()


def test_long_names_sharing_a_prefix_get_distinct_history_names(Base, engine):
    first = declare(
        Base,
        "First",
        __tablename__=LONG + "_1",
        id=mapped_column(sa.Integer, primary_key=True),
        code_of_the_record=mapped_column(sa.Text, index=True),
    )
    second = declare(
        Base,
        "Second",
        __tablename__=LONG + "_2",
        id=mapped_column(sa.Integer, primary_key=True),
        code_of_the_record=mapped_column(sa.Text, index=True),
    )
    Base.metadata.create_all(engine)

    one, two = first.__chrononaut__.history_table, second.__chrononaut__.history_table
    assert one.name != two.name
    assert {ix.name for ix in one.indexes}.isdisjoint(ix.name for ix in two.indexes)
    names = sa.inspect(engine).get_table_names()
    assert one.name in names and two.name in names


def test_too_long_chrononaut_tablename_is_refused(Base):
    with pytest.raises(ConfigurationError) as exc_info:
        declare(
            Base,
            "Model",
            __tablename__="model",
            __chrononaut_tablename__="h" * 64,
            id=mapped_column(sa.Integer, primary_key=True),
        )
    assert "__chrononaut_tablename__" in str(exc_info.value)
    assert "63" in str(exc_info.value)


# --- reserved names -----------------------------------------------------------


def test_reserved_names_cover_the_api_of_models_and_history():
    assert {
        "versions",
        "version_at",
        "diff",
        "lock",
        "is_locked",
        "etag",
        "lease",
        "acquire_lease",
        "release_lease",
        "check_version",
        "apply_changes",
        "previous_version",
        "has_changed_since",
        "is_deletion",
        "version",
        "changed",
        "change_info",
    } <= reserved_names()


@pytest.mark.parametrize("name", sorted(reserved_names()))
def test_column_shadowing_a_reserved_name_is_refused(Base, name):
    with pytest.raises(ConfigurationError) as exc_info:
        declare(
            Base,
            "Doc",
            __tablename__="doc",
            id=mapped_column(sa.Integer, primary_key=True),
            **{name: mapped_column(sa.Integer)},
        )
    message = str(exc_info.value)
    assert f"Doc.{name}" in message
    assert "mapped_column(" in message  # names the alternative


def test_method_shadowing_a_reserved_name_is_refused(Base):
    with pytest.raises(ConfigurationError) as exc_info:

        class Doc(Base, Versioned):
            __tablename__ = "doc"
            id: Mapped[int] = mapped_column(primary_key=True)

            def lock(self):  # type: ignore[override]
                return None

    assert "Doc.lock" in str(exc_info.value)


def test_reserved_name_on_single_table_subclass_is_refused(Base):
    class Doc(Base, Versioned):
        __tablename__ = "doc"
        id: Mapped[int] = mapped_column(primary_key=True)
        kind: Mapped[str]
        __mapper_args__ = {"polymorphic_on": "kind", "polymorphic_identity": "doc"}

    with pytest.raises(ConfigurationError) as exc_info:

        class Memo(Doc):
            __mapper_args__ = {"polymorphic_identity": "memo"}
            etag: Mapped[str | None] = mapped_column(nullable=True)

    assert "Memo.etag" in str(exc_info.value)


def test_column_named_lock_under_another_attribute_works(Base, engine, session):
    class Doc(Base, Versioned):
        __tablename__ = "doc"
        id: Mapped[int] = mapped_column(primary_key=True)
        lock_: Mapped[int] = mapped_column("lock")

    Base.metadata.create_all(engine)
    doc = Doc(id=1, lock_=1)
    session.add(doc)
    session.commit()
    doc.lock_ = 2
    session.commit()
    assert [h.lock_ for h in history_of(session, Doc)] == [1]


@pytest.mark.parametrize("untracked", [False, True])
def test_own_version_column_is_refused_even_when_untracked(Base, untracked):
    namespace = {"__chrononaut_untracked__": ["version"]} if untracked else {}
    with pytest.raises(ConfigurationError) as exc_info:
        declare(
            Base,
            "Doc",
            __tablename__="doc",
            id=mapped_column(sa.Integer, primary_key=True),
            version=mapped_column(sa.Text),
            **namespace,
        )
    message = str(exc_info.value)
    assert "'version'" in message
    assert "__chrononaut_untracked__" not in message  # no advice that fails later


def test_column_named_version_under_another_attribute_is_refused(Base):
    with pytest.raises(ConfigurationError) as exc_info:
        declare(
            Base,
            "Doc",
            __tablename__="doc",
            id=mapped_column(sa.Integer, primary_key=True),
            changed_at=mapped_column("changed", sa.DateTime, nullable=True),
            __chrononaut_untracked__=["changed_at"],
        )
    message = str(exc_info.value)
    assert "'changed'" in message and "Doc" in message
    assert "__chrononaut_untracked__" not in message


# --- history table clashes ----------------------------------------------------


def test_chrononaut_tablename_clashing_with_a_table_names_both_models(Base):
    class Invoice(Base):
        __tablename__ = "invoice_archive"
        id: Mapped[int] = mapped_column(primary_key=True)

    with pytest.raises(ConfigurationError) as exc_info:
        declare(
            Base,
            "Order",
            __tablename__="order_",
            __chrononaut_tablename__="invoice_archive",
            id=mapped_column(sa.Integer, primary_key=True),
        )
    message = str(exc_info.value)
    assert "Order" in message and "Invoice" in message
    assert "__chrononaut_tablename__" in message


def test_chrononaut_tablename_clashing_with_another_history_names_both_models(Base):
    declare(
        Base,
        "Order",
        __tablename__="order_",
        id=mapped_column(sa.Integer, primary_key=True),
    )
    with pytest.raises(ConfigurationError) as exc_info:
        declare(
            Base,
            "Quote",
            __tablename__="quote",
            __chrononaut_tablename__="order__history",
            id=mapped_column(sa.Integer, primary_key=True),
        )
    message = str(exc_info.value)
    assert "Quote" in message and "history table of Order" in message
