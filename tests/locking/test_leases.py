"""Edit leases: who may edit a record until when, stored in chrononaut_leases.

Expiry is driven by the database clock (a tiny ttl, or moving ``expires_at``
into the past); claims about other transactions use real OS processes.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from chrononaut import Lease, RecordLockedError, acting_as

from . import procs_guard as procs
from .procs_guard import LeaseItem, LeasePair

LEASES = "chrononaut_leases"


@pytest.fixture
def item(engine, session):
    procs.Base.metadata.create_all(engine)
    session.add(LeaseItem(id=1, title="draft"))
    session.commit()
    return session.get(LeaseItem, 1)


def lease_rows(engine):
    """(table_name, record_key, owner) of every stored lease, read on a fresh connection."""
    with engine.connect() as connection:
        rows = connection.execute(
            sa.text(f"SELECT table_name, record_key, owner FROM {LEASES} ORDER BY 1, 2")
        )
        return [tuple(row) for row in rows]


def stored(engine):
    """(title, version) of LeaseItem 1 and its history rows' change_info, oldest first."""
    history = LeaseItem.__history_mapper__.local_table
    with engine.connect() as connection:
        row = connection.execute(sa.text("SELECT title, version FROM lease_item WHERE id = 1"))
        infos = connection.execute(sa.select(history.c.change_info).order_by(history.c.version))
        return tuple(row.one()), [info for (info,) in infos]


def expire_all_leases(session):
    session.execute(sa.text(f"UPDATE {LEASES} SET expires_at = now() - interval '1 second'"))
    session.commit()


def assert_held_by(error, owner, expires_at, record="LeaseItem(id=1)"):
    assert type(error) is RecordLockedError
    assert (error.record, error.owner, error.expires_at) == (record, owner, expires_at)
    assert owner in str(error)
    assert f"{expires_at:%Y-%m-%d %H:%M:%S}" in str(error)


def test_acquire_lease_returns_a_lease_lasting_ttl_on_the_database_clock(item, session):
    before = session.execute(sa.text("SELECT clock_timestamp()")).scalar()
    lease = item.acquire_lease(ttl=timedelta(minutes=5), owner="alice")
    after = session.execute(sa.text("SELECT clock_timestamp()")).scalar()
    assert isinstance(lease, Lease)
    assert lease.owner == "alice"
    assert before <= lease.acquired_at <= after
    assert lease.expires_at - lease.acquired_at == timedelta(minutes=5)
    with acting_as("alice"):
        item.release_lease()
        default = item.acquire_lease()
    assert default.expires_at - default.acquired_at == timedelta(minutes=15)


def test_record_lease_is_the_current_unexpired_lease_or_none(item, session, engine):
    assert item.lease is None
    with acting_as("alice"):
        lease = item.acquire_lease()
    session.commit()
    assert item.lease == lease
    expire_all_leases(session)
    assert item.lease is None
    assert lease_rows(engine) == [("lease_item", "[1]", "alice")]  # expired, still stored


def test_create_all_creates_the_leases_table_keyed_by_table_name_and_record_key(item, engine):
    inspector = sa.inspect(engine)
    assert inspector.get_pk_constraint(LEASES)["constrained_columns"] == [
        "table_name",
        "record_key",
    ]
    columns = {c["name"]: c for c in inspector.get_columns(LEASES)}
    assert set(columns) == {"table_name", "record_key", "owner", "acquired_at", "expires_at"}
    assert not any(c["nullable"] for c in columns.values())
    assert columns["expires_at"]["type"].timezone is True


def test_the_lease_owner_defaults_to_the_acting_user(item, session, engine):
    with acting_as("worker-7"):
        lease = item.acquire_lease()
    session.commit()
    assert lease.owner == "worker-7"
    assert lease_rows(engine) == [("lease_item", "[1]", "worker-7")]


def test_acquire_lease_with_no_owner_and_no_acting_user_raises_value_error(item, session, engine):
    with pytest.raises(ValueError) as exc_info:
        item.acquire_lease()
    assert "LeaseItem(id=1)" in str(exc_info.value)
    assert "acting_as" in str(exc_info.value) and "owner=" in str(exc_info.value)
    session.commit()
    assert lease_rows(engine) == []


def test_acquiring_a_lease_another_owner_holds_raises_naming_owner_and_expiry(item, session):
    held = item.acquire_lease(owner="alice")
    session.commit()
    with acting_as("bob"), pytest.raises(RecordLockedError) as exc_info:
        item.acquire_lease()
    assert_held_by(exc_info.value, "alice", held.expires_at)
    session.rollback()
    assert item.lease == held


def test_the_owner_renews_by_acquiring_again(item, session, engine):
    with acting_as("alice"):
        first = item.acquire_lease(ttl=timedelta(minutes=15))
        session.commit()
        renewed = item.acquire_lease(ttl=timedelta(minutes=30))
        session.commit()
    assert renewed.owner == "alice"
    assert renewed.acquired_at == first.acquired_at
    assert renewed.expires_at > first.expires_at
    assert renewed.expires_at >= first.acquired_at + timedelta(minutes=30)
    assert item.lease == renewed
    assert lease_rows(engine) == [("lease_item", "[1]", "alice")]


def test_force_breaks_another_owners_lease_and_history_records_the_break(item, session, engine):
    held = item.acquire_lease(owner="alice")
    session.commit()
    with acting_as("bob"):
        broken = item.acquire_lease(force=True)
        item.title = "bob's"
        session.commit()
        item.title = "bob's again"
        session.commit()
    assert broken.owner == "bob" and broken.acquired_at > held.acquired_at
    assert item.lease == broken
    (title, version), infos = stored(engine)
    assert (title, version) == ("bob's again", 2)
    assert infos[0]["user_id"] == "bob"
    assert infos[0]["lease_broken"]["owner"] == "alice"
    assert infos[0]["lease_broken"]["by"] == "bob"
    assert "lease_broken" not in infos[1]  # recorded once, on the next version only


def test_a_rolled_back_forced_break_is_not_recorded_in_history(item, session, engine):
    item.acquire_lease(owner="alice")
    session.commit()
    with acting_as("bob"):
        item.acquire_lease(force=True)
    session.rollback()  # the break never happened: alice still holds the lease
    assert item.lease.owner == "alice"
    with acting_as("alice"):
        item.title = "alice's"
        session.commit()
    _, infos = stored(engine)
    assert infos[0]["user_id"] == "alice"
    assert "lease_broken" not in infos[0]


@pytest.mark.parametrize("actor", ["bob", None], ids=["other-user", "nobody"])
@pytest.mark.parametrize("change", ["update", "delete"])
def test_flushing_a_change_to_a_leased_record_as_another_actor_raises(
    item, session, engine, actor, change
):
    held = item.acquire_lease(owner="alice")
    session.commit()
    with acting_as(actor):
        if change == "update":
            item.title = "not yours"
        else:
            session.delete(item)
        with pytest.raises(RecordLockedError) as exc_info:
            session.flush()
    assert_held_by(exc_info.value, "alice", held.expires_at)
    session.rollback()
    assert stored(engine) == (("draft", 0), [])


def test_the_lease_owner_may_write_and_delete_the_leased_record(item, session, engine):
    with acting_as("alice"):
        item.acquire_lease()
        session.commit()
        item.title = "alice's"
        session.commit()
        assert stored(engine)[0] == ("alice's", 1)
        session.delete(item)
        session.commit()
    with engine.connect() as connection:
        assert connection.execute(sa.text("SELECT count(*) FROM lease_item")).scalar() == 0


def test_release_lease_by_the_owner_frees_it(item, session, engine):
    with acting_as("alice"):
        item.acquire_lease()
        session.commit()
        item.release_lease()
        session.commit()
    assert item.lease is None
    assert lease_rows(engine) == []
    with acting_as("bob"):
        assert item.acquire_lease().owner == "bob"


def test_release_lease_by_someone_else_raises_unless_forced(item, session, engine):
    held = item.acquire_lease(owner="alice")
    session.commit()
    with acting_as("bob"):
        with pytest.raises(RecordLockedError) as exc_info:
            item.release_lease()
        assert_held_by(exc_info.value, "alice", held.expires_at)
        session.rollback()
        assert lease_rows(engine) == [("lease_item", "[1]", "alice")]
        item.release_lease(force=True)
        session.commit()
    assert lease_rows(engine) == []


def test_expired_leases_count_as_free(item, session, engine):
    item.acquire_lease(owner="alice")
    session.commit()
    expire_all_leases(session)
    with acting_as("bob"):
        item.title = "bob's"
        session.commit()  # an expired lease does not guard the record
        taken = item.acquire_lease()
        item.title = "bob's again"
        session.commit()
    assert taken.owner == "bob"
    (title, _), infos = stored(engine)
    assert title == "bob's again"
    assert all("lease_broken" not in info for info in infos)  # nothing was broken
    expire_all_leases(session)
    with acting_as("carol"):
        item.release_lease()  # releasing an expired lease needs no force
        session.commit()
    assert lease_rows(engine) == []


def test_a_lease_with_a_tiny_ttl_expires_on_the_database_clock(item, session):
    lease = item.acquire_lease(ttl=timedelta(milliseconds=300), owner="alice")
    session.commit()
    assert item.lease == lease

    def past_expiry():
        now = session.execute(sa.text("SELECT statement_timestamp()")).scalar()
        return now > lease.expires_at

    assert procs.wait_until(past_expiry, timeout=5)
    assert item.lease is None
    with acting_as("bob"):
        item.title = "bob's"
        session.commit()
        assert item.acquire_lease().owner == "bob"


def test_a_rolled_back_acquire_leaves_no_lease(item, session, engine):
    item.acquire_lease(owner="alice")
    assert item.lease is not None  # visible inside its own transaction
    session.rollback()
    assert item.lease is None
    assert lease_rows(engine) == []


@pytest.mark.parametrize("holder_commits", [True, False], ids=["commit", "rollback"])
def test_an_uncommitted_lease_is_invisible_to_others_whose_acquire_waits_for_it(
    item, session, engine, clean_database, holder_commits
):
    acquired, finish, report = procs.CTX.Event(), procs.CTX.Event(), procs.CTX.Queue()
    holder_args = (clean_database, "LeaseItem", (1,), "alice", acquired, finish, holder_commits)
    with procs.child(procs.hold_lease, *holder_args, signals=(finish,)) as holder:
        assert acquired.wait(procs.PARENT_WAIT)
        assert item.lease is None
        session.rollback()
        contender_args = (clean_database, "LeaseItem", (1,), "bob", report)
        with procs.child(procs.acquire_lease_reporting_pid, *contender_args) as contender:
            pid, seen = report.get(timeout=procs.PARENT_WAIT)
            assert seen is None
            assert procs.wait_until(lambda: procs.backend_waits_for_lock(engine, pid))
            finish.set()
            outcome = report.get(timeout=procs.PARENT_WAIT)
            assert procs.joined_ok(contender)
        assert procs.joined_ok(holder)
    if holder_commits:
        status, _, owner, expires_at, message = outcome
        assert (status, owner) == ("locked", "alice")
        assert expires_at is not None and "alice" in message
        assert lease_rows(engine) == [("lease_item", "[1]", "alice")]
    else:
        assert outcome[:3] == ("acquired", "bob", "bob")
        assert lease_rows(engine) == [("lease_item", "[1]", "bob")]


def test_leases_on_composite_keys_are_held_per_record(item, session, engine):
    session.add_all(
        LeasePair(region=r, number=n, title="x") for r, n in [("eu", 7), ("eu", 8), ("us", 7)]
    )
    session.commit()
    held = session.get(LeasePair, ("eu", 7)).acquire_lease(owner="alice")
    session.commit()
    with acting_as("bob"):
        for ident in [("eu", 8), ("us", 7)]:
            assert session.get(LeasePair, ident).acquire_lease().owner == "bob"
        with pytest.raises(RecordLockedError) as exc_info:
            session.get(LeasePair, ("eu", 7)).acquire_lease()
    record = "LeasePair(region='eu', number=7)"
    assert_held_by(exc_info.value, "alice", held.expires_at, record=record)
    session.commit()
    assert lease_rows(engine) == [
        ("lease_pair", '["eu",7]', "alice"),
        ("lease_pair", '["eu",8]', "bob"),
        ("lease_pair", '["us",7]', "bob"),
    ]


def test_processes_racing_for_one_lease_exactly_one_wins(item, engine, clean_database):
    owners = ["p1", "p2", "p3", "p4"]
    barrier, report = procs.CTX.Barrier(len(owners)), procs.CTX.Queue()
    racers = []
    try:
        for owner in owners:
            args = (clean_database, "LeaseItem", (1,), owner, barrier, report)
            racers.append(procs.CTX.Process(target=procs.race_for_lease, args=args))
            racers[-1].start()
        outcomes = [report.get(timeout=procs.PARENT_WAIT) for _ in owners]
        assert all(procs.joined_ok(racer) for racer in racers)
    finally:
        for racer in racers:
            racer.join(procs.PARENT_WAIT)
            if racer.is_alive():
                racer.terminate()
                racer.join(5)
    winners = [o for o in outcomes if o[0] == "acquired"]
    assert len(winners) == 1
    winner = winners[0][1]
    assert sorted(o[1] for o in outcomes if o[0] == "locked") == sorted(set(owners) - {winner})
    assert all(o[2] == winner and winner in o[4] for o in outcomes if o[0] == "locked")
    assert lease_rows(engine) == [("lease_item", "[1]", winner)]


def test_acquiring_a_lease_deletes_some_expired_leases_of_other_records(item, session, engine):
    from chrononaut.locking.leases import PURGE_ON_ACQUIRE

    session.execute(
        sa.text(
            f"INSERT INTO {LEASES} SELECT 'lease_item', '[' || n || ']', 'bob', "
            "now() - interval '2 hours', now() - interval '1 hour' "
            "FROM generate_series(100, 149) AS n"
        )
    )
    session.commit()
    with acting_as("alice"):
        item.acquire_lease()
        session.commit()
    rows = lease_rows(engine)
    assert ("lease_item", "[1]", "alice") in rows
    assert len(rows) == 1 + 50 - PURGE_ON_ACQUIRE
    for _ in range(3):
        with acting_as("alice"):
            item.acquire_lease()
            session.commit()
    assert lease_rows(engine) == [("lease_item", "[1]", "alice")]


def test_purge_expired_deletes_only_expired_leases(item, session, engine):
    from chrononaut.locking.leases import leases_table, purge_expired

    with acting_as("alice"):
        item.acquire_lease()
        session.commit()
    session.execute(
        sa.text(
            f"INSERT INTO {LEASES} VALUES ('lease_item', '[7]', 'bob', "
            "now() - interval '2 hours', now() - interval '1 hour')"
        )
    )
    session.commit()
    with engine.begin() as connection:
        assert purge_expired(connection, leases_table(procs.Base.metadata)) == 1
    assert lease_rows(engine) == [("lease_item", "[1]", "alice")]
    with pytest.raises(TypeError, match="sqlalchemy Table"), engine.begin() as connection:
        purge_expired(connection, "chrononaut_leases")
