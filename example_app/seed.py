"""Tables, demo users and demo documents, created only when missing."""

from __future__ import annotations

import sqlalchemy as sa

from chrononaut import acting_as, rationale

from .auth import DEMO_USERS
from .models import Document, User, db


def create_demo_users() -> None:
    """Add the demo users that do not exist yet (passwords hashed)."""
    existing = set(db.session.scalars(sa.select(User.username)))
    for username, password in DEMO_USERS.items():
        if username not in existing:
            user = User(username=username)
            user.set_password(password)
            db.session.add(user)
    db.session.commit()


def create_demo_documents() -> None:
    """When there are no documents, add a few with some history by alice and bob."""
    if db.session.scalar(sa.select(sa.func.count()).select_from(Document)):
        return
    with acting_as("alice"):
        plan = Document(
            title="Launch plan",
            body="Ship the beta to ten customers.\nCollect feedback for two weeks.",
            status="draft",
            created_by="alice",
        )
        faq = Document(
            title="FAQ",
            body="Q: Can two people edit at once?\nA: Yes. Try it.",
            status="published",
            created_by="alice",
        )
        db.session.add_all([plan, faq])
        db.session.commit()
    with acting_as("bob"), rationale("Customers asked for a longer beta"):
        plan.body = plan.body.replace("two weeks", "four weeks")
        plan.status = "review"
        db.session.commit()
    with acting_as("alice"), rationale("Notes for the reviewers"):
        plan.reviewer_notes = "Check the dates with sales."
        db.session.commit()
    with acting_as("bob"):
        db.session.add(
            Document(title="Meeting notes", body="Nothing yet.", status="draft", created_by="bob")
        )
        db.session.commit()


def seed() -> None:
    """Create the tables (and chrononaut's history and lease tables) and the demo data."""
    db.create_all()
    create_demo_users()
    create_demo_documents()
