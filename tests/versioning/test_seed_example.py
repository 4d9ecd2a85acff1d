"""The example of the original documentation, as written there."""

from __future__ import annotations

import pytest

from chrononaut import HiddenAttributeError, UntrackedAttributeError, Versioned


def test_seed_user_example(db):
    class User(db.Model, Versioned):
        __tablename__ = "appuser"
        __chrononaut_untracked__ = ["login_count"]
        __chrononaut_hidden__ = ["password"]

        id = db.Column(db.Integer, primary_key=True)
        name = db.Column(db.String(80), unique=False)
        email = db.Column(db.String(255), unique=True)
        password = db.Column(db.Text())
        login_count = db.Column(db.Integer())

    db.create_all()
    db.session.add(User(name="Ada", email="ada@example.com", password="s3cret", login_count=0))
    db.session.commit()

    user = User.query.first()
    user.email = "ada@lovelace.org"
    db.session.commit()

    original_user_info = user.versions()[0]
    assert user.email != original_user_info.email
    assert original_user_info.email == "ada@example.com"
    with pytest.raises(HiddenAttributeError):
        print(original_user_info.password)
    with pytest.raises(UntrackedAttributeError):
        print(original_user_info.login_count)
    assert "appuser_history" in db.metadata.tables
