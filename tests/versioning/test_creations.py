"""Creation events (``chrononaut_creations``) and changesets (``transaction_id``)."""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from freezegun import freeze_time
from sqlalchemy.orm import Mapped, mapped_column, sessionmaker

import chrononaut
from chrononaut import Versioned, acting_as, append_change_info, rationale, suppress_versioning
from chrononaut.context import PENDING_TOP_INFO_KEY
from chrononaut.versioning.creations import MAX_GAP

T0 = datetime(2024, 1, 1, 8, 0, tzinfo=timezone.utc)


@pytest.fixture
def Note(Base, engine):
    class Note(Base, Versioned):
        __tablename__ = "note"
        id: Mapped[int] = mapped_column(primary_key=True)
        text: Mapped[str]

    Base.metadata.create_all(engine)
    return Note


def creations(session):
    rows = session.execute(
        sa.text(
            "SELECT table_name, k, version, change_info, transaction_id "
            "FROM chrononaut_creations, unnest(record_keys) AS k ORDER BY k, version"
        )
    )
    return [tuple(r) for r in rows]


def history_rows(session, table):
    return session.execute(sa.text(f"SELECT * FROM {table} ORDER BY id, version")).all()


def test_flush_records_who_created_each_record_and_history_stays_empty(Note, session):
    with acting_as("alice"), rationale("import"):
        session.add_all([Note(text="a"), Note(text="b")])
        session.commit()

    rows = creations(session)
    assert [(t, k, v) for t, k, v, _, _ in rows] == [("note", "[1]", 0), ("note", "[2]", 0)]
    info = rows[0][3]
    assert info == {"user_id": "alice", "remote_addr": None, "extra": {"rationale": "import"}}
    assert rows[0][4] == rows[1][4]  # one transaction, one changeset
    assert history_rows(session, "note_history") == []  # history holds prior versions only
    assert session.get(Note, 1).versions() == []


def test_pending_change_info_goes_to_the_creation_event_once(Note, session):
    note = Note(id=1, text="a")
    session.add_all([note, Note(id=2, text="plain")])  # one flush, two change_infos
    with append_change_info(note, reason="migrated"):
        pass
    sa.inspect(note).info[PENDING_TOP_INFO_KEY] = {"restored": True}  # as restore() does
    session.commit()
    [(_, _, _, info, _), (_, _, _, plain, _)] = creations(session)
    assert info["extra"] == {"reason": "migrated"} and info["restored"] is True
    assert plain == {"user_id": None, "remote_addr": None}
    note.text = "b"
    session.commit()
    [old] = note.versions()
    assert "extra" not in old.change_info and "restored" not in old.change_info


def test_one_event_row_per_version_and_change_info_of_a_flush(Note, session):
    """A flush's records share a row (their keys in order) unless their version or
    change_info differ; each record is still found by its key."""
    session.add(Note(id=7, text="old"))
    session.commit()
    session.delete(session.get(Note, 7))
    session.commit()
    own = Note(id=3, text="own")
    session.add_all([Note(id=n, text="bulk") for n in (10, 2, 30)] + [own, Note(id=7, text="b")])
    with append_change_info(own, reason="by hand"):
        pass
    session.commit()
    rows = session.execute(
        sa.text(
            "SELECT record_keys, key_span, version, change_info -> 'extra' "
            "FROM chrononaut_creations ORDER BY transaction_id, version, record_keys"
        )
    ).all()
    spans = [(r.key_span.lower, r.key_span.upper) for r in rows]  # canonical: [lower, upper)
    assert [(r.record_keys, r.version, r[3]) for r in rows] == [
        (["[7]"], 0, None),  # the first flush
        (["[10]", "[2]", "[30]"], 0, None),  # the flush's records without own info
        (["[3]"], 0, {"reason": "by hand"}),
        (["[7]"], 1, None),  # inserted again after its deletion row: version 1
    ]
    assert spans == [(7, 8), (2, 31), (3, 4), (7, 8)]
    for key, version in ((2, 0), (3, 0), (7, 1), (30, 0)):
        found = session.execute(
            sa.text(
                "SELECT max(version) FROM chrononaut_creations WHERE table_name = 'note' "
                "AND key_span @> CAST(:id AS bigint) AND record_keys @> ARRAY[CAST(:k AS text)]"
            ),
            {"id": key, "k": f"[{key}]"},
        ).scalar()
        assert found == version


def test_keys_far_apart_get_event_rows_of_their_own_and_all_are_found(Note, session):
    """Spans stay narrow: a gap wider than MAX_GAP starts a row; lookups find each key."""
    far = [-(2**31), 1, 2, 3, 3 + MAX_GAP, 10_000, 10_001, 2**31 - 1]
    with freeze_time(T0):
        session.add_all([Note(id=n, text="x") for n in reversed(far)])
        session.commit()
    spans = session.execute(
        sa.text("SELECT lower(key_span), upper(key_span) - 1 FROM chrononaut_creations ORDER BY 1")
    ).all()
    assert [tuple(s) for s in spans] == [
        (-(2**31), -(2**31)),
        (1, 3 + MAX_GAP),
        (10_000, 10_001),
        (2**31 - 1, 2**31 - 1),
    ]
    for n in far:
        note = session.get(Note, n)
        assert note.version_at(T0 - timedelta(seconds=1)) is None
        assert note.version_at(T0 + timedelta(seconds=1)) is note
    session.add(Note(id=4, text="later"))  # inside the first span, a row of its own
    session.commit()
    assert session.get(Note, 4).version_at(T0 + timedelta(seconds=1)) is None


def test_reinserted_key_gets_a_creation_event_of_its_new_version(Note, session):
    session.add(Note(id=5, text="a"))
    session.commit()
    session.delete(session.get(Note, 5))
    session.commit()
    again = Note(id=5, text="b")
    session.add(again)
    session.commit()
    assert again.version == 1
    assert [(k, v) for _, k, v, _, _ in creations(session)] == [("[5]", 0), ("[5]", 1)]


def test_info_appended_to_a_reinserted_record_goes_to_its_creation_only(Note, session):
    session.add(Note(id=5, text="a"))
    session.commit()
    session.delete(session.get(Note, 5))
    session.commit()
    again = Note(id=5, text="b")
    session.add(again)
    with append_change_info(again, reason="restored by hand"):
        pass
    session.commit()
    again.text = "c"
    session.commit()
    infos = {v: info for _, _, v, info, _ in creations(session)}
    assert infos[1]["extra"] == {"reason": "restored by hand"}
    assert "extra" not in again.previous_version().change_info


def test_version_at_before_creation_is_none_and_between_incarnations_too(Note, session):
    with freeze_time(T0):
        note = Note(id=1, text="a")
        session.add(note)
        session.commit()
    with freeze_time(T0 + timedelta(hours=1)):
        session.delete(note)
        session.commit()
    with freeze_time(T0 + timedelta(hours=3)):
        again = Note(id=1, text="b")
        session.add(again)
        session.commit()
    with freeze_time(T0 + timedelta(hours=4)):
        again.text = "c"
        session.commit()

    assert again.version_at(T0 - timedelta(seconds=1)) is None
    assert again.version_at(T0).text == "a"
    assert again.version_at(T0 + timedelta(hours=2)) is None  # deleted, not yet re-created
    assert again.version_at(T0 + timedelta(hours=3)).text == "b"
    assert again.version_at(T0 + timedelta(hours=5)) is again


def test_key_deleted_outside_chrononaut_and_inserted_again_keeps_both_events(Note, session):
    """A raw DELETE leaves no deletion row, so the key is created at version 0 again:
    the log keeps both creations, and readers take the later one."""
    with freeze_time(T0), acting_as("alice"):
        session.add(Note(id=1, text="a"))
        session.commit()
    session.execute(sa.text("DELETE FROM note WHERE id = 1"))
    session.commit()
    with freeze_time(T0 + timedelta(hours=2)), acting_as("bob"):
        again = Note(id=1, text="b")
        session.add(again)
        session.commit()

    rows = creations(session)
    assert sorted((k, v, info["user_id"]) for _, k, v, info, _ in rows) == [
        ("[1]", 0, "alice"),
        ("[1]", 0, "bob"),
    ]
    assert again.version == 0
    assert again.version_at(T0 + timedelta(hours=1)) is None  # before bob's creation
    assert again.version_at(T0 + timedelta(hours=3)) is again
    entries = chrononaut.activity(session, models=[Note])
    assert [(e.operation, e.user_id) for e in entries] == [("create", "bob"), ("create", "alice")]


def test_records_created_before_creation_events_answer_as_before(Note, session):
    session.add(Note(id=1, text="a"))
    session.commit()
    session.execute(sa.text("DELETE FROM chrononaut_creations"))
    session.commit()
    note = session.get(Note, 1)
    assert note.version_at(T0) is note


def test_suppressed_inserts_record_no_creation_event(Note, session):
    with suppress_versioning():
        session.add(Note(text="a"))
        session.commit()
        session.execute(sa.insert(Note), [{"text": "b"}])
        session.commit()
    assert creations(session) == []


def test_bulk_insert_forms_record_their_creations(Note, session):
    table = Note.__table__
    with acting_as("bulk"):
        assert session.execute(sa.insert(Note), [{"text": "a"}, {"text": "b"}]).all() == []
        single = session.execute(sa.insert(Note).values(text="c"))
        assert single.inserted_primary_key == (3,)  # the caller's result is untouched
        core = session.execute(sa.insert(table), [{"text": "d"}, {"text": "e"}])
        # the rowcount plain SQLAlchemy reports for it: psycopg 3's executemany gives -1
        assert core.rowcount == (2 if session.get_bind().dialect.driver == "psycopg2" else -1)
        session.execute(sa.insert(Note).values([{"text": "f"}, {"text": "g"}]))
        returned = session.execute(sa.insert(Note).returning(Note.text), [{"text": "h"}])
        assert returned.all() == [("h",)]  # only what the caller asked for
        session.execute(sa.insert(Note).from_select(["text"], sa.select(sa.literal("i"))))
        session.commit()
    rows = creations(session)
    assert sorted(k for _, k, _, _, _ in rows) == sorted(f"[{i}]" for i in range(1, 10)), rows
    assert {info["user_id"] for *_, info, _ in rows} == {"bulk"}
    feed = chrononaut.activity(session, models=[Note])
    assert {e.identity for e in feed} == {(i,) for i in range(1, 10)}
    assert {e.operation for e in feed} == {"create"}


def test_every_row_of_a_transaction_shares_one_transaction_id(Note, session, engine):
    session.add_all([Note(id=1, text="a"), Note(id=2, text="b")])
    session.commit()
    session.get(Note, 1).text = "a2"
    session.flush()
    session.execute(sa.update(Note).where(Note.id == 2).values(text="b2"))
    session.delete(session.get(Note, 1))
    session.add(Note(id=3, text="c"))
    session.commit()
    session.get(Note, 2).text = "b3"
    session.commit()

    ids = session.execute(
        sa.text("SELECT id, version, transaction_id FROM note_history ORDER BY id, version")
    ).all()
    first = {t for i, v, t in ids if (i, v) in {(1, 0), (2, 0), (1, 1)}}
    assert len(first) == 1 and None not in first
    [(_, _, later)] = [r for r in ids if (r[0], r[1]) == (2, 1)]
    assert later not in first
    created = {k: t for _, k, _, _, t in creations(session)}
    assert created["[3]"] in first  # the creation event rides the same changeset
    assert created["[1]"] == created["[2]"] not in first | {later}
    with engine.connect() as other:
        current = other.scalar(sa.text("SELECT pg_current_xact_id()::text::bigint"))
    assert current not in first | {later}


def test_database_guard_rows_carry_the_transaction_id(Base, engine, session):
    class Account(Base, Versioned):
        __tablename__ = "account"
        __chrononaut_database_guard__ = True
        id: Mapped[int] = mapped_column(primary_key=True)
        amount: Mapped[int]

    Base.metadata.create_all(engine)
    session.add(Account(id=1, amount=1))
    session.commit()
    with engine.begin() as connection:
        connection.execute(sa.text("UPDATE account SET amount = 2"))
        connection.execute(sa.text("DELETE FROM account"))
        expected = connection.scalar(sa.text("SELECT pg_current_xact_id()::text::bigint"))
    rows = session.execute(
        sa.text("SELECT version, transaction_id FROM account_history ORDER BY version")
    ).all()
    assert rows == [(0, expected), (1, expected)]
    feed = chrononaut.activity(session, models=[Account], transaction_id=expected)
    assert [(e.operation, e.change_info["source"]) for e in feed] == [
        ("delete", "database"),
        ("update", "database"),
    ]
    assert feed[1].columns == ("amount",)


def test_inheritance_creations_and_history_name_the_subclass(Base, engine, session):
    class Doc(Base, Versioned):
        __tablename__ = "doc"
        id: Mapped[int] = mapped_column(primary_key=True)
        kind: Mapped[str]
        title: Mapped[str]
        __mapper_args__ = {"polymorphic_on": "kind", "polymorphic_identity": "doc"}

    class Memo(Doc):
        __mapper_args__ = {"polymorphic_identity": "memo"}

    class Report(Doc):
        __tablename__ = "report"
        id: Mapped[int] = mapped_column(sa.ForeignKey("doc.id"), primary_key=True)
        pages: Mapped[int]
        __mapper_args__ = {"polymorphic_identity": "report"}

    Base.metadata.create_all(engine)
    session.add_all([Doc(id=1, title="d"), Memo(id=2, title="m")])
    session.add(Report(id=3, title="r", pages=1))
    session.commit()
    session.get(Doc, 2).title = "m2"
    report = session.get(Report, 3)
    report.pages = 2
    report.title = "r2"
    session.commit()

    feed = chrononaut.activity(session, models=[Doc])
    assert {(e.model, e.operation) for e in feed} == {
        (Doc, "create"),
        (Memo, "create"),
        (Report, "create"),
        (Memo, "update"),
        (Report, "update"),
    }
    [report_update] = [e for e in feed if e.model is Report and e.operation == "update"]
    assert report_update.columns == ("title",)  # a joined subclass's own columns: not compared
    memos = chrononaut.activity(session, models=[Memo])
    assert {(e.model, e.operation) for e in memos} == {(Memo, "create"), (Memo, "update")}

    session.execute(sa.insert(Report), [{"id": 10, "title": "b", "pages": 1}])
    session.execute(sa.insert(Memo), [{"id": 11, "title": "b"}])
    session.commit()
    feed = chrononaut.activity(session, models=[Doc], limit=2)
    assert {(e.model, e.identity, e.operation) for e in feed} == {
        (Report, (10,), "create"),
        (Memo, (11,), "create"),
    }


def test_creations_table_comes_with_the_models_once_and_follows_their_schema(engine):
    from sqlalchemy.orm import DeclarativeBase

    class Base(DeclarativeBase):
        metadata = sa.MetaData(schema="feed_app")

    class Page(Base, Versioned):
        __tablename__ = "page"
        id: Mapped[int] = mapped_column(primary_key=True)

    class Tag(Base, Versioned):
        __tablename__ = "tag"
        name: Mapped[str] = mapped_column(primary_key=True)

    with engine.begin() as connection:
        connection.exec_driver_sql("DROP SCHEMA IF EXISTS feed_app CASCADE")
        connection.exec_driver_sql("CREATE SCHEMA feed_app")
    Base.metadata.create_all(engine)
    assert [t.key for t in Base.metadata.sorted_tables].count("feed_app.chrononaut_creations") == 1
    factory = sessionmaker(engine)
    chrononaut.listen(factory)
    with factory() as session, acting_as("ann"):
        session.add_all([Page(id=1), Tag(name="x")])
        session.commit()
        feed = chrononaut.activity(session, models=[Page, Tag])
        assert {(e.model, e.identity, e.user_id) for e in feed} == {
            (Page, (1,), "ann"),
            (Tag, ("x",), "ann"),
        }
        keys_ = session.execute(
            sa.text("SELECT unnest(record_keys) FROM feed_app.chrononaut_creations")
        )
        assert sorted(k for (k,) in keys_) == ['["x"]', "[1]"]
    Base.metadata.drop_all(engine)
    with engine.begin() as connection:
        connection.exec_driver_sql("DROP SCHEMA feed_app CASCADE")


AWKWARD = ["a,b", 'q"uote', "back\\slash", "{brace}", "NULL", "tab\there", "ünï", "", " "]


def test_awkward_and_composite_keys_are_found_by_their_creation(Base, engine, session):
    """Keys travel through text arrays: quotes, commas, braces and NULL-looking text
    must come back as themselves, in the feed and in version_at()."""

    class Label(Base, Versioned):
        __tablename__ = "label"
        name: Mapped[str] = mapped_column(primary_key=True)
        text: Mapped[str]

    class Cell(Base, Versioned):
        __tablename__ = "cell"
        row: Mapped[str] = mapped_column(primary_key=True)
        col: Mapped[int] = mapped_column(primary_key=True)
        text: Mapped[str]

    Base.metadata.create_all(engine)
    with freeze_time(T0):
        session.add_all([Label(name=n, text="t") for n in AWKWARD])
        session.add_all([Cell(row=n, col=i, text="t") for i, n in enumerate(AWKWARD)])
        session.commit()
    feed = chrononaut.activity(session, models=[Label, Cell], limit=1000)
    assert sorted(e.identity for e in feed if e.model is Label) == sorted((n,) for n in AWKWARD)
    assert sorted(e.identity for e in feed if e.model is Cell) == sorted(
        (n, i) for i, n in enumerate(AWKWARD)
    )
    rows = session.execute(sa.text("SELECT count(*) FROM chrononaut_creations")).scalar()
    assert rows == 2  # one event row per model for the flush
    for i, name in enumerate(AWKWARD):
        label, cell = session.get(Label, name), session.get(Cell, (name, i))
        assert label.version_at(T0 - timedelta(seconds=1)) is None
        assert label.version_at(T0 + timedelta(seconds=1)) is label
        assert cell.version_at(T0 - timedelta(seconds=1)) is None


def test_a_large_flush_is_one_event_row_paged_through_the_feed_without_gaps(Note, session):
    count = int(os.environ.get("CHRONONAUT_STRESS", "1")) * 2500
    with acting_as("loader"):
        session.add_all([Note(text=str(n)) for n in range(count)])
        session.commit()
    assert session.execute(sa.text("SELECT count(*) FROM chrononaut_creations")).scalar() == 1
    seen, before = [], None
    while True:
        page = chrononaut.activity(session, models=[Note], limit=1000, before=before)
        if not page:
            break
        seen += [e.identity for e in page]
        before = page[-1].cursor
    assert len(seen) == count and set(seen) == {(n,) for n in range(1, count + 1)}
    assert session.get(Note, count).version_at(datetime.now(timezone.utc)) is not None


def test_the_extreme_bigint_keys_have_spans_and_are_found(Base, engine, session):
    """The largest bigint has no successor: its span is unbounded above, not an error."""

    class Big(Base, Versioned):
        __tablename__ = "big"
        id: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True)
        text: Mapped[str]

    Base.metadata.create_all(engine)
    extremes = [2**63 - 1, -(2**63), 0]
    with freeze_time(T0):
        session.add_all([Big(id=n, text="x") for n in extremes])
        session.commit()
    for n in extremes:
        big = session.get(Big, n)
        assert big.version_at(T0 - timedelta(seconds=1)) is None
        assert big.version_at(T0 + timedelta(seconds=1)) is big
