"""A change to a record's collections is a change of the record: version bumped, history written.

Adding or removing members of a many-to-many or one-to-many collection bumps
the owner's ``version`` (checked against the loaded one, so two users editing
a document's tags conflict instead of silently replacing each other's) and
writes a history row whose change_info names the relationship and the primary
keys added and removed. Relationships listed in ``__chrononaut_untracked__``
are left out.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from chrononaut import ConflictError, Versioned


@pytest.fixture
def models(Base, engine, session):
    tagging = sa.Table(
        "doc_tag",
        Base.metadata,
        sa.Column("doc_id", sa.ForeignKey("doc.id"), primary_key=True),
        sa.Column("tag_id", sa.ForeignKey("tag.id"), primary_key=True),
    )

    class Tag(Base):
        __tablename__ = "tag"
        id: Mapped[int] = mapped_column(primary_key=True)
        name: Mapped[str]

    class Doc(Base, Versioned):
        __tablename__ = "doc"
        __chrononaut_untracked__ = ["watchers"]
        id: Mapped[int] = mapped_column(primary_key=True)
        title: Mapped[str]
        tags: Mapped[list[Tag]] = relationship(secondary=tagging)
        lines: Mapped[list[Line]] = relationship(
            back_populates="doc", cascade="all, delete-orphan", order_by="Line.id"
        )
        watchers: Mapped[list[Watcher]] = relationship(back_populates="doc")

    class Line(Base, Versioned):
        __tablename__ = "line"
        id: Mapped[int] = mapped_column(primary_key=True)
        doc_id: Mapped[int | None] = mapped_column(sa.ForeignKey("doc.id"))
        text: Mapped[str]
        doc: Mapped[Doc | None] = relationship(back_populates="lines")

    class Watcher(Base):
        __tablename__ = "watcher"
        id: Mapped[int] = mapped_column(primary_key=True)
        doc_id: Mapped[int | None] = mapped_column(sa.ForeignKey("doc.id"))
        doc: Mapped[Doc | None] = relationship(back_populates="watchers")

    Base.metadata.create_all(engine)
    session.add_all([Tag(id=i, name=f"t{i}") for i in (1, 2, 3)])
    session.add(Doc(id=1, title="draft", lines=[Line(id=1, text="a")]))
    session.commit()
    session.get(Doc, 1).tags = [session.get(Tag, 1)]
    session.commit()
    return Doc, Tag, Line, Watcher


def history(session, Doc):
    hist = Doc.__history_mapper__.class_
    rows = session.scalars(sa.select(hist).order_by(hist.version)).all()
    return [(h.version, h.change_info.get("relationships")) for h in rows]


def test_adding_and_removing_tags_bumps_the_version_and_names_the_keys(models, session):
    Doc, Tag, _, _ = models
    doc, one, three = session.get(Doc, 1), session.get(Tag, 1), session.get(Tag, 3)
    assert doc.version == 1
    doc.tags.remove(one)
    doc.tags.append(three)
    session.commit()
    assert doc.version == 2
    assert history(session, Doc) == [
        (0, {"tags": {"added": [[1]], "removed": []}}),
        (1, {"tags": {"added": [[3]], "removed": [[1]]}}),
    ]


def test_a_new_member_is_named_by_the_key_the_flush_gave_it(models, session):
    Doc, _, Line, _ = models
    doc = session.get(Doc, 1)
    doc.lines.append(Line(id=7, text="b"))
    session.commit()
    assert history(session, Doc)[-1] == (1, {"lines": {"added": [[7]], "removed": []}})


def test_a_column_and_a_collection_changed_together_make_one_version(models, session):
    Doc, Tag, _, _ = models
    doc, two = session.get(Doc, 1), session.get(Tag, 2)
    tags = doc.tags  # loaded before the change: loading would autoflush the title alone
    doc.title = "final"
    tags.append(two)
    session.commit()
    assert doc.version == 2
    last = Doc.__history_mapper__.class_
    row = session.scalars(sa.select(last).where(last.version == 1)).one()
    assert (row.title, row.change_info["relationships"]) == (
        "draft",
        {"tags": {"added": [[2]], "removed": []}},
    )


def test_two_users_changing_tags_conflict_instead_of_replacing_each_other(models, session_factory):
    Doc, Tag, _, _ = models
    with session_factory() as alice, session_factory() as bob:
        alice_doc, bob_doc = alice.get(Doc, 1), bob.get(Doc, 1)
        alice_doc.tags.append(alice.get(Tag, 2))
        alice.commit()
        bob_doc.tags.append(bob.get(Tag, 3))
        with pytest.raises(ConflictError) as exc_info:
            bob.commit()
        bob.rollback()
    error = exc_info.value
    assert (error.expected_version, error.current_version) == (1, 2)
    assert [c.columns for c in error.changes] == [("tags",)]
    with session_factory() as check:
        assert sorted(t.id for t in check.get(Doc, 1).tags) == [1, 2]


def test_apply_changes_merges_a_stale_form_naming_a_relationship(models, session_factory):
    Doc, Tag, _, _ = models
    with session_factory() as alice, session_factory() as bob:
        alice.get(Doc, 1).title = "alice's"
        alice.commit()
        doc = bob.get(Doc, 1)  # version 2; bob's form was rendered from version 1
        doc.apply_changes({"tags": [bob.get(Tag, 3)]}, base_version=1)
        bob.commit()
        alice.get(Doc, 1).tags = []
        alice.commit()
        with pytest.raises(ConflictError) as exc_info:
            bob.get(Doc, 1).apply_changes({"tags": [bob.get(Tag, 1)]}, base_version=2)
    assert exc_info.value.columns == ("tags",)


def test_an_untracked_relationship_changes_neither_version_nor_history(models, session):
    Doc, _, _, Watcher = models
    doc = session.get(Doc, 1)
    doc.watchers.append(Watcher(id=1))
    session.commit()
    assert doc.version == 1
    assert len(history(session, Doc)) == 1


def test_setting_a_reference_to_the_object_it_already_points_at_writes_nothing(models, session):
    Doc, _, Line, _ = models
    line = session.get(Line, 1)
    line.doc = session.get(Doc, 1)  # already its document
    session.commit()
    assert line.version == 0
    hist = Line.__history_mapper__.class_
    assert session.scalars(sa.select(hist)).all() == []


def test_untracked_relationships_must_name_a_column_or_relationship(Base):
    from chrononaut import ConfigurationError

    with pytest.raises(ConfigurationError) as exc_info:

        class Page(Base, Versioned):
            __tablename__ = "page"
            __chrononaut_untracked__ = ["nothing"]
            id: Mapped[int] = mapped_column(primary_key=True)

    assert "names 'nothing', which is not a column of Page" in str(exc_info.value)
