"""PostgreSQL errors classified by SQLSTATE, whichever driver raised them.

Every place in chrononaut that tells one database error from another asks
:func:`sqlstate`, which reads the five-character code from what each driver
attaches to its exception:

- psycopg2: ``error.pgcode``;
- psycopg 3: ``error.sqlstate`` (also ``error.diag.sqlstate``);
- asyncpg, as SQLAlchemy wraps it: the adapted error's ``sqlstate`` / ``pgcode``,
  and asyncpg's own exception (its ``__cause__``) has ``sqlstate``.

It takes SQLAlchemy's wrapper (:class:`sqlalchemy.exc.DBAPIError`, whose
``orig`` is the driver's exception) or the driver's exception itself::

    try:
        session.commit()
    except sa.exc.DBAPIError as error:
        if chrononaut.sqlstate.sqlstate(error) == chrononaut.sqlstate.SERIALIZATION_FAILURE:
            ...
"""

from __future__ import annotations

import sqlalchemy as sa

#: ``lock_not_available``: ``lock_timeout`` expired, or ``NOWAIT`` found the row locked.
LOCK_NOT_AVAILABLE = "55P03"
#: ``deadlock_detected``: PostgreSQL aborted this transaction to break a deadlock.
DEADLOCK_DETECTED = "40P01"
#: ``serialization_failure``: a REPEATABLE READ / SERIALIZABLE transaction lost a race.
SERIALIZATION_FAILURE = "40001"
#: ``unique_violation``.
UNIQUE_VIOLATION = "23505"
#: ``query_canceled``: ``statement_timeout`` or a cancel request.
QUERY_CANCELED = "57014"

_ATTRIBUTES = ("sqlstate", "pgcode")
_CHAIN_LIMIT = 8  # a cause chain this deep is not a driver's


def _own_code(error: BaseException) -> str | None:
    for name in _ATTRIBUTES:
        code = getattr(error, name, None)
        if isinstance(code, str) and code:
            return code
    code = getattr(getattr(error, "diag", None), "sqlstate", None)
    return code if isinstance(code, str) and code else None


def sqlstate(error: BaseException) -> str | None:
    """The SQLSTATE of a database error from psycopg2, psycopg 3 or asyncpg, else ``None``.

    ``error`` is SQLAlchemy's :class:`~sqlalchemy.exc.DBAPIError` or the driver's
    exception; anything else (a Python error, an error with no code) gives
    ``None``::

        sqlstate(error) == LOCK_NOT_AVAILABLE
    """
    if not isinstance(error, BaseException):
        raise TypeError(f"sqlstate() takes an exception, got {error!r}")
    current: BaseException | None = error
    if isinstance(error, sa.exc.DBAPIError):
        current = error.orig if isinstance(error.orig, BaseException) else None
    for _ in range(_CHAIN_LIMIT):
        if current is None:
            return None
        code = _own_code(current)
        if code is not None:
            return code
        current = current.__cause__
    return None
