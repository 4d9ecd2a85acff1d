"""``flask chrononaut``: history, locks and leases break, through Flask's CLI runner."""

from __future__ import annotations

from datetime import timezone
from typing import Any

import pytest
import sqlalchemy as sa

from chrononaut import (
    Versioned,
    VersionedSQLAlchemy,
    acting_as,
    activity,
    extra_change_info,
    rationale,
)
from chrononaut.cli import chrononaut_cli
from chrononaut.locking import keys
from tests.flask import procs_cli


def define_models(db: VersionedSQLAlchemy) -> tuple[type[Any], type[Any]]:
    class Document(db.Model, Versioned):
        __tablename__ = "flask_document"  # procs_cli.HeldDocument maps it in children
        __chrononaut_hidden__ = ["secret"]
        id = db.Column(db.Integer, primary_key=True)
        title = db.Column(db.String(80))
        body = db.Column(db.Text)
        secret = db.Column(db.Text)

    class Shelf(db.Model, Versioned):
        __tablename__ = "cli_shelf"
        region = db.Column(db.String(8), primary_key=True)
        number = db.Column(db.Integer, primary_key=True)
        label = db.Column(db.String(80))

    db.create_all()
    return Document, Shelf


@pytest.fixture
def models(db):
    Document, Shelf = define_models(db)
    with acting_as("alice"), rationale("Import"):
        db.session.add_all(
            [
                Document(id=1, title="Draft", body="body", secret="first-secret-value"),
                Document(id=2, title="Other"),
                Shelf(region="eu", number=7, label="A"),
            ]
        )
        db.session.commit()
    return Document, Shelf


def run(app, *args: str) -> Any:
    return app.test_cli_runner().invoke(args=["chrononaut", *args])


def utc(moment) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def edit(db, record, user: str, why: str | None, **values: Any) -> None:
    with acting_as(user), rationale(why) if why else extra_change_info():
        for key, value in values.items():
            setattr(record, key, value)
        db.session.commit()


def test_init_app_registers_the_command_group(app, db):
    group = app.cli.commands["chrononaut"]
    assert set(group.commands) == {"history", "locks", "leases", "activity", "prune"}
    assert set(group.commands["leases"].commands) == {"break", "purge"}


# --- history ---------------------------------------------------------------------------


def test_history_prints_each_version_with_when_who_why_and_what(app, db, models):
    Document, _ = models
    document = db.session.get(Document, 1)
    edit(db, document, "bob", "Fix the title", title="Final")
    edit(db, document, "carol", "Rotate the secret", secret="second-secret-value", body="new")
    changed = [row.changed for row in document.versions()]
    [created] = [
        e.changed
        for e in activity(db.session, models=[Document])
        if e.operation == "create" and e.identity == (1,)
    ]
    result = run(app, "history", "Document", "1")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        "Document(id=1): version 2, 2 earlier version(s)",
        f"version 0  created by alice at {utc(created)}  rationale: Import",
        f"version 1  {utc(changed[0])}  by bob  rationale: Fix the title",
        "    title: 'Draft' -> 'Final'",
        f"version 2  {utc(changed[1])}  by carol  rationale: Rotate the secret",
        "    body: 'body' -> 'new'",
        "    secret: changed (hidden)",
    ]


def test_history_never_prints_hidden_values(app, db, models):
    Document, _ = models
    edit(db, db.session.get(Document, 1), "carol", None, secret="second-secret-value")
    result = run(app, "history", "Document", "1")
    assert result.exit_code == 0, result.output
    assert "secret: changed (hidden)" in result.output
    assert "secret-value" not in result.output
    assert "rationale: -" in result.output


def test_history_shows_extra_info_and_a_deletion(app, db, models):
    Document, _ = models
    document = db.session.get(Document, 2)
    with acting_as("dave"), extra_change_info(ticket="OPS-12"):
        document.title = "Renamed"
        db.session.commit()
        db.session.delete(document)
        db.session.commit()
    result = run(app, "history", "Document", "2")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "Document(id=2): deleted, 2 version(s) in history"
    assert lines[3:5] == ["    title: 'Other' -> 'Renamed'", "    extra: ticket='OPS-12'"]
    assert lines[5].startswith("version 2  ") and "by dave" in lines[5]
    assert lines[6] == "    deleted the record"


def test_history_shows_a_broken_lease(app, db, models):
    Document, _ = models
    document = db.session.get(Document, 1)
    with acting_as("alice"):
        document.acquire_lease()
        db.session.commit()
    with acting_as("bob"):
        document.acquire_lease(force=True)
        db.session.commit()
    edit(db, document, "bob", "alice was away", title="Bob's")
    result = run(app, "history", "Document", "1")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[3:5] == [
        "    title: 'Draft' -> \"Bob's\"",
        "    broke the lease of alice",
    ]


def test_history_takes_a_composite_key_comma_separated(app, db, models):
    _, Shelf = models
    edit(db, db.session.get(Shelf, ("eu", 7)), "erin", "relabel", label="B")
    result = run(app, "history", "Shelf", "eu,7")
    assert result.exit_code == 0, result.output
    assert (
        result.output.splitlines()[0]
        == "Shelf(region='eu', number=7): version 1, 1 earlier version(s)"
    )
    assert "    label: 'A' -> 'B'" in result.output and "by erin" in result.output


def test_history_of_an_unknown_model_fails_naming_the_known_ones(app, db, models):
    result = run(app, "history", "Nope", "1")
    assert result.exit_code == 2
    assert "No versioned model named 'Nope'; the versioned models are: Document, Shelf." in (
        result.output
    )


def test_history_of_an_unknown_record_fails(app, db, models):
    result = run(app, "history", "Document", "99")
    assert result.exit_code == 1
    assert "Error: No Document(id=99) in the database, nor any history of it." in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("Document", "abc"), "'abc' is not a valid int for Document.id"),
        (("Shelf", "eu"), "Shelf's primary key has 2 column(s) (region, number)"),
        (("Document", "1,2"), "Document's primary key has 1 column(s) (id)"),
    ],
)
def test_history_of_a_malformed_key_fails_explaining_the_key(app, db, models, args, message):
    result = run(app, "history", *args)
    assert result.exit_code == 2
    assert message in result.output


def test_commands_push_their_own_app_context(app, clean_database):
    db = VersionedSQLAlchemy(app)
    with app.app_context():
        Document, _ = define_models(db)
        db.session.add(Document(id=1, title="Draft"))
        db.session.commit()
    result = run(app, "history", "Document", "1")  # no app context here, as with `flask`
    assert result.exit_code == 0, result.output
    assert result.output.startswith("Document(id=1): version 0, 0 earlier version(s)")
    with app.app_context():
        for engine in db.engines.values():
            engine.dispose()


def test_a_command_on_an_app_without_the_extension_fails_clearly(app):
    result = app.test_cli_runner().invoke(chrononaut_cli, ["locks"])
    assert result.exit_code == 1
    assert "This app has no VersionedSQLAlchemy" in result.output


# --- locks -----------------------------------------------------------------------------


def test_locks_lists_nothing_when_nothing_is_held(app, db, models):
    result = run(app, "locks")
    assert result.exit_code == 0, result.output
    assert result.output == "Leases:\n  none\nAdvisory locks:\n  none\n"


def test_locks_lists_a_lease_and_another_processs_advisory_lock(app, db, models, clean_database):
    Document, _ = models
    with acting_as("alice"):
        lease = db.session.get(Document, 1).acquire_lease()
        db.session.commit()
    with procs_cli.lock_holder(clean_database, 2) as pid:
        result = run(app, "locks")
        with db.engine.connect() as connection:
            user, since = connection.execute(
                sa.text("SELECT usename, xact_start FROM pg_stat_activity WHERE pid = :p"),
                {"p": pid},
            ).one()
    assert result.exit_code == 0, result.output
    key = keys.advisory_key(keys.table_name(Document), (2,))
    assert result.output.splitlines() == [
        "Leases:",
        f"  Document(id=1)  owner alice  until {utc(lease.expires_at)}  "
        f"(since {utc(lease.acquired_at)})",
        "Advisory locks:",
        f"  key {key}  exclusive, held  pid {pid}  user {user}  "
        f"application {procs_cli.APPLICATION}  since {utc(since)}",
    ]


def test_locks_leaves_out_expired_leases(app, db, models):
    Document, _ = models
    with acting_as("alice"):
        db.session.get(Document, 1).acquire_lease()
        db.session.get(Document, 2).acquire_lease()
        db.session.commit()
    db.session.execute(
        sa.text(
            "UPDATE chrononaut_leases SET expires_at = now() - interval '1 minute' "
            "WHERE record_key = '[2]'"
        )
    )
    db.session.commit()
    result = run(app, "locks")
    assert result.exit_code == 0, result.output
    assert "Document(id=1)  owner alice" in result.output
    assert "Document(id=2)" not in result.output


# --- leases break ----------------------------------------------------------------------


def test_leases_break_removes_the_lease_and_says_whose_it_was(app, db, models):
    Document, _ = models
    with acting_as("alice"):
        lease = db.session.get(Document, 1).acquire_lease()
        db.session.commit()
    result = run(app, "leases", "break", "Document", "1")
    assert result.exit_code == 0, result.output
    assert result.output == (
        f"Broke alice's lease on Document(id=1) (it ran until {utc(lease.expires_at)}).\n"
    )
    assert db.session.get(Document, 1).lease is None
    with acting_as("bob"):  # bob may take it now
        assert db.session.get(Document, 1).acquire_lease().owner == "bob"
        db.session.commit()
    assert "owner bob" in run(app, "locks").output


def test_leases_break_without_a_lease_says_so(app, db, models):
    result = run(app, "leases", "break", "Shelf", "eu,7")
    assert result.exit_code == 0, result.output
    assert result.output == "No lease on Shelf(region='eu', number=7).\n"


def test_leases_break_of_an_unknown_model_fails(app, db, models):
    result = run(app, "leases", "break", "Nope", "1")
    assert result.exit_code == 2
    assert "No versioned model named 'Nope'" in result.output


# --- creation events in history, and activity -------------------------------------------


def test_history_of_a_key_inserted_again_shows_both_creations(app, db, models):
    Document, _ = models
    db.session.delete(db.session.get(Document, 2))
    db.session.commit()
    with acting_as("erin"), rationale("Back"):
        again = Document(id=2, title="Again")
        db.session.add(again)
        db.session.commit()
    lines = run(app, "history", "Document", "2").output.splitlines()
    assert lines[1].startswith("version 0  created by alice at ")
    assert lines[-1].startswith("version 1  created by erin at ")
    assert lines[-1].endswith("rationale: Back")


def test_history_without_a_creation_event_says_it_is_not_recorded(app, db, models):
    db.session.execute(sa.text("DELETE FROM chrononaut_creations"))
    db.session.commit()
    lines = run(app, "history", "Document", "1").output.splitlines()
    assert lines[1] == "version 0  created (when and by whom is not recorded)"


def test_activity_prints_the_newest_changes_across_models(app, db, models):
    Document, _ = models
    edit(db, db.session.get(Document, 1), "bob", "Fix the title", title="Final", secret="x")
    result = run(app, "activity")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert len(lines) == 4
    assert "  update  Document(id=1)  version 1  by bob  transaction " in lines[0]
    assert lines[0].endswith("changed: title, secret  rationale: Fix the title")
    assert {line.split("  ")[2] for line in lines[1:]} == {
        "Document(id=1)",
        "Document(id=2)",
        "Shelf(region='eu', number=7)",
    }
    assert all("  create  " in line and "by alice" in line for line in lines[1:])

    by_bob = run(app, "activity", "--user", "bob", "--model", "Document").output.splitlines()
    assert len(by_bob) == 1 and "by bob" in by_bob[0]
    shelves = run(app, "activity", "--model", "Shelf", "--limit", "5").output.splitlines()
    assert len(shelves) == 1 and "Shelf(region='eu', number=7)" in shelves[0]
    assert run(app, "activity", "--since", "2999-01-01").output == "No changes.\n"
    assert len(run(app, "activity", "--limit", "2").output.splitlines()) == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--since", "yesterday"], "'yesterday' is not an ISO date or time"),
        (["--limit", "0"], "0 is not in the range 1<=x<=1000"),
        (["--model", "Nope"], "No versioned model named 'Nope'"),
        (["--user", " "], "must name someone"),
    ],
)
def test_activity_refuses_bad_options(app, db, models, args, message):
    result = run(app, "activity", *args)
    assert result.exit_code != 0
    assert message in result.output


# --- leases purge ----------------------------------------------------------------------


def test_leases_purge_deletes_every_expired_lease_and_keeps_the_live_ones(app, db, models):
    Document, _ = models
    db.session.add_all([Document(id=n, title=f"Doc {n}") for n in range(10, 510)])
    db.session.commit()
    with acting_as("alice"):
        db.session.get(Document, 1).acquire_lease()
        db.session.commit()
    db.session.execute(
        sa.text(
            "INSERT INTO chrononaut_leases "
            "SELECT 'flask_document', '[' || n || ']', 'bob', now() - interval '2 hours', "
            "now() - interval '1 hour' FROM generate_series(10, 509) AS n"
        )
    )
    db.session.commit()
    result = run(app, "leases", "purge")
    assert result.exit_code == 0, result.output
    assert result.output == "Deleted 500 expired lease(s).\n"
    owners = db.session.execute(sa.text("SELECT owner FROM chrononaut_leases")).scalars().all()
    assert owners == ["alice"]
    assert run(app, "leases", "purge").output == "Deleted 0 expired lease(s).\n"


def test_leases_purge_without_a_leases_table_deletes_nothing(app, db):
    db.create_all()
    result = run(app, "leases", "purge")
    assert result.exit_code == 0, result.output
    assert result.output == "Deleted 0 expired lease(s).\n"


# --- control characters ----------------------------------------------------------------


def test_printed_values_escape_control_characters(app, db, models):
    Document, _ = models
    document = db.session.get(Document, 1)
    evil = "mallory\x1b[2J\nversion 9  forged"
    extra = extra_change_info(**{"ticket\x1b[31m": "x"})
    with acting_as(evil), extra, rationale("why\rnot\u202e"):
        document.title = "Changed"
        db.session.commit()
    with acting_as(evil):
        document.acquire_lease()
        db.session.commit()
    shown = run(app, "history", "Document", "1").output + run(app, "locks").output
    shown += run(app, "leases", "break", "Document", "1").output
    assert "\x1b" not in shown and "\r" not in shown and "\u202e" not in shown
    assert "by mallory\\x1b[2J\\nversion 9  forged  rationale: why\\rnot\\u202e" in shown
    assert "extra: ticket\\x1b[31m='x'" in shown
    assert "owner mallory\\x1b[2J\\nversion 9  forged  until" in shown
    assert "Broke mallory\\x1b[2J\\nversion 9  forged's lease" in shown
    assert not any(line.startswith("version 9") for line in shown.splitlines())
