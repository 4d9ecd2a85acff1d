"""The column policy: tracked, hidden and untracked columns, held once per mapped class."""

from __future__ import annotations

import dataclasses

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from chrononaut import Versioned
from chrononaut.versioning import names
from chrononaut.versioning.history import META_COLUMNS
from chrononaut.versioning.policy import ColumnPolicy


@pytest.fixture
def hierarchy(Base):
    class Doc(Base, Versioned):
        __tablename__ = "doc"
        __chrononaut_hidden__ = ["secret"]
        __chrononaut_untracked__ = ["views"]
        id: Mapped[int] = mapped_column(primary_key=True)
        kind: Mapped[str]
        title: Mapped[str | None]
        secret: Mapped[str | None]
        views: Mapped[int] = mapped_column(default=0)
        __mapper_args__ = {"polymorphic_on": "kind", "polymorphic_identity": "doc"}

    class Memo(Doc):
        __chrononaut_hidden__ = ["pin"]
        __chrononaut_untracked__ = ["opened"]
        __mapper_args__ = {"polymorphic_identity": "memo"}
        pin: Mapped[str | None] = mapped_column(nullable=True)
        opened: Mapped[int | None] = mapped_column(nullable=True)

    return Doc, Memo


def test_policy_of_the_base_class(hierarchy):
    Doc, _ = hierarchy
    policy = Doc.__chrononaut__.policy

    assert isinstance(policy, ColumnPolicy) and policy.cls is Doc
    assert set(policy.tracked) == {"id", "kind", "title"}
    assert set(policy.hidden) == {"secret"}
    assert set(policy.untracked) == {"views"}
    assert policy.hidden["secret"] is Doc.__table__.c.secret
    assert policy.versioned == {"id", "kind", "title", "secret"}
    assert policy.kind_of("views") == "untracked"


def test_single_table_subclass_has_its_own_policy(hierarchy):
    Doc, Memo = hierarchy
    policy = Memo.__chrononaut__.policy

    assert policy.cls is Memo and policy is not Doc.__chrononaut__.policy
    assert set(policy.tracked) == {"id", "kind", "title"}
    assert set(policy.hidden) == {"secret", "pin"}
    assert set(policy.untracked) == {"views", "opened"}


def test_policy_for_discriminator_finds_the_subclass_policy(hierarchy):
    Doc, Memo = hierarchy
    info = Doc.__chrononaut__

    assert info.policy_for_discriminator("memo") is Memo.__chrononaut__.policy
    assert info.policy_for_discriminator("doc") is info.policy
    with pytest.raises(ValueError) as exc_info:
        info.policy_for_discriminator("memoo")
    assert "'memoo'" in str(exc_info.value) and "'memo'" in str(exc_info.value)


def test_policy_agrees_with_versioning_info(hierarchy):
    for cls in hierarchy:
        info = cls.__chrononaut__
        assert dict(info.policy.tracked) == info.tracked
        assert set(info.policy.hidden) == info.hidden
        assert set(info.policy.untracked) == info.untracked
        assert info.policy.untracked_relationships == info.untracked_relationships


def test_policy_is_frozen(hierarchy):
    policy = hierarchy[0].__chrononaut__.policy
    with pytest.raises(dataclasses.FrozenInstanceError):
        policy.hidden = {}  # type: ignore[misc]
    with pytest.raises(TypeError):
        policy.tracked["secret"] = sa.Column("secret")  # type: ignore[index]


def test_meta_column_names_are_defined_once(hierarchy):
    assert META_COLUMNS == names.META_COLUMNS == ("version", "changed", "change_info")
    table = hierarchy[0].__chrononaut__.history_table
    assert {names.VERSION, names.CHANGED, names.CHANGE_INFO} <= set(table.c.keys())


def test_versioning_info_reads_its_sets_from_the_policy(hierarchy):
    for cls in hierarchy:
        info = cls.__chrononaut__
        assert info.tracked is info.policy.tracked
        assert info.hidden is info.policy.hidden_keys
        assert info.untracked is info.policy.untracked_keys


def test_meta_column_names_are_not_spelled_out_elsewhere_in_the_package():
    """The writers and readers of history name the meta columns through names.py only."""
    import pathlib
    import re

    import chrononaut

    root = pathlib.Path(chrononaut.__file__).parent
    literal = re.compile(r"(?<![\w'])\"(version|changed|change_info)\"")
    found = []
    for path in sorted(root.rglob("*.py")):
        if path.name == "names.py" or path.name == "exceptions.py":  # JSON field names there
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if literal.search(line) and not line.lstrip().startswith("#"):
                found.append(f"{path.relative_to(root)}:{number}: {line.strip()}")
    assert found == []
