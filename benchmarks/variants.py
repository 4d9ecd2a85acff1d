"""The variants measured: the same model on plain SQLAlchemy, chrononaut and the peers.

Every variant maps the same columns (id, title varchar(80), body text, counter
int, updated timestamptz) to its own table, on its own ``DeclarativeBase``,
engine and ``sessionmaker``, so that no variant's event listeners run in
another's sessions. A peer that cannot be set up is kept, with the reason, so
the report says why it did not run.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

PLAIN = "plain"
CHRONONAUT = "chrononaut"
CONTINUUM = "continuum"
AUDIT = "audit"

#: The schema PostgreSQL-Audit's activity and transaction tables live in
#: (its default, public, would clash with Continuum's ``transaction`` table).
AUDIT_SCHEMA = "bench_audit"


@dataclass
class Variant:
    name: str
    label: str
    engine: sa.Engine | None = None
    Session: sessionmaker[Session] | None = None
    Item: Any = None
    metadata: sa.MetaData | None = None
    note: str = ""
    unavailable: str | None = None
    #: extra SQL run in the seeding transaction (PostgreSQL-Audit: skip the trigger)
    seed_prefix: str = ""

    @property
    def table(self) -> str:
        return self.Item.__tablename__


def item_columns() -> dict[str, Any]:
    """The benchmark model's columns, fresh for each declarative class."""
    return {
        "__annotations__": {
            "id": Mapped[int],
            "title": Mapped[str],
            "body": Mapped[str],
            "counter": Mapped[int],
            "updated": Mapped[datetime],
        },
        "id": mapped_column(primary_key=True),
        "title": mapped_column(sa.String(80)),
        "body": mapped_column(sa.Text),
        "counter": mapped_column(sa.Integer),
        "updated": mapped_column(sa.DateTime(timezone=True)),
    }


def _engine(url: str) -> sa.Engine:
    return sa.create_engine(url, pool_size=2, max_overflow=2)


def _model(base: type[DeclarativeBase], name: str, table: str, *mixins: type, **extra: Any):
    namespace = {"__tablename__": table, **item_columns(), **extra}
    return type(name, (base, *mixins), namespace)


def make_plain(url: str) -> Variant:
    class Base(DeclarativeBase):
        pass

    item = _model(Base, "PlainItem", "bench_plain")
    engine = _engine(url)
    return Variant(
        PLAIN,
        "plain SQLAlchemy ORM",
        engine,
        sessionmaker(engine),
        item,
        Base.metadata,
        note="the baseline: the same model with no versioning",
    )


def make_chrononaut(url: str) -> Variant:
    import chrononaut

    class Base(DeclarativeBase):
        pass

    item = _model(Base, "ChrononautItem", "bench_chrononaut", chrononaut.Versioned)
    engine = _engine(url)
    factory = sessionmaker(engine)
    chrononaut.listen(factory)
    return Variant(
        CHRONONAUT,
        "chrononaut",
        engine,
        factory,
        item,
        Base.metadata,
        note="chrononaut.listen(sessionmaker) with default Settings; Versioned on its own Base",
    )


def make_continuum(url: str) -> Variant:
    """SQLAlchemy-Continuum with its default options.

    ``make_versioned()`` would attach its listeners to every mapper, Session
    and Engine of the process, taxing the other variants; the same listeners
    are attached here to its own model, Session class and engine only.
    """
    import sqlalchemy_continuum as continuum

    manager = continuum.versioning_manager
    manager.user_cls = None  # no User model: Continuum's transaction row has no user_id
    manager.apply_class_configuration_listeners(sa.orm.Mapper)

    class Base(DeclarativeBase):
        pass

    class ContinuumSession(Session):
        pass

    item = _model(Base, "ContinuumItem", "bench_continuum", __versioned__={})
    sa.orm.configure_mappers()
    # Built: stop watching other classes (PostgreSQL-Audit's also say __versioned__).
    manager.remove_class_configuration_listeners(sa.orm.Mapper)
    manager.track_operations(item)
    manager.track_session(ContinuumSession)
    engine = _engine(url)
    sa.event.listen(engine, "before_execute", manager.track_association_operations)
    sa.event.listen(engine, "rollback", manager.clear_connection)
    sa.event.listen(engine, "set_connection_execution_options", manager.track_cloned_connections)
    return Variant(
        CONTINUUM,
        f"SQLAlchemy-Continuum {continuum.__version__}",
        engine,
        sessionmaker(engine, class_=ContinuumSession),
        item,
        Base.metadata,
        note="default options (validity strategy); make_versioned's listeners scoped to "
        "its own model, Session class and engine",
    )


def make_audit(url: str) -> Variant:
    """PostgreSQL-Audit with statement-level triggers (its default)."""
    import postgresql_audit

    manager = postgresql_audit.VersioningManager(schema_name=AUDIT_SCHEMA)

    class AuditSession(Session):
        pass

    # Its before_flush listener goes on its own Session class, not every Session.
    manager.listeners = (
        (sa.orm.Mapper, "instrument_class", manager.instrument_versioned_classes),
        (sa.orm.Mapper, "after_configured", manager.configure_versioned_classes),
        (AuditSession, "before_flush", manager.receive_before_flush),
    )

    class Base(DeclarativeBase):
        pass

    manager.init(Base)
    item = _model(Base, "AuditItem", "bench_audit_item", __versioned__={})
    sa.orm.configure_mappers()
    for target, identifier, listener in manager.listeners[:2]:
        sa.event.remove(target, identifier, listener)
    engine = _engine(url)
    return Variant(
        AUDIT,
        f"PostgreSQL-Audit {postgresql_audit.__version__}",
        engine,
        sessionmaker(engine, class_=AuditSession),
        item,
        Base.metadata,
        note=f"trigger-based, statement-level triggers (default); tables in schema {AUDIT_SCHEMA}",
        seed_prefix="SET LOCAL postgresql_audit.enable_versioning = 'false'",
    )


_FACTORIES: dict[str, tuple[str, Callable[[str], Variant]]] = {
    PLAIN: ("plain SQLAlchemy ORM", make_plain),
    CHRONONAUT: ("chrononaut", make_chrononaut),
    CONTINUUM: ("SQLAlchemy-Continuum", make_continuum),
    AUDIT: ("PostgreSQL-Audit", make_audit),
}


def make(name: str, url: str) -> Variant:
    """Build variant ``name``; a peer that fails is returned with ``unavailable`` set."""
    label, factory = _FACTORIES[name]
    try:
        return factory(url)
    except ImportError as error:
        if name in (PLAIN, CHRONONAUT):
            raise
        reason = f"not installed ({error}); pip install -e '.[bench]'"
    except Exception as error:  # a peer that cannot run is reported, never dropped
        if name in (PLAIN, CHRONONAUT):
            raise
        last = traceback.format_exception_only(type(error), error)[-1].strip()
        reason = f"could not be set up on SQLAlchemy {sa.__version__}: {last}"
    return Variant(name, label, unavailable=reason)


def make_all(url: str) -> list[Variant]:
    return [make(name, url) for name in (PLAIN, CHRONONAUT, CONTINUUM, AUDIT)]
