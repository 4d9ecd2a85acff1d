"""What the distribution declares: the typing marker and the supported stacks."""

from __future__ import annotations

from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]


def _project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_py_typed_marker_ships_as_package_data():
    assert (ROOT / "chrononaut" / "py.typed").is_file()
    assert "py.typed" in _project()["tool"]["setuptools"]["package-data"]["chrononaut"]


def test_dependencies_allow_both_sqlalchemy_lines_and_the_flask_security_release():
    project = _project()["project"]
    dependencies = project["dependencies"]
    assert "sqlalchemy>=2.0,<2.2" in dependencies
    assert "flask>=3.1.3" in dependencies
    assert "psycopg2-binary>=2.9" in dependencies  # the default driver stays installed
    assert project["optional-dependencies"]["psycopg"] == ["psycopg[binary]>=3.2"]
