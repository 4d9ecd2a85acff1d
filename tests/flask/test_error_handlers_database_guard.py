"""The built-in 409 page names the database user of a change made outside the ORM."""

from __future__ import annotations

from flask import request

import chrononaut
from chrononaut import Versioned


def test_conflict_page_names_the_database_user_of_a_raw_update(app, db):
    class Ticket(db.Model, Versioned):
        __tablename__ = "ticket"
        __chrononaut_database_guard__ = True
        id = db.Column(db.Integer, primary_key=True)
        status = db.Column(db.String(20))

    db.create_all()
    db.session.add(Ticket(id=1, status="open"))
    db.session.commit()
    chrononaut.register_error_handlers(app)

    @app.post("/tickets/1")
    def save():
        ticket = db.session.get(Ticket, 1)
        ticket.check_version(int(request.form["version"]))
        ticket.status = request.form["status"]
        db.session.commit()
        return "saved"

    with db.engine.begin() as connection:
        connection.exec_driver_sql("UPDATE ticket SET status = 'closed'")
        user = connection.exec_driver_sql("SELECT current_user").scalar()

    response = app.test_client().post("/tickets/1", data={"version": "0", "status": "pending"})

    assert response.status_code == 409
    page = response.get_data(as_text=True)
    assert f"<td>database user {user} (outside the ORM)</td>" in page
    assert "<td>status</td>" in page
