"""Stale forms and units of work: check_version(), apply_changes(), retry_on_conflict()."""

from __future__ import annotations

import pytest

from chrononaut import ConflictError, RecordLockedError, acting_as, retry_on_conflict

from .test_optimistic import Doc, history, new_doc, statements, stored, where_version, writes_to

__all__ = ["Doc", "statements"]  # fixtures shared with test_optimistic


def bump_elsewhere(session_factory, Doc, user="bob", **values):
    """Another session changes doc 42 and commits (a new version)."""
    with session_factory() as theirs:
        doc = theirs.get(Doc, 42)
        for key, value in (values or {"status": "changed elsewhere"}).items():
            setattr(doc, key, value)
        with acting_as(user):
            theirs.commit()


# --- check_version ---------------------------------------------------------------


def test_check_version_raises_conflict_when_the_form_was_rendered_from_an_older_version(
    session_factory, Doc, engine
):
    new_doc(session_factory, Doc)  # the form is rendered from version 0
    bump_elsewhere(session_factory, Doc, title="renamed")
    with session_factory() as s:
        doc = s.get(Doc, 42)
        with pytest.raises(ConflictError) as exc_info:
            doc.check_version(0)
        s.rollback()

    err = exc_info.value
    assert (err.record, err.expected_version, err.current_version) == ("Doc(id=42)", 0, 1)
    assert [(c.version, c.user_id, c.columns) for c in err.changes] == [(1, "bob", ("title",))]
    assert str(err).startswith("Doc(id=42) changed since you loaded version 0: version 1 by bob")
    assert stored(engine, Doc)["version"] == 1


def test_check_version_passes_and_puts_the_expected_version_in_the_update_where(
    session_factory, Doc, statements
):
    new_doc(session_factory, Doc, version=3)
    with session_factory() as s:
        doc = s.get(Doc, 42)
        doc.check_version(3)
        statements.clear()
        doc.title = "from the form"
        s.commit()

    [(sql, params)] = writes_to(statements, "UPDATE")
    assert where_version(sql, params) == 3


def test_commit_between_check_version_and_flush_still_raises_conflict(
    session_factory, Doc, engine
):
    new_doc(session_factory, Doc)
    with session_factory() as s:
        doc = s.get(Doc, 42)
        doc.check_version(0)
        bump_elsewhere(session_factory, Doc, status="review")
        doc.title = "from the form"
        with pytest.raises(ConflictError) as exc_info:
            s.commit()
        s.rollback()

    assert (exc_info.value.expected_version, exc_info.value.current_version) == (0, 1)
    assert exc_info.value.columns == ("status",)
    row = stored(engine, Doc)
    assert (row["title"], row["status"]) == ("draft", "review")


def test_check_version_refuses_a_non_integer_version(session_factory, Doc):
    new_doc(session_factory, Doc)
    with session_factory() as s:
        doc = s.get(Doc, 42)
        with pytest.raises(TypeError) as exc_info:
            doc.check_version("0")
    assert "'0'" in str(exc_info.value)


# --- apply_changes ---------------------------------------------------------------


def test_apply_changes_merges_columns_nobody_changed_since_the_base_version(
    session_factory, Doc, engine
):
    new_doc(session_factory, Doc)  # form rendered from version 0
    bump_elsewhere(session_factory, Doc, status="review", views=7)
    with session_factory() as s:
        doc = s.get(Doc, 42)
        doc.apply_changes({"title": "from the form", "views": 1}, base_version=0)
        s.commit()

    row = stored(engine, Doc)
    assert (row["title"], row["status"], row["views"], row["version"]) == (
        "from the form",
        "review",
        1,
        2,
    )
    assert [h[:3] for h in history(engine, Doc)] == [(0, "draft", "draft"), (1, "draft", "review")]


def test_apply_changes_with_overlapping_columns_raises_conflict_naming_the_overlap(
    session_factory, Doc, engine
):
    new_doc(session_factory, Doc)
    bump_elsewhere(session_factory, Doc, title="theirs", secret="s3cr3t")
    bump_elsewhere(session_factory, Doc, user="carol", status="review")
    with session_factory() as s:
        doc = s.get(Doc, 42)
        with pytest.raises(ConflictError) as exc_info:
            doc.apply_changes({"title": "mine", "secret": "x", "views": 3}, base_version=0)
        s.commit()  # nothing was applied, so nothing is written

    err = exc_info.value
    assert err.columns == ("secret", "title")
    assert (err.expected_version, err.current_version) == (0, 2)
    assert [(c.version, c.user_id, c.columns) for c in err.changes] == [
        (1, "bob", ("title", "secret")),
        (2, "carol", ("status",)),
    ]
    assert "s3cr3t" not in str(err)
    row = stored(engine, Doc)
    assert (row["title"], row["views"], row["version"]) == ("theirs", 0, 2)


@pytest.mark.parametrize("column", ["nonsense", "version"])
def test_apply_changes_rejects_columns_that_are_not_editable(session_factory, Doc, column):
    new_doc(session_factory, Doc)
    with session_factory() as s:
        doc = s.get(Doc, 42)
        with pytest.raises(ValueError) as exc_info:
            doc.apply_changes({column: 1, "title": "x"}, base_version=0)
        assert doc.title == "draft"
    assert repr(column) in str(exc_info.value)
    assert "Doc" in str(exc_info.value)


# --- retry_on_conflict -----------------------------------------------------------


def test_retry_on_conflict_reruns_after_rollback_until_the_write_succeeds(
    session_factory, Doc, engine
):
    new_doc(session_factory, Doc)
    attempts_seen = []

    with session_factory() as s:

        @retry_on_conflict(attempts=3)
        def rename():
            doc = s.get(Doc, 42)
            attempts_seen.append(doc.version)
            if len(attempts_seen) < 3:
                bump_elsewhere(session_factory, Doc, status=f"race {len(attempts_seen)}")
            doc.title = "renamed"
            s.commit()
            return doc.version

        assert rename() == 3

    assert attempts_seen == [0, 1, 2]  # each attempt reloaded after a rollback
    row = stored(engine, Doc)
    assert (row["title"], row["status"], row["version"]) == ("renamed", "race 2", 3)


def test_retry_on_conflict_reraises_after_the_last_attempt_with_the_session_rolled_back(
    session_factory, Doc, engine
):
    new_doc(session_factory, Doc)
    calls = []

    with session_factory() as s:

        @retry_on_conflict(attempts=4)
        def always_loses():
            doc = s.get(Doc, 42)
            calls.append(doc.version)
            bump_elsewhere(session_factory, Doc, status=f"race {len(calls)}")
            doc.title = "never"
            s.commit()

        with pytest.raises(ConflictError) as exc_info:
            always_loses()
        assert not s.in_transaction()
        assert s.get(Doc, 42).version == 4  # usable without a rollback of our own

    assert calls == [0, 1, 2, 3]
    assert (exc_info.value.expected_version, exc_info.value.current_version) == (3, 4)
    assert stored(engine, Doc)["title"] == "draft"


def test_bare_retry_on_conflict_makes_three_attempts(session_factory, Doc):
    new_doc(session_factory, Doc)
    calls = []

    with session_factory() as s:

        @retry_on_conflict
        def always_loses():
            doc = s.get(Doc, 42)
            calls.append(doc.version)
            bump_elsewhere(session_factory, Doc, status=f"race {len(calls)}")
            doc.title = "never"
            s.commit()

        with pytest.raises(ConflictError) as exc_info:
            always_loses()

    assert calls == [0, 1, 2]
    assert exc_info.value.expected_version == 2
    assert always_loses.__name__ == "always_loses"


def test_retry_on_conflict_never_retries_a_lock_error(session_factory, Doc, engine):
    new_doc(session_factory, Doc)
    calls = []

    with session_factory() as s, session_factory() as holder:

        @retry_on_conflict(attempts=5)
        def edit_locked():
            calls.append(1)
            doc = s.get(Doc, 42)
            with doc.lock(nowait=True):
                doc.title = "never"

        with holder.get(Doc, 42).lock(), pytest.raises(RecordLockedError) as exc_info:
            edit_locked()

    assert calls == [1]
    assert exc_info.value.record == "Doc(id=42)"
    assert (exc_info.value.owner, exc_info.value.expires_at) == (None, None)
    assert stored(engine, Doc)["title"] == "draft"


@pytest.mark.parametrize("attempts", [0, -1, 2.5])
def test_retry_on_conflict_refuses_a_bad_number_of_attempts(attempts):
    with pytest.raises(ValueError) as exc_info:
        retry_on_conflict(attempts=attempts)
    assert repr(attempts) in str(exc_info.value)
