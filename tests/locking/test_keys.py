"""Lock keys: stable across processes, exact for composite and non-integer primary keys."""

from __future__ import annotations

import json
import uuid
from datetime import date, datetime, timezone
from decimal import Decimal

import pytest

import chrononaut
from chrononaut.locking import keys

from .procs_advisory import (
    CTX,
    MODELS,
    WAIT,
    Base,
    Counter,
    Shelf,
    Tag,
    Ticket,
    backend_pid,
    children,
    compute_keys,
    hold,
    key_of,
    lock_rows,
    try_lock,
)

TICKET_ID = uuid.UUID("12345678-1234-5678-1234-567812345678")

#: Computed once from the BLAKE2b algorithm; a change of algorithm would move every
#: key and let old and new code run side by side without excluding each other.
FIXED_KEYS = [
    (("adv_counter", (1,)), 6755757854028767672),
    (("adv_shelf", ("eu", 7)), 1075878403575439419),
    (("adv_ticket", (TICKET_ID,)), 4858498692888079570),
]


@pytest.fixture
def url(session_factory, clean_database):
    Base.metadata.create_all(session_factory.kw["bind"])
    with session_factory() as session:
        session.add_all(
            [
                Counter(id=1),
                Counter(id=2),
                Shelf(region="eu", number=7),
                Shelf(region="eu", number=8),
                Ticket(id=TICKET_ID),
                Tag(name="alpha"),
            ]
        )
        session.commit()
    return clean_database


def test_advisory_key_is_a_fixed_value_for_a_table_and_primary_key():
    for (table, identity), expected in FIXED_KEYS:
        assert keys.advisory_key(table, identity) == expected
        assert -(2**63) <= expected < 2**63


def test_advisory_key_is_the_same_in_a_spawned_process():
    cases = [case for case, _ in FIXED_KEYS] + [("adv_tag", ("alpha",)), ("adv_counter", (2,))]
    result = CTX.Queue()
    with children((compute_keys, (cases, result))):
        from_child = result.get(timeout=WAIT)
    assert from_child == [keys.advisory_key(table, identity) for table, identity in cases]
    assert from_child[:3] == [expected for _, expected in FIXED_KEYS]


def test_record_key_is_canonical_json_of_the_primary_key():
    assert keys.record_key((42,)) == "[42]"
    assert keys.record_key(("eu", 7)) == '["eu",7]'
    assert keys.record_key((TICKET_ID,)) == '["12345678-1234-5678-1234-567812345678"]'
    assert keys.record_key((Decimal("1.50"),)) == '["1.5"]'  # no exponent, no trailing zeros
    assert keys.record_key((date(2024, 5, 1),)) == '["2024-05-01"]'
    stamp = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)
    assert keys.record_key((stamp,)) == '["2024-05-01T12:00:00+00:00"]'
    assert keys.record_key((b"\x01\xff",)) == '["01ff"]'
    assert json.loads(keys.record_key(("a b", 1))) == ["a b", 1]


def test_record_key_refuses_a_primary_key_type_it_cannot_name_exactly():
    with pytest.raises(TypeError) as exc_info:
        keys.record_key((object(),))
    assert "Cannot build a lock key" in str(exc_info.value)
    assert "object" in str(exc_info.value)


def test_different_records_get_different_keys():
    cases = [
        ("adv_counter", (1,)),
        ("adv_counter", (2,)),
        ("adv_tag", (1,)),
        ("adv_tag", ("1",)),  # the integer 1 and the string "1" are different keys
        ("adv_shelf", ("eu", 7)),
        ("adv_shelf", ("eu", 8)),
        ("adv_shelf", ("ev", 7)),
        ("adv_shelf", (7, "eu")),
        ("adv_shelf", ("eu,7",)),
    ]
    record_keys = {(t, keys.record_key(i)) for t, i in cases}
    assert len(record_keys) == len(cases)
    assert len({keys.advisory_key(t, i) for t, i in cases}) == len(cases)
    many = {keys.advisory_key("adv_counter", (n,)) for n in range(100_000)}
    assert len(many) == 100_000


def test_lock_shows_the_fixed_key_in_pg_locks(session_factory, url):
    engine = session_factory.kw["bind"]
    with session_factory() as session:
        counter = session.get(Counter, 1)
        pid = backend_pid(session)
        with counter.lock():
            assert key_of(counter) == FIXED_KEYS[0][1]
            assert lock_rows(engine, FIXED_KEYS[0][1]) == [(pid, "ExclusiveLock", True)]


@pytest.mark.parametrize(
    ("model", "pk", "other_pk", "described", "fixed"),
    [
        ("Shelf", ("eu", 7), ("eu", 8), "Shelf(region='eu', number=7)", FIXED_KEYS[1][1]),
        ("Ticket", TICKET_ID, None, f"Ticket(id={TICKET_ID!r})", FIXED_KEYS[2][1]),
        ("Tag", "alpha", None, "Tag(name='alpha')", None),
    ],
)
def test_lock_of_composite_and_non_integer_keys_excludes_another_process(
    session_factory, url, model, pk, other_pk, described, fixed
):
    acquired, release, held = CTX.Event(), CTX.Event(), CTX.Queue()
    refused = CTX.Queue()
    holder = (hold, (url, model, pk, False, None, acquired, release, held))
    with children(holder):
        assert acquired.wait(WAIT)
        holder_pid = held.get(timeout=WAIT)["pid"]
        with children((try_lock, (url, model, pk, True, None, False, refused))):
            assert refused.get(timeout=WAIT)["event"] == "asking"
            report = refused.get(timeout=WAIT)
        if other_pk is not None:
            free = CTX.Queue()
            with children((try_lock, (url, model, other_pk, True, None, False, free))):
                free.get(timeout=WAIT)
                assert free.get(timeout=WAIT)["event"] == "acquired"
        with session_factory() as session:
            record = session.get(MODELS[model], pk)
            key = key_of(record)
            assert record.is_locked() is True
            # The reported pid is the backend holding the lock (other databases on the
            # server may show the same key too, hence ``in``).
            assert (holder_pid, "ExclusiveLock", True) in lock_rows(session.connection(), key)
        release.set()
        assert held.get(timeout=WAIT) == {"event": "committed"}
    assert report["type"] == "RecordLockedError"
    assert report["record"] == described
    assert report["message"] == f"{described} is locked by another transaction."
    assert (report["owner"], report["expires_at"]) == (None, None)
    if fixed is not None:
        assert key == fixed


def test_locking_a_record_not_yet_in_the_database_raises(session_factory, url):
    with session_factory() as session:
        shelf = Shelf(region="us", number=1)
        session.add(shelf)
        with pytest.raises(chrononaut.ChrononautException) as exc_info, shelf.lock():
            pass
        assert type(exc_info.value) is chrononaut.ChrononautException
        assert str(exc_info.value) == (
            "Shelf instance is not in the database yet; commit it before locking it."
        )
