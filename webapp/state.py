"""State every app process must agree on, kept in the database (table `app_state`, migration 0002):
small JSON records by key, e.g. which model version is served. Two replicas on one database read the
same record; a write is one upsert.
"""
from __future__ import annotations

import json
import time

import sqlalchemy as sa

from webapp.store import metadata

app_state = sa.Table(
    "app_state", metadata,
    sa.Column("key", sa.String(40), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),  # JSON
    sa.Column("updated_at", sa.Float, nullable=False),
)


def read_state(engine: sa.Engine, key: str) -> dict | None:
    """The JSON record stored under `key`, or None."""
    with engine.connect() as conn:
        value = conn.execute(sa.select(app_state.c.value).where(app_state.c.key == key)).scalar()
    return None if value is None else json.loads(value)


def write_state(engine: sa.Engine, key: str, record: dict) -> None:
    """Store `record` (JSON-serialisable) under `key`, replacing what was there."""
    values = {"value": json.dumps(record), "updated_at": time.time()}
    with engine.begin() as conn:
        updated = conn.execute(app_state.update().where(app_state.c.key == key).values(**values)).rowcount
        if not updated:
            try:
                with conn.begin_nested():
                    conn.execute(app_state.insert().values(key=key, **values))
            except sa.exc.IntegrityError:  # another process inserted it first: ours is the newer write
                conn.execute(app_state.update().where(app_state.c.key == key).values(**values))
