"""Databases for the store tests: SQLite in a temporary data folder, and a fresh PostgreSQL database per
test on the server `.ci/run` starts (URL in CIFAKE_TEST_POSTGRES_URL). Without a reachable PostgreSQL the
PostgreSQL cases are skipped, except in CI (CI=true), where that is a failure.
"""
from __future__ import annotations

import contextlib
import os
import secrets
from typing import Iterator

import pytest
import sqlalchemy as sa

POSTGRES_ADMIN_URL = os.environ.get("CIFAKE_TEST_POSTGRES_URL",
                                    "postgresql+psycopg://cifake:cifake@127.0.0.1:5432/postgres")


def postgres_admin_url() -> str:
    """The URL of a PostgreSQL database whose user may create databases; skips (fails in CI) if none."""
    try:
        engine = sa.create_engine(POSTGRES_ADMIN_URL, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
        engine.dispose()
    except Exception as err:  # no driver, no server, wrong password: all mean "not here"
        message = f"no PostgreSQL at {POSTGRES_ADMIN_URL} ({type(err).__name__}: {str(err)[:200]})"
        if os.environ.get("CI"):
            pytest.fail(message + "; .ci/run should have started one")
        pytest.skip(message)
    return POSTGRES_ADMIN_URL


@contextlib.contextmanager
def fresh_postgres_database() -> Iterator[str]:
    """A new, empty PostgreSQL database for one test (dropped afterwards); yields its URL."""
    admin_url = sa.make_url(postgres_admin_url())
    name = f"cifake_test_{secrets.token_hex(6)}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield admin_url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path) -> Iterator[str]:
    """Each test that takes it runs twice: on a SQLite file and on a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.sqlite3'}"
    else:
        with fresh_postgres_database() as url:
            yield url
