"""The app's database: users (roles, profiles), sessions, API tokens, password-reset links, sign-in
failures, prediction history, feedback and contact messages.

SQLite in `CIFAKE_DATA_DIR` (default `./data`) unless `CIFAKE_DATABASE_URL` names any SQLAlchemy
URL (e.g. `mysql+pymysql://…`, `postgresql+psycopg://…`). Passwords are hashed with scrypt
(stdlib `hashlib.scrypt`, random salt) and compared in constant time.

The store is split by table group: `schema` (tables, the account record), `passwords`, `accounts` (users),
`signins` (failures, sessions, tokens, reset links) and `records` (messages, history, feedback); `Store`
is all of them over one engine.
"""
from __future__ import annotations

import os
from pathlib import Path

import sqlalchemy as sa

from webapp.store.accounts import Accounts
from webapp.store.passwords import (COMMON_PASSWORDS, MIN_PASSWORD, PASSWORD_RULE, SCRYPT, hash_password,
                                    password_problem, token_hash, verify_password)
from webapp.store.records import Records
from webapp.store.schema import (PROFILE_FIELDS, ROLES, USERNAME_RE, AccountError, User, api_tokens, data_dir,
                                 feedback, login_attempts, messages, metadata, predictions, reset_tokens, sessions,
                                 users)
from webapp.store.signins import SignIns

__all__ = ["COMMON_PASSWORDS", "MIN_PASSWORD", "PASSWORD_RULE", "PROFILE_FIELDS", "ROLES", "SCRYPT", "USERNAME_RE",
           "AccountError", "Store", "User", "api_tokens", "data_dir", "feedback", "hash_password", "login_attempts",
           "messages", "metadata", "password_problem", "predictions", "reset_tokens", "sessions", "token_hash",
           "users", "verify_password"]


class Store(Accounts, SignIns, Records):
    def __init__(self, url: str | None = None, folder: str | Path | None = None):
        self.folder = Path(folder).resolve() if folder else data_dir()
        self.folder.mkdir(parents=True, exist_ok=True)
        url = url or os.environ.get("CIFAKE_DATABASE_URL") or f"sqlite:///{self.folder / 'cifake.sqlite3'}"
        self.engine = sa.create_engine(url, future=True)
        if url.startswith("sqlite"):
            with self.engine.begin() as conn:
                conn.exec_driver_sql("PRAGMA journal_mode=WAL")  # readers do not block the writer
            sa.event.listen(self.engine, "connect", _sqlite_connection_settings)
        from webapp import migrations, state  # noqa: F401 (state's table belongs to `metadata`)

        migrations.upgrade(self.engine)  # an older data folder upgrades in place
        metadata.create_all(self.engine)  # tables of a change whose migration is not written yet (a test flags them)


def _sqlite_connection_settings(dbapi_connection, _record) -> None:
    # WAL + synchronous=NORMAL: a commit no longer waits for fsync (one per prediction was the largest
    # share of /predict's own time); a killed app still leaves a consistent database, only a power
    # cut can lose the last commits.
    dbapi_connection.execute("PRAGMA synchronous=NORMAL")
    dbapi_connection.execute("PRAGMA busy_timeout=10000")
