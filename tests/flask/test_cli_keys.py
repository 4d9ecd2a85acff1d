"""``flask chrononaut`` reads a primary key in any spelling of the record's one key."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from chrononaut import Versioned, VersionedSQLAlchemy, acting_as


@pytest.fixture
def priced(app):
    db = VersionedSQLAlchemy(app)

    class Price(db.Model, Versioned):
        __tablename__ = "cli_price"
        id = db.Column(db.Numeric(10, 2), primary_key=True, autoincrement=False)
        label = db.Column(db.String(80))

    class Slot(db.Model, Versioned):
        __tablename__ = "cli_slot"
        at = db.Column(db.DateTime(timezone=True), primary_key=True)

    with app.app_context():
        db.create_all()
        db.session.execute(sa.insert(Price.__table__).values(id=1, label="one", version=0))
        db.session.commit()
        yield db, Price
        db.session.remove()
        for engine in db.engines.values():
            engine.dispose()


def run(app, *args: str):
    return app.test_cli_runner().invoke(args=["chrononaut", *args])


@pytest.mark.parametrize("spelling", ["1", "1.0", "1.00", "1E+0"])
def test_leases_break_finds_the_lease_however_the_key_is_spelled(app, priced, spelling):
    db, Price = priced
    with acting_as("alice"):
        db.session.get(Price, 1).acquire_lease()  # read back as Decimal('1.00')
        db.session.commit()
    result = run(app, "leases", "break", "Price", spelling)
    assert result.exit_code == 0, result.output
    assert result.output.startswith("Broke alice's lease on Price(id=Decimal('1'))")


def test_a_key_no_row_can_have_is_refused_naming_the_column(app, priced):
    result = run(app, "leases", "break", "Slot", "2024-05-01T12:00:00")
    assert result.exit_code == 2
    assert (
        "Slot.at is a timestamptz (DateTime(timezone=True)) primary key column, got "
        "datetime.datetime(2024, 5, 1, 12, 0): pass an aware datetime" in result.output
    )
    result = run(app, "leases", "break", "Slot", "2024-05-01T13:00:00+01:00")
    assert result.exit_code == 0, result.output
    assert result.output == (
        "No lease on Slot(at=datetime.datetime(2024, 5, 1, 12, 0, "
        "tzinfo=datetime.timezone.utc)).\n"
    )
