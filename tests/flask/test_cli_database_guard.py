"""``flask chrononaut history`` names the database user of changes made outside the ORM."""

from __future__ import annotations

from chrononaut import Versioned


def test_history_names_the_database_user_of_a_raw_update(app, db):
    class Ticket(db.Model, Versioned):
        __tablename__ = "ticket"
        __chrononaut_database_guard__ = True
        id = db.Column(db.Integer, primary_key=True)
        status = db.Column(db.String(20))

    db.create_all()
    db.session.add(Ticket(id=1, status="open"))
    db.session.commit()
    with db.engine.begin() as connection:
        connection.exec_driver_sql("UPDATE ticket SET status = 'closed'")
        user = connection.exec_driver_sql("SELECT current_user").scalar()

    result = app.test_cli_runner().invoke(args=["chrononaut", "history", "Ticket", "1"])

    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "Ticket(id=1): version 1, 1 earlier version(s)"
    assert lines[2].startswith("version 1  ")
    assert lines[2].endswith(f"  by database user {user}  rationale: -")
    assert lines[3] == "    status: 'open' -> 'closed'"
