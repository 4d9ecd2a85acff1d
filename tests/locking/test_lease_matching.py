"""Which lease a check finds: the exact expiry instant, and table and key together.

The expiry boundary is tested on a frozen database clock: a
``public.statement_timestamp()`` that returns a fixed instant, picked up by
connections whose ``search_path`` puts ``public`` before ``pg_catalog``. Every
lease check in chrononaut reads the statement timestamp, so a lease can be made
to expire at exactly the instant the check runs.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, sessionmaker

import chrononaut
from chrononaut import RecordLockedError, Versioned, acting_as

FROZEN = datetime(2031, 5, 4, 12, 0, tzinfo=timezone.utc)
ONE_MICROSECOND = timedelta(microseconds=1)


class Base(DeclarativeBase):
    pass


class Memo(Base, Versioned):
    __tablename__ = "lm_memo"
    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str]


class Sheet(Base, Versioned):
    """Shares primary key values with Memo: only the table tells their leases apart."""

    __tablename__ = "lm_sheet"
    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str]


@pytest.fixture
def frozen_factory(clean_database: str) -> Iterator[sessionmaker]:
    """Versioned sessions whose ``statement_timestamp()`` is always ``FROZEN``."""
    setup = sa.create_engine(clean_database, poolclass=sa.pool.NullPool)
    with setup.begin() as connection:
        connection.execute(
            sa.text(
                "CREATE FUNCTION public.statement_timestamp() RETURNS timestamptz "
                f"LANGUAGE sql STABLE AS $$ SELECT '{FROZEN.isoformat()}'::timestamptz $$"
            )
        )
    setup.dispose()
    engine = sa.create_engine(
        clean_database, connect_args={"options": "-c search_path=public,pg_catalog"}
    )
    Base.metadata.create_all(engine)
    factory = sessionmaker(engine)
    chrononaut.listen(factory)
    with factory() as session:
        session.add_all([Memo(id=1, title="draft"), Memo(id=2, title="draft")])
        session.add_all([Sheet(id=1, title="draft")])
        session.commit()
        assert session.execute(sa.text("SELECT statement_timestamp()")).scalar() == FROZEN
    yield factory
    engine.dispose()


def put_lease(factory, table: str, record_key: str, owner: str, expires_at: datetime) -> None:
    with factory() as session:
        session.execute(
            sa.text(
                "INSERT INTO chrononaut_leases (table_name, record_key, owner, acquired_at, "
                "expires_at) VALUES (:t, :k, :o, :a, :e)"
            ),
            {
                "t": table,
                "k": record_key,
                "o": owner,
                "a": FROZEN - timedelta(hours=1),
                "e": expires_at,
            },
        )
        session.commit()


def lease_rows(factory) -> list[tuple[str, str, str]]:
    with factory() as session:
        rows = session.execute(
            sa.text("SELECT table_name, record_key, owner FROM chrononaut_leases ORDER BY 1, 2")
        )
        return [tuple(row) for row in rows]


# --- a lease expiring exactly now is free ----------------------------------------


def test_the_guard_lets_a_write_through_a_lease_expiring_at_this_very_instant(frozen_factory):
    put_lease(frozen_factory, "lm_memo", "[1]", "alice", FROZEN)
    with frozen_factory() as session, acting_as("bob"):
        session.get(Memo, 1).title = "bob's"
        session.commit()
        assert session.get(Memo, 1).version == 1


def test_the_guard_refuses_a_write_through_a_lease_expiring_one_microsecond_later(
    frozen_factory,
):
    put_lease(frozen_factory, "lm_memo", "[1]", "alice", FROZEN + ONE_MICROSECOND)
    with frozen_factory() as session, acting_as("bob"):
        session.get(Memo, 1).title = "bob's"
        with pytest.raises(RecordLockedError) as exc_info:
            session.commit()
        assert (exc_info.value.owner, exc_info.value.expires_at) == (
            "alice",
            FROZEN + ONE_MICROSECOND,
        )


def test_record_lease_is_none_for_a_lease_expiring_at_this_very_instant(frozen_factory):
    put_lease(frozen_factory, "lm_memo", "[1]", "alice", FROZEN)
    put_lease(frozen_factory, "lm_memo", "[2]", "alice", FROZEN + ONE_MICROSECOND)
    with frozen_factory() as session:
        assert session.get(Memo, 1).lease is None
        assert session.get(Memo, 2).lease.expires_at == FROZEN + ONE_MICROSECOND


def test_acquire_lease_takes_a_lease_expiring_at_this_very_instant_without_breaking_it(
    frozen_factory,
):
    put_lease(frozen_factory, "lm_memo", "[1]", "alice", FROZEN)
    with frozen_factory() as session, acting_as("bob"):
        memo = session.get(Memo, 1)
        lease = memo.acquire_lease(ttl=timedelta(minutes=5))  # no force needed
        assert (lease.owner, lease.acquired_at, lease.expires_at) == (
            "bob",
            FROZEN,
            FROZEN + timedelta(minutes=5),
        )
        memo.title = "bob's"
        session.commit()
        # Nothing was broken: the expired lease is not a previous holder.
        assert "lease_broken" not in memo.versions()[-1].change_info


def test_acquire_lease_refuses_a_lease_expiring_one_microsecond_later(frozen_factory):
    put_lease(frozen_factory, "lm_memo", "[1]", "alice", FROZEN + ONE_MICROSECOND)
    with frozen_factory() as session, acting_as("bob"):
        with pytest.raises(RecordLockedError) as exc_info:
            session.get(Memo, 1).acquire_lease()
        assert exc_info.value.owner == "alice"


def test_release_lease_frees_a_lease_expiring_at_this_very_instant_without_force(
    frozen_factory,
):
    put_lease(frozen_factory, "lm_memo", "[1]", "alice", FROZEN)
    with frozen_factory() as session, acting_as("carol"):
        session.get(Memo, 1).release_lease()
        session.commit()
    assert lease_rows(frozen_factory) == []


# --- table and key together --------------------------------------------------------


def test_the_guard_matches_a_lease_by_table_and_key_together(frozen_factory):
    # alice leases Memo 1; Sheet 1 has the same key, Memo 2 the same table.
    put_lease(frozen_factory, "lm_memo", "[1]", "alice", FROZEN + timedelta(hours=1))
    with frozen_factory() as session, acting_as("bob"):
        sheet, memo = session.get(Sheet, 1), session.get(Memo, 2)
        sheet.title = memo.title = "bob's"
        session.commit()  # one flush writes both; neither is leased
        session.get(Memo, 1).title = "bob's"
        with pytest.raises(RecordLockedError) as exc_info:
            session.commit()
        assert (exc_info.value.record, exc_info.value.owner) == ("Memo(id=1)", "alice")
        session.rollback()
        assert (session.get(Sheet, 1).version, session.get(Memo, 2).version) == (1, 1)


def test_record_lease_matches_by_table_and_key_together(frozen_factory):
    put_lease(frozen_factory, "lm_memo", "[1]", "alice", FROZEN + timedelta(hours=1))
    with frozen_factory() as session:
        assert session.get(Sheet, 1).lease is None
        assert session.get(Memo, 1).lease.owner == "alice"


def test_release_lease_matches_by_table_and_key_together(frozen_factory):
    put_lease(frozen_factory, "lm_memo", "[1]", "alice", FROZEN + timedelta(hours=1))
    with frozen_factory() as session, acting_as("alice"):
        session.get(Sheet, 1).release_lease()  # alice holds no lease on Sheet 1
        session.commit()
    assert lease_rows(frozen_factory) == [("lm_memo", "[1]", "alice")]
    with frozen_factory() as session, acting_as("bob"):
        session.get(Sheet, 1).acquire_lease()  # no force: Memo 1's lease is not Sheet 1's
        session.commit()
    assert lease_rows(frozen_factory) == [("lm_memo", "[1]", "alice"), ("lm_sheet", "[1]", "bob")]
