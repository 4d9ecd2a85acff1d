"""``flask chrononaut prune``: what it would delete, what it deleted, bad options."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from freezegun import freeze_time

from chrononaut import Versioned

START = datetime(2024, 1, 1, tzinfo=timezone.utc)


@pytest.fixture
def models(db):
    class Page(db.Model, Versioned):
        id = db.Column(db.Integer, primary_key=True)
        title = db.Column(db.String(40))

    class Tag(db.Model, Versioned):
        id = db.Column(db.Integer, primary_key=True)
        name = db.Column(db.String(40))

    db.create_all()
    pages = [Page(id=i, title="t") for i in (1, 2)]
    tag = Tag(id=1, name="n")
    db.session.add_all([*pages, tag])
    db.session.commit()
    for day in range(4):  # versions 0..3 of each, one day apart
        with freeze_time(START + timedelta(days=day)):
            for page in pages:
                page.title = f"t{day}"
            tag.name = f"n{day}"
            db.session.commit()
    return Page, Tag


def run(app, *args):
    return app.test_cli_runner().invoke(args=["chrononaut", "prune", *args])


def history_count(db, cls):
    return db.session.query(cls.__history_mapper__.class_).count()


def test_dry_run_prints_what_it_would_delete_and_deletes_nothing(app, db, models):
    Page, Tag = models
    result = run(app, "--keep-last", "1", "--dry-run")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        "Page: would delete 6 history row(s)",
        "Tag: would delete 3 history row(s)",
        "Total: would delete 9 history row(s)",
    ]
    assert (history_count(db, Page), history_count(db, Tag)) == (8, 4)


def test_prune_deletes_and_reports(app, db, models):
    Page, Tag = models
    with freeze_time(START + timedelta(days=400)):
        result = run(app, "--older-than", "398d", "--keep-last", "1", "--model", "Page")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        "Page: deleted 4 history row(s)",  # days 0 and 1, of two pages
        "Total: deleted 4 history row(s)",
    ]
    assert (history_count(db, Page), history_count(db, Tag)) == (4, 4)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "Give --older-than and/or --keep-last"),
        (("--older-than", "365"), "is not a duration"),
        (("--older-than", "1y"), "is not a duration"),
        (("--older-than", "-5d"), "is not a duration"),
        (("--keep-last", "0"), "keep_last must be at least 1"),
        (("--keep-last", "x"), "is not a valid integer"),
        (("--keep-last", "1", "--batch-size", "0"), "batch_size must be at least 1"),
        (("--keep-last", "1", "--model", "Nope"), "No versioned model named 'Nope'"),
    ],
)
def test_bad_options_are_refused_and_nothing_is_deleted(app, db, models, args, message):
    Page, _ = models
    result = run(app, *args)
    assert result.exit_code == 2
    assert message in result.output
    assert history_count(db, Page) == 8
