"""The app's database: users (roles, profiles, throttled logins), prediction history, feedback.

SQLite in `CIFAKE_DATA_DIR` (default `./data`) unless `CIFAKE_DATABASE_URL` names any SQLAlchemy
URL (e.g. `mysql+pymysql://…`, `postgresql+psycopg://…`). Passwords are hashed with scrypt
(stdlib `hashlib.scrypt`, random salt) and compared in constant time.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

ROLES = ("admin", "user")
USERNAME_RE = re.compile(r"^[A-Za-z0-9_.@-]{3,40}$")
MIN_PASSWORD = 10
MAX_FAILURES = 5  # failed logins within FAILURE_WINDOW lock the account ...
FAILURE_WINDOW = 300.0  # ... seconds, until the oldest of them is that old
SCRYPT = {"n": 2**14, "r": 8, "p": 1}
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
)
login_failures = sa.Table(
    "login_failures", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("username", sa.String(40), index=True, nullable=False),
    sa.Column("at", sa.Float, nullable=False),
)
predictions = sa.Table(
    "predictions", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("username", sa.String(40), index=True, nullable=False),
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
    sa.Column("claimed_label", sa.String(4), nullable=False),  # "REAL" or "FAKE"
    sa.Column("kind", sa.String(10), nullable=False),  # "wrong" or "confirm" or "upload"
    sa.Column("status", sa.String(10), nullable=False, default="pending"),  # pending/accepted/rejected
    sa.Column("image_path", sa.String(300), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("reviewed_by", sa.String(40), nullable=True),
)


class AccountError(ValueError):
    """A user-facing problem with an account operation (message is safe to show)."""


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, dklen=32, **SCRYPT)
    return f"scrypt${SCRYPT['n']}${SCRYPT['r']}${SCRYPT['p']}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        _, n, r, p, salt, digest = stored.split("$")
        expected = base64.b64decode(digest)
        actual = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p),
                                dklen=len(expected))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


_DUMMY_HASH = hash_password(secrets.token_urlsafe(12))  # equal work for unknown users


@dataclass(frozen=True)
class User:
    username: str
    role: str
    disabled: bool
    profile: dict

    @property
    def is_admin(self) -> bool:
        return self.role == "admin" and not self.disabled


def data_dir() -> Path:
    return Path(os.environ.get("CIFAKE_DATA_DIR", "data")).resolve()


class Store:
    def __init__(self, url: str | None = None, folder: str | Path | None = None):
        self.folder = Path(folder).resolve() if folder else data_dir()
        self.folder.mkdir(parents=True, exist_ok=True)
        url = url or os.environ.get("CIFAKE_DATABASE_URL") or f"sqlite:///{self.folder / 'cifake.sqlite3'}"
        self.engine = sa.create_engine(url, future=True)
        if url.startswith("sqlite"):
            with self.engine.begin() as conn:
                conn.exec_driver_sql("PRAGMA journal_mode=WAL")  # readers do not block the writer
        from webapp import migrations, state  # noqa: F401 (state's table belongs to `metadata`)

        migrations.upgrade(self.engine)  # an older data folder upgrades in place
        metadata.create_all(self.engine)  # tables of a change whose migration is not written yet (a test flags them)
        self._login_lock = threading.Lock()

    # -- users -----------------------------------------------------------------------------------
    def create_user(self, username: str, password: str, role: str = "user", **profile) -> User:
        username = username.strip()
        if not USERNAME_RE.match(username):
            raise AccountError("User names are 3-40 characters: letters, digits and _ . @ -")
        if role not in ROLES:
            raise AccountError(f"Role must be one of {ROLES}; got {role!r}.")
        if len(password) < MIN_PASSWORD:
            raise AccountError(f"Passwords need at least {MIN_PASSWORD} characters.")
        with self.engine.begin() as conn:
            if conn.execute(sa.select(users.c.id).where(users.c.username == username)).first():
                raise AccountError(f"The user name {username!r} is taken.")
            conn.execute(users.insert().values(username=username, password_hash=hash_password(password), role=role,
                                               disabled=False, created_at=time.time(), **_clean_profile(profile)))
        return self.get_user(username)

    def get_user(self, username: str) -> User | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(users).where(users.c.username == username)).mappings().first()
        if row is None:
            return None
        return User(row["username"], row["role"], bool(row["disabled"]), {k: row[k] for k in PROFILE_FIELDS})

    def list_users(self) -> list[dict]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(users).order_by(users.c.id)).mappings().all()
        return [{"username": r["username"], "role": r["role"], "disabled": bool(r["disabled"]),
                 "full_name": r["full_name"], "email": r["email"]} for r in rows]

    def has_admin(self) -> bool:
        with self.engine.connect() as conn:
            return conn.execute(sa.select(users.c.id).where(users.c.role == "admin")).first() is not None

    def set_password(self, username: str, password: str) -> None:
        if len(password) < MIN_PASSWORD:
            raise AccountError(f"Passwords need at least {MIN_PASSWORD} characters.")
        self._update(username, password_hash=hash_password(password))
        with self.engine.begin() as conn:
            conn.execute(login_failures.delete().where(login_failures.c.username == username))

    def set_disabled(self, username: str, disabled: bool) -> None:
        self._update(username, disabled=disabled)

    def set_role(self, username: str, role: str) -> None:
        if role not in ROLES:
            raise AccountError(f"Role must be one of {ROLES}; got {role!r}.")
        self._update(username, role=role)

    def update_profile(self, username: str, **profile) -> User:
        self._update(username, **_clean_profile(profile))
        return self.get_user(username)

    def _update(self, username: str, **values) -> None:
        with self.engine.begin() as conn:
            result = conn.execute(users.update().where(users.c.username == username).values(**values))
        if result.rowcount == 0:
            raise AccountError(f"There is no user {username!r}.")

    # -- login -----------------------------------------------------------------------------------
    def locked_for(self, username: str, now: float | None = None) -> float:
        """Seconds until `username` may try again (0 if not locked)."""
        now = time.time() if now is None else now
        with self.engine.connect() as conn:
            times = conn.execute(sa.select(login_failures.c.at).where(
                login_failures.c.username == username, login_failures.c.at > now - FAILURE_WINDOW
            ).order_by(login_failures.c.at)).scalars().all()
        if len(times) < MAX_FAILURES:
            return 0.0
        return max(0.0, times[-MAX_FAILURES] + FAILURE_WINDOW - now)

    def authenticate(self, username: str, password: str) -> bool:
        """True for a right password of an enabled, unlocked user. Failures are recorded."""
        username = (username or "").strip()[:40]
        with self._login_lock:
            if self.locked_for(username) > 0:
                verify_password(password or "", _DUMMY_HASH)
                return False
            with self.engine.connect() as conn:
                row = conn.execute(sa.select(users.c.password_hash, users.c.disabled).where(
                    users.c.username == username)).first()
            ok = verify_password(password or "", row[0] if row else _DUMMY_HASH) and row is not None and not row[1]
            with self.engine.begin() as conn:
                if ok:
                    conn.execute(login_failures.delete().where(login_failures.c.username == username))
                else:
                    conn.execute(login_failures.insert().values(username=username, at=time.time()))
            return ok

    def ensure_admin(self, username: str | None = None, password: str | None = None) -> str | None:
        """First start: create the admin from the arguments or a random password; returns a new password."""
        if self.has_admin():
            return None
        username = username or os.environ.get("CIFAKE_ADMIN_USER", "admin")
        password = password or os.environ.get("CIFAKE_ADMIN_PASSWORD")
        generated = None
        if not password:
            password = generated = secrets.token_urlsafe(15)
        self.create_user(username, password, role="admin")
        return generated

    # -- history ---------------------------------------------------------------------------------
    def add_prediction(self, username: str, file_name: str, prediction, model_version: int | None,
                       image_path: str = "", thumbnail: bytes | None = None, source: str = "ui") -> int:
        with self.engine.begin() as conn:
            result = conn.execute(predictions.insert().values(
                username=username, created_at=time.time(), file_name=file_name[:300], label=prediction.label,
                p_fake=prediction.p_fake, confidence=prediction.confidence, band=prediction.band,
                model_version=model_version, image_path=image_path, thumbnail=thumbnail, source=source))
        return int(result.inserted_primary_key[0])

    def history(self, username: str | None = None, limit: int = 200) -> list[dict]:
        """Newest first; all users' when `username` is None (admins)."""
        query = sa.select(predictions).order_by(predictions.c.id.desc()).limit(limit)
        if username is not None:
            query = query.where(predictions.c.username == username)
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(query).mappings().all()]

    def get_prediction(self, prediction_id: int) -> dict | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(predictions).where(predictions.c.id == prediction_id)).mappings().first()
        return dict(row) if row else None

    # -- feedback --------------------------------------------------------------------------------
    def add_feedback(self, username: str, claimed_label: str, image_path: str, kind: str,
                     prediction_id: int | None = None, status: str = "pending") -> int:
        if claimed_label not in ("REAL", "FAKE"):
            raise AccountError(f"The label must be REAL or FAKE; got {claimed_label!r}.")
        with self.engine.begin() as conn:
            result = conn.execute(feedback.insert().values(
                prediction_id=prediction_id, username=username, claimed_label=claimed_label, kind=kind,
                status=status, image_path=image_path, created_at=time.time()))
        return int(result.inserted_primary_key[0])

    def list_feedback(self, status: str | None = None) -> list[dict]:
        query = sa.select(feedback).order_by(feedback.c.id)
        if status:
            query = query.where(feedback.c.status == status)
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(query).mappings().all()]

    def review_feedback(self, feedback_id: int, accept: bool, reviewer: str) -> None:
        with self.engine.begin() as conn:
            result = conn.execute(feedback.update().where(feedback.c.id == feedback_id).values(
                status="accepted" if accept else "rejected", reviewed_by=reviewer))
        if result.rowcount == 0:
            raise AccountError(f"There is no feedback item {feedback_id}.")


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
