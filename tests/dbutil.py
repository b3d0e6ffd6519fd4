"""Databases for the store/API tests: a fresh SQLite file, or a fresh PostgreSQL schema per test (so parallel
runs never collide). PostgreSQL: HOTLINE_TEST_PG_URL, default postgresql://postgres@127.0.0.1:5432/test; its
tests skip with the reason when the server is unreachable."""
from __future__ import annotations

import os
import uuid

import pytest

PG_URL = os.environ.get("HOTLINE_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
_pg_error: list = []


def pg_unavailable() -> str | None:
    if not _pg_error:
        try:
            import psycopg
            from sqlalchemy.engine import make_url

            u = make_url(PG_URL)
            with psycopg.connect(host=u.host, port=u.port or 5432, user=u.username, password=u.password,
                                 dbname=u.database, connect_timeout=3):
                pass
            _pg_error.append(None)
        except Exception as e:  # noqa: BLE001 - any failure means: skip with the reason
            _pg_error.append(f"PostgreSQL not reachable at {PG_URL}: {str(e).splitlines()[0] if str(e) else type(e).__name__}")
    return _pg_error[0]


def pg_schema_url() -> tuple[str, str]:
    """A new schema and the URL whose search_path points at it."""
    from sqlalchemy import create_engine

    schema = f"t_{uuid.uuid4().hex[:12]}"
    eng = create_engine(PG_URL)
    with eng.begin() as c:
        c.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    eng.dispose()
    sep = "&" if "?" in PG_URL else "?"
    return schema, f"{PG_URL}{sep}options=-csearch_path%3D{schema}"


def drop_pg_schema(schema: str) -> None:
    from sqlalchemy import create_engine

    eng = create_engine(PG_URL)
    with eng.begin() as c:
        c.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    eng.dispose()


def database_url(kind: str, tmp_path):
    """(url, cleanup) for 'sqlite' or 'postgresql'; skips visibly when PostgreSQL is unreachable."""
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 'store.sqlite3'}", lambda: None
    reason = pg_unavailable()
    if reason:
        pytest.skip(reason)
    schema, url = pg_schema_url()
    return url, lambda: drop_pg_schema(schema)


DB_KINDS = [pytest.param("sqlite", id="sqlite"), pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres)]
