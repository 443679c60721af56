"""The tables, the account record and the small query helpers every part of the store shares."""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

ROLES = ("admin", "user")
USERNAME_RE = re.compile(r"^[A-Za-z0-9_.-]{3,40}$")  # no "@": a user name is never an e-mail address
PROFILE_FIELDS = ("full_name", "email", "mobile", "age", "address", "picture")

metadata = sa.MetaData()
users = sa.Table(
    "users", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("username", sa.String(40), unique=True, nullable=False),
    sa.Column("password_hash", sa.String(200), nullable=False),
    sa.Column("role", sa.String(10), nullable=False),
    sa.Column("disabled", sa.Boolean, nullable=False, default=False),
    sa.Column("full_name", sa.String(120), default=""),
    sa.Column("email", sa.String(120), default=""),
    sa.Column("mobile", sa.String(40), default=""),
    sa.Column("age", sa.Integer, nullable=True),
    sa.Column("address", sa.String(300), default=""),
    sa.Column("picture", sa.String(300), default=""),  # path of the profile picture in the data folder
    sa.Column("created_at", sa.Float, nullable=False),
    # the case-folded user name and e-mail: unique indexes make the database refuse case twins, even when
    # two registrations race (names taken before these existed keep a "#id" suffix: see migration 0004)
    sa.Column("username_key", sa.String(60), nullable=False),
    sa.Column("email_key", sa.String(120), nullable=True),
    sa.Index("ix_users_username_key", "username_key", unique=True),
    sa.Index("ix_users_email_key", "email_key", unique=True),
)
# Everything a user owns points at users.id, which is never reused: a new account with a deleted one's
# name inherits nothing. `username` beside it is only what history shows.
def owner_columns() -> tuple[sa.Column, sa.Column]:
    """The owner of a row: `user_id` (None once the user is deleted) and the name at the time."""
    return (sa.Column("username", sa.String(40), index=True, nullable=False),
            sa.Column("user_id", sa.Integer, index=True, nullable=True))


sessions = sa.Table(  # a browser or gradio_client signed in; the cookie holds the token, we keep its hash
    "sessions", metadata,
    sa.Column("token_hash", sa.String(64), primary_key=True),
    *owner_columns(),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("last_seen", sa.Float, nullable=False),
    sa.Column("address", sa.String(64), default=""),
)
api_tokens = sa.Table(
    "api_tokens", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("token_hash", sa.String(64), unique=True, nullable=False),
    *owner_columns(),
    sa.Column("label", sa.String(80), default=""),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("last_used", sa.Float, nullable=True),
)
reset_tokens = sa.Table(
    "reset_tokens", metadata,
    sa.Column("token_hash", sa.String(64), primary_key=True),
    *owner_columns(),
    sa.Column("expires_at", sa.Float, nullable=False),
    sa.Column("used_at", sa.Float, nullable=True),
)
login_attempts = sa.Table(  # failed sign-ins, pruned after the throttling window
    "login_attempts", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("username", sa.String(120), index=True, nullable=False),  # lower-cased name or e-mail typed
    sa.Column("address", sa.String(64), index=True, nullable=False),
    sa.Column("at", sa.Float, index=True, nullable=False),
)
messages = sa.Table(  # the Contact page
    "messages", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("name", sa.String(120), default=""),
    sa.Column("email", sa.String(120), default=""),
    sa.Column("username", sa.String(40), nullable=True),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("read_by", sa.String(40), nullable=True),
)
predictions = sa.Table(
    "predictions", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    *owner_columns(),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("file_name", sa.String(300), default=""),
    sa.Column("label", sa.String(12), nullable=False),
    sa.Column("p_fake", sa.Float, nullable=False),
    sa.Column("confidence", sa.Float, nullable=False),
    sa.Column("band", sa.String(12), nullable=False),
    sa.Column("model_version", sa.Integer, nullable=True),
    sa.Column("image_path", sa.String(300), default=""),  # the 32x32 input, kept for feedback/retraining
    sa.Column("thumbnail", sa.LargeBinary, nullable=True),  # small PNG
    sa.Column("source", sa.String(12), default="ui"),  # "ui", "api", "batch"
)
feedback = sa.Table(
    "feedback", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("prediction_id", sa.Integer, sa.ForeignKey("predictions.id"), nullable=True),
    sa.Column("username", sa.String(40), nullable=False),
    sa.Column("user_id", sa.Integer, index=True, nullable=True),  # None once the user is deleted
    sa.Column("claimed_label", sa.String(4), nullable=False),  # "REAL" or "FAKE"
    sa.Column("kind", sa.String(10), nullable=False),  # "wrong" or "confirm" or "upload"
    sa.Column("status", sa.String(10), nullable=False, default="pending"),  # pending/accepted/rejected
    sa.Column("image_path", sa.String(300), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("reviewed_by", sa.String(40), nullable=True),
)


class AccountError(ValueError):
    """A user-facing problem with an account operation (message is safe to show)."""


@dataclass(frozen=True)
class User:
    username: str
    role: str
    disabled: bool
    profile: dict
    id: int = 0  # users.id: what the user's history, feedback, sessions and tokens point at

    @property
    def is_admin(self) -> bool:
        return self.role == "admin" and not self.disabled


def data_dir() -> Path:
    return Path(os.environ.get("CIFAKE_DATA_DIR", "data")).resolve()


def _is_row_id(value) -> bool:
    """A number a row id can be: the database's integers stop at 2**63 ("Python int too large to convert
    to SQLite INTEGER" reached clients)."""
    return isinstance(value, int) and 0 < value < 2**63


def _user_id(conn, username: str) -> int | None:
    return conn.execute(sa.select(users.c.id).where(users.c.username == username)).scalar()


def _owned_by(column, conn, username: str):
    """`column == the user's id`; matches nothing for an unknown user (never the rows of deleted ones)."""
    return column == (_user_id(conn, username) or 0)


def _owned_predictions():
    """Predictions with `username` taken from their owner by id: a record whose owner was deleted has
    None there, so no later account of that name is ever its owner."""
    columns = [c for c in predictions.c if c.name != "username"] + [users.c.username]
    return sa.select(*columns).select_from(predictions.outerjoin(users, users.c.id == predictions.c.user_id))


def _email_key(profile: dict) -> dict:
    email = profile.get("email") or ""
    return {"email_key": email.casefold() or None}


def _clean_profile(profile: dict) -> dict:
    unknown = set(profile) - set(PROFILE_FIELDS)
    if unknown:
        raise AccountError(f"Unknown profile fields: {sorted(unknown)}.")
    clean = {}
    for key, value in profile.items():
        if key == "age":
            if value in (None, ""):
                clean[key] = None
                continue
            try:
                age = int(value)
            except (TypeError, ValueError):
                raise AccountError(f"Age must be a whole number; got {value!r}.") from None
            if not 0 < age < 150:
                raise AccountError(f"Age must be between 1 and 149; got {age}.")
            clean[key] = age
        else:
            text = "" if value is None else str(value).strip()
            if key == "email" and text and not re.match(r"^[^@\s]+@[^@\s]+\.[^@\s]+$", text):
                raise AccountError(f"{text!r} does not look like an e-mail address.")
            clean[key] = text[:300]
    return clean
