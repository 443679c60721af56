"""The database schema, versioned with Alembic: `upgrade(engine)` brings any database to the newest schema.

`Store` calls it on start, so an existing data folder upgrades in place. A database made by a release
before migrations existed (the tables of revision 0001, no `alembic_version`) is stamped as 0001 first.
Concurrent starts (several replicas on one PostgreSQL) are serialised by an advisory lock; SQLite by a
file lock beside the database. A schema change = a new file in `versions/` (see the existing ones) plus
the change to the tables in `webapp/store.py`; a test checks that the two agree.

    python -m webapp.migrations [upgrade|current|head]      # on CIFAKE_DATABASE_URL / CIFAKE_DATA_DIR
"""
from __future__ import annotations

import contextlib
import fcntl
from pathlib import Path

import sqlalchemy as sa

HERE = Path(__file__).resolve().parent
RELEASE_REVISION = "0001"  # the tables as shipped before migrations (commit 3a17a16)
RELEASE_TABLES = {"users", "login_failures", "predictions", "feedback"}
ADVISORY_LOCK_ID = 0x0C1FA4E  # any constant shared by every replica


def alembic_config(connection=None):
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(HERE))
    config.attributes["connection"] = connection
    return config


def current_revision(engine: sa.Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def upgrade(engine: sa.Engine, revision: str = "head") -> str | None:
    """Upgrade the database behind `engine` to `revision`; returns the revision it is at afterwards."""
    from alembic import command

    with _exclusive(engine), engine.begin() as connection:
        config = alembic_config(connection)
        tables = set(sa.inspect(connection).get_table_names())
        if "alembic_version" not in tables and RELEASE_TABLES <= tables:
            command.stamp(config, RELEASE_REVISION)  # a data folder of the release before migrations
        command.upgrade(config, revision)
    return current_revision(engine)


@contextlib.contextmanager
def _exclusive(engine: sa.Engine):
    """One migrating process at a time: pg_advisory_lock on PostgreSQL, flock beside a SQLite file."""
    if engine.dialect.name == "postgresql":
        with engine.connect() as connection:
            connection.execute(sa.text("SELECT pg_advisory_lock(:id)"), {"id": ADVISORY_LOCK_ID})
            try:
                yield
            finally:
                connection.execute(sa.text("SELECT pg_advisory_unlock(:id)"), {"id": ADVISORY_LOCK_ID})
                connection.commit()
    elif engine.dialect.name == "sqlite" and engine.url.database not in (None, "", ":memory:"):
        with open(f"{engine.url.database}.migrate-lock", "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
    else:
        yield
