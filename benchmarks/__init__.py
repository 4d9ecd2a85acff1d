"""chrononaut's benchmark harness: ``python -m benchmarks [--quick]``.

Measures versioning and locking overhead against plain SQLAlchemy, the peer
libraries (SQLAlchemy-Continuum, PostgreSQL-Audit) and hand-written psycopg2
floors, on one PostgreSQL server, in one process. Never imported by the library.
"""
