"""The app's database: users (roles, profiles), sessions, API tokens, password-reset links, sign-in
failures, prediction history, feedback and contact messages.

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
import time
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

ROLES = ("admin", "user")
USERNAME_RE = re.compile(r"^[A-Za-z0-9_.-]{3,40}$")  # no "@": a user name is never an e-mail address
MIN_PASSWORD = 10
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
    # the case-folded user name and e-mail: unique indexes make the database refuse case twins, even when
    # two registrations race (names taken before these existed keep a "#id" suffix: see migration 0004)
    sa.Column("username_key", sa.String(60), nullable=False),
    sa.Column("email_key", sa.String(120), nullable=True),
    sa.Index("ix_users_username_key", "username_key", unique=True),
    sa.Index("ix_users_email_key", "email_key", unique=True),
)
# Everything a user owns points at users.id, which is never reused: a new account with a deleted one's
# name inherits nothing. `username` beside it is only what history shows.
sessions = sa.Table(  # a browser or gradio_client signed in; the cookie holds the token, we keep its hash
    "sessions", metadata,
    sa.Column("token_hash", sa.String(64), primary_key=True),
    sa.Column("username", sa.String(40), index=True, nullable=False),
    sa.Column("user_id", sa.Integer, index=True, nullable=True),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("last_seen", sa.Float, nullable=False),
    sa.Column("address", sa.String(64), default=""),
)
api_tokens = sa.Table(
    "api_tokens", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("token_hash", sa.String(64), unique=True, nullable=False),
    sa.Column("username", sa.String(40), index=True, nullable=False),
    sa.Column("user_id", sa.Integer, index=True, nullable=True),
    sa.Column("label", sa.String(80), default=""),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("last_used", sa.Float, nullable=True),
)
reset_tokens = sa.Table(
    "reset_tokens", metadata,
    sa.Column("token_hash", sa.String(64), primary_key=True),
    sa.Column("username", sa.String(40), index=True, nullable=False),
    sa.Column("user_id", sa.Integer, index=True, nullable=True),
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
    sa.Column("username", sa.String(40), index=True, nullable=False),
    sa.Column("user_id", sa.Integer, index=True, nullable=True),
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

# Passwords people pick first (and that every guessing list starts with); refused whatever their length.
COMMON_PASSWORDS = frozenset("""
password password1 password12 password123 password1234 passw0rd passw0rd1 p@ssw0rd p@ssword
1234567890 12345678910 0123456789 1234512345 1111111111 1q2w3e4r5t 1qaz2wsx3edc qwertyuiop
qwerty1234 qwerty12345 qwerty123456 asdfghjkl asdfghjkl1 zxcvbnm123 iloveyou12 iloveyou123 letmein123
welcome123 welcome1234 football12 baseball12 sunshine12 princess12 dragon1234 monkey1234 trustno1234
administrator admin12345 admin123456 adminadmin changeme123 superman12 starwars12 whatever12
abcdefghij abcd123456 abc1234567 aaaaaaaaaa qazwsxedcrfv 123qweasdzxc passwordpassword
""".split())


PASSWORD_RULE = (f"At least {MIN_PASSWORD} characters with at least 4 different ones; not your user name and not "
                 "a common password.")


def password_problem(password: str, username: str = "") -> str | None:
    """Why `password` is too weak for `username` (a sentence to show), or None when it is fine."""
    if len(password) < MIN_PASSWORD:
        return f"Passwords need at least {MIN_PASSWORD} characters."
    if len(password) > 200:
        return "Passwords may have at most 200 characters."
    lowered = password.lower()
    stripped = lowered.strip("0123456789!@#$%^&*()-_=+.,;:?")
    name = username.strip().lower()
    if name and (lowered == name or stripped == name or lowered == name[::-1]):
        return "The password must not be the user name."
    if lowered in COMMON_PASSWORDS or stripped in COMMON_PASSWORDS:
        return "That password is on every list of common passwords; pick another."
    if len(set(lowered)) < 4:
        return "That password repeats too few characters; use at least 4 different ones."
    return None


def token_hash(token: str) -> str:
    """Tokens are random 256-bit strings: a plain SHA-256 is enough to keep them out of the database."""
    return hashlib.sha256(token.encode()).hexdigest()


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


class Store:
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

    # -- users -----------------------------------------------------------------------------------
    def create_user(self, username: str, password: str, role: str = "user", **profile) -> User:
        """A new account; user names are unique regardless of case, e-mail addresses too."""
        username = (username or "").strip()
        if not USERNAME_RE.match(username):
            raise AccountError("User names are 3-40 characters: letters, digits and _ . - (no @: an e-mail "
                               "address is not a user name).")
        if role not in ROLES:
            raise AccountError(f"Role must be one of {ROLES}; got {role!r}.")
        problem = password_problem(password or "", username)
        if problem:
            raise AccountError(problem)
        clean = _clean_profile(profile)
        password_hash = hash_password(password)
        try:
            with self.engine.begin() as conn:
                if conn.execute(sa.select(users.c.id).where(users.c.username_key == username.lower())).first():
                    raise AccountError(f"The user name {username!r} is taken.")
                self._check_email_free(conn, clean.get("email", ""), None)
                conn.execute(users.insert().values(username=username, password_hash=password_hash, role=role,
                                                   disabled=False, created_at=time.time(),
                                                   username_key=username.lower(), **clean,
                                                   **_email_key(clean)))
        except sa.exc.IntegrityError:  # a twin registered at the same moment: the unique indexes said no
            raise AccountError(f"The user name {username!r} or its e-mail address is taken.") from None
        return self.get_user(username)

    def get_user(self, username: str) -> User | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(users).where(users.c.username == username)).mappings().first()
        if row is None:
            return None
        return User(row["username"], row["role"], bool(row["disabled"]), {k: row[k] for k in PROFILE_FIELDS},
                    row["id"])

    def find_username(self, name_or_email: str) -> str | None:
        """The account a sign-in form means: its user name (any case) or its e-mail address."""
        typed = (name_or_email or "").strip()[:120]
        if not typed:
            return None
        by_email = sa.select(users.c.username).where(users.c.email_key == typed.casefold())
        by_name = sa.select(users.c.username).where(users.c.username_key == typed.lower())
        with self.engine.connect() as conn:  # an address means its owner, even beside an older "a@b" user name
            row = conn.execute(by_email).first() if "@" in typed else None
            row = row or conn.execute(by_name).first()
        return row[0] if row else None

    def list_users(self) -> list[dict]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(users).order_by(users.c.id)).mappings().all()
        return [{"username": r["username"], "role": r["role"], "disabled": bool(r["disabled"]),
                 **{k: r[k] for k in PROFILE_FIELDS}} for r in rows]

    def has_admin(self) -> bool:
        with self.engine.connect() as conn:
            return conn.execute(sa.select(users.c.id).where(users.c.role == "admin")).first() is not None

    def set_password(self, username: str, password: str) -> None:
        """New password; every session and API token of the user ends and unused reset links die."""
        problem = password_problem(password or "", username)
        if problem:
            raise AccountError(problem)
        self._update(username, password_hash=hash_password(password))
        self.end_sessions(username)
        with self.engine.begin() as conn:
            conn.execute(api_tokens.delete().where(_owned_by(api_tokens.c.user_id, conn, username)))
            conn.execute(reset_tokens.update().where(_owned_by(reset_tokens.c.user_id, conn, username),
                                                     reset_tokens.c.used_at.is_(None)).values(used_at=time.time()))

    def set_disabled(self, username: str, disabled: bool) -> None:
        self._update(username, disabled=disabled)
        if disabled:
            self.end_sessions(username)

    def delete_user(self, username: str) -> None:
        """Remove the account with its sessions, tokens, history, stored inputs and profile picture.

        Its feedback stays for retraining, anonymised (accepted labels are training data); its contact
        messages stay without the name."""
        with self.engine.begin() as conn:
            row = conn.execute(sa.select(users.c.id, users.c.picture).where(users.c.username == username)).first()
            if row is None:
                raise AccountError(f"There is no user {username!r}.")
            user_id, picture = row
            inputs = set(conn.execute(sa.select(predictions.c.image_path).where(predictions.c.user_id == user_id))
                         .scalars())
            # kept feedback keeps its picture but no longer points at the deleted records (PostgreSQL and
            # MySQL enforce the foreign key; SQLite does not, so only the PostgreSQL tests see this)
            owned = sa.select(predictions.c.id).where(predictions.c.user_id == user_id)
            conn.execute(feedback.update().where(feedback.c.prediction_id.in_(owned)).values(prediction_id=None))
            for table in (sessions, api_tokens, reset_tokens, predictions):
                conn.execute(table.delete().where(table.c.user_id == user_id))
            conn.execute(feedback.update().where(feedback.c.user_id == user_id).values(user_id=None,
                                                                                        username="(deleted)"))
            conn.execute(messages.update().where(messages.c.username == username).values(username=None))
            conn.execute(users.delete().where(users.c.id == user_id))
            still_used = set(conn.execute(sa.select(predictions.c.image_path).where(
                predictions.c.image_path.in_(inputs))).scalars()) | set(conn.execute(
                    sa.select(feedback.c.image_path).where(feedback.c.image_path.in_(inputs))).scalars())
        for relative in [p for p in inputs - still_used if p] + ([picture] if picture else []):
            path = (self.folder / relative).resolve()
            if self.folder in path.parents:
                path.unlink(missing_ok=True)

    def set_role(self, username: str, role: str) -> None:
        if role not in ROLES:
            raise AccountError(f"Role must be one of {ROLES}; got {role!r}.")
        self._update(username, role=role)

    def update_profile(self, username: str, **profile) -> User:
        clean = _clean_profile(profile)
        with self.engine.begin() as conn:
            self._check_email_free(conn, clean.get("email", ""), username)
        try:
            self._update(username, **clean, **(_email_key(clean) if "email" in clean else {}))
        except sa.exc.IntegrityError:  # another account took the address at the same moment
            raise AccountError(f"The e-mail address {clean['email']!r} belongs to another account.") from None
        return self.get_user(username)

    def _check_email_free(self, conn, email: str, owner: str | None) -> None:
        if not email:
            return
        query = sa.select(users.c.username).where(users.c.email_key == email.casefold())
        taken = [r[0] for r in conn.execute(query)]
        if any(name != owner for name in taken):
            raise AccountError(f"The e-mail address {email!r} belongs to another account.")

    def _update(self, username: str, **values) -> None:
        with self.engine.begin() as conn:
            result = conn.execute(users.update().where(users.c.username == username).values(**values))
        if result.rowcount == 0:
            raise AccountError(f"There is no user {username!r}.")

    # -- passwords and sign-in failures ------------------------------------------------------------
    def check_password(self, name_or_email: str, password: str) -> str | None:
        """The user name if `password` is right for an enabled account (user name or e-mail), else None.

        Costs one scrypt either way (unknown names hash against a dummy), so timing tells nothing.
        No throttling here: `webapp.auth` throttles around it.
        """
        username = self.find_username(name_or_email)
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(users.c.password_hash, users.c.disabled).where(
                users.c.username == username)).first() if username else None
        ok = verify_password(password or "", row[0] if row else _DUMMY_HASH)
        return username if ok and row is not None and not row[1] else None

    def authenticate(self, name_or_email: str, password: str) -> bool:
        return self.check_password(name_or_email, password) is not None

    def record_login_failure(self, key: str, address: str, now: float | None = None) -> None:
        with self.engine.begin() as conn:
            conn.execute(login_attempts.insert().values(username=key.lower()[:120], address=address[:64],
                                                        at=time.time() if now is None else now))

    def login_failures(self, since: float, key: str | None = None, address: str | None = None) -> list[float]:
        """Times of failures after `since` for an (account, address) pair, an account or an address."""
        query = sa.select(login_attempts.c.at).where(login_attempts.c.at > since).order_by(login_attempts.c.at)
        if key is not None:
            query = query.where(login_attempts.c.username == key.lower()[:120])
        if address is not None:
            query = query.where(login_attempts.c.address == address[:64])
        with self.engine.connect() as conn:
            return list(conn.execute(query).scalars())

    def clear_login_failures(self, key: str, address: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(login_attempts.delete().where(login_attempts.c.username == key.lower()[:120],
                                                       login_attempts.c.address == address[:64]))

    def prune_login_failures(self, before: float) -> int:
        with self.engine.begin() as conn:
            return conn.execute(login_attempts.delete().where(login_attempts.c.at < before)).rowcount

    def count_login_failures(self) -> int:
        with self.engine.connect() as conn:
            return conn.execute(sa.select(sa.func.count()).select_from(login_attempts)).scalar_one()

    # -- sessions and API tokens ---------------------------------------------------------------------
    def create_session(self, username: str, address: str = "") -> str:
        token = secrets.token_urlsafe(32)
        now = time.time()
        with self.engine.begin() as conn:
            conn.execute(sessions.insert().values(token_hash=token_hash(token), username=username,
                                                  user_id=_user_id(conn, username), created_at=now, last_seen=now,
                                                  address=address[:64]))
        return token

    def session_user(self, token: str, idle_seconds: float, touch_after: float = 30.0) -> str | None:
        """The user of a live session: not idle for longer than `idle_seconds`, user still enabled."""
        key, now = token_hash(token), time.time()
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(users.c.username, sessions.c.last_seen, users.c.disabled)
                               .join(users, users.c.id == sessions.c.user_id)
                               .where(sessions.c.token_hash == key)).first()
        if row is None or row[2]:
            return None
        if now - row[1] > idle_seconds:
            self.end_session(token)
            return None
        if now - row[1] > touch_after:  # one write a while, not one per request
            with self.engine.begin() as conn:
                conn.execute(sessions.update().where(sessions.c.token_hash == key).values(last_seen=now))
        return row[0]

    def end_session(self, token: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(sessions.delete().where(sessions.c.token_hash == token_hash(token)))

    def end_sessions(self, username: str) -> int:
        with self.engine.begin() as conn:
            return conn.execute(sessions.delete().where(_owned_by(sessions.c.user_id, conn, username))).rowcount

    def prune_sessions(self, idle_seconds: float) -> int:
        with self.engine.begin() as conn:
            return conn.execute(sessions.delete().where(sessions.c.last_seen < time.time() - idle_seconds)).rowcount

    def create_api_token(self, username: str, label: str = "") -> str:
        """A new API token for `username`; only its hash is kept, so it is shown once."""
        token = "cft_" + secrets.token_urlsafe(32)
        with self.engine.begin() as conn:
            conn.execute(api_tokens.insert().values(token_hash=token_hash(token), username=username,
                                                    user_id=_user_id(conn, username),
                                                    label=(label or "").strip()[:80], created_at=time.time()))
        return token

    def api_token_user(self, token: str) -> str | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(api_tokens.c.id, users.c.username, users.c.disabled,
                                         api_tokens.c.last_used).join(users, users.c.id == api_tokens.c.user_id)
                               .where(api_tokens.c.token_hash == token_hash(token))).first()
        if row is None or row[2]:
            return None
        if row[3] is None or time.time() - row[3] > 60:  # one write a minute, not one per request
            with self.engine.begin() as conn:
                conn.execute(api_tokens.update().where(api_tokens.c.id == row[0]).values(last_used=time.time()))
        return row[1]

    def list_api_tokens(self, username: str) -> list[dict]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(api_tokens.c.id, api_tokens.c.label, api_tokens.c.created_at,
                                          api_tokens.c.last_used)
                                .where(_owned_by(api_tokens.c.user_id, conn, username))
                                .order_by(api_tokens.c.id)).mappings().all()
        return [dict(r) for r in rows]

    def revoke_api_token(self, username: str, token_id: int) -> None:
        if not _is_row_id(token_id):
            raise AccountError(f"You have no API token #{token_id}.")
        with self.engine.begin() as conn:
            result = conn.execute(api_tokens.delete().where(api_tokens.c.id == int(token_id),
                                                            _owned_by(api_tokens.c.user_id, conn, username)))
        if result.rowcount == 0:
            raise AccountError(f"You have no API token #{token_id}.")

    # -- password reset links ----------------------------------------------------------------------
    def create_reset_token(self, username: str, valid_seconds: float) -> str:
        token = secrets.token_urlsafe(32)
        with self.engine.begin() as conn:
            conn.execute(reset_tokens.insert().values(token_hash=token_hash(token), username=username,
                                                      user_id=_user_id(conn, username),
                                                      expires_at=time.time() + valid_seconds))
        return token

    def reset_token_user(self, token: str) -> str | None:
        """The user a reset link belongs to while it is unused and unexpired."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(users.c.username, reset_tokens.c.expires_at, reset_tokens.c.used_at)
                               .join(users, users.c.id == reset_tokens.c.user_id)
                               .where(reset_tokens.c.token_hash == token_hash(token or ""))).first()
        if row is None or row[2] is not None or row[1] < time.time():
            return None
        return row[0]

    def use_reset_token(self, token: str, password: str) -> str:
        """Set a new password through a reset link; the link works once. Returns the user name."""
        username = self.reset_token_user(token)
        if username is None:
            raise AccountError("This reset link is invalid, used or expired; ask for a new one.")
        self.set_password(username, password)  # also marks every open link of the user used
        return username

    # -- contact messages ----------------------------------------------------------------------------
    def add_message(self, name: str, email: str, body: str, username: str | None = None) -> int:
        name, email, body = (name or "").strip(), (email or "").strip(), (body or "").strip()
        if not body:
            raise AccountError("Write a message first.")
        if len(body) > 5000:
            raise AccountError(f"Messages may have at most 5000 characters; this one has {len(body)}.")
        _clean_profile({"email": email})  # the same e-mail check as profiles
        with self.engine.begin() as conn:
            result = conn.execute(messages.insert().values(created_at=time.time(), name=name[:120], email=email[:120],
                                                           username=username, body=body))
        return int(result.inserted_primary_key[0])

    def list_messages(self) -> list[dict]:
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(sa.select(messages).order_by(messages.c.id.desc())).mappings()]

    def ensure_admin(self, username: str | None = None, password: str | None = None) -> str | None:
        """First start: create the admin from the arguments or a random password; returns a new password."""
        if self.has_admin():
            return None
        username = username or os.environ.get("CIFAKE_ADMIN_USER", "admin")
        password = password or os.environ.get("CIFAKE_ADMIN_PASSWORD")
        generated = None
        if not password:
            password = generated = secrets.token_urlsafe(15)
        try:
            self.create_user(username, password, role="admin")
        except (AccountError, sa.exc.IntegrityError):
            if self.has_admin():  # another replica starting at the same moment made it: its password holds
                return None
            raise
        return generated

    # -- history ---------------------------------------------------------------------------------
    def add_prediction(self, username: str, file_name: str, prediction, model_version: int | None,
                       image_path: str = "", thumbnail: bytes | None = None, source: str = "ui") -> int:
        with self.engine.begin() as conn:
            result = conn.execute(predictions.insert().values(
                username=username, user_id=_user_id(conn, username), created_at=time.time(),
                file_name=file_name[:300], label=prediction.label, p_fake=prediction.p_fake,
                confidence=prediction.confidence, band=prediction.band,
                model_version=model_version, image_path=image_path, thumbnail=thumbnail, source=source))
        return int(result.inserted_primary_key[0])

    def history(self, username: str | None = None, limit: int = 200) -> list[dict]:
        """Newest first; all users' when `username` is None (admins)."""
        query = _owned_predictions().order_by(predictions.c.id.desc()).limit(limit)
        with self.engine.connect() as conn:
            if username is not None:
                query = query.where(_owned_by(predictions.c.user_id, conn, username))
            return [dict(r) for r in conn.execute(query).mappings().all()]

    def get_prediction(self, prediction_id: int) -> dict | None:
        """The record with `username` its owner's now, None when the owner is gone (ids out of range: None)."""
        if not _is_row_id(prediction_id):
            return None
        with self.engine.connect() as conn:
            row = conn.execute(_owned_predictions().where(predictions.c.id == prediction_id)).mappings().first()
        return dict(row) if row else None

    # -- feedback --------------------------------------------------------------------------------
    def add_feedback(self, username: str, claimed_label: str, image_path: str, kind: str,
                     prediction_id: int | None = None, status: str = "pending") -> int:
        if claimed_label not in ("REAL", "FAKE"):
            raise AccountError(f"The label must be REAL or FAKE; got {claimed_label!r}.")
        with self.engine.begin() as conn:
            result = conn.execute(feedback.insert().values(
                prediction_id=prediction_id, username=username, user_id=_user_id(conn, username),
                claimed_label=claimed_label, kind=kind, status=status, image_path=image_path, created_at=time.time()))
        return int(result.inserted_primary_key[0])

    def feedback_for_predictions(self, prediction_ids: list[int]) -> dict[int, dict]:
        """prediction id -> its latest feedback (claimed_label, kind, status), for the ids that have one."""
        if not prediction_ids:
            return {}
        query = sa.select(feedback.c.prediction_id, feedback.c.claimed_label, feedback.c.kind, feedback.c.status) \
            .where(feedback.c.prediction_id.in_(prediction_ids)).order_by(feedback.c.id)
        with self.engine.connect() as conn:
            return {r["prediction_id"]: dict(r) for r in conn.execute(query).mappings().all()}

    def list_feedback(self, status: str | None = None) -> list[dict]:
        query = sa.select(feedback).order_by(feedback.c.id)
        if status:
            query = query.where(feedback.c.status == status)
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(query).mappings().all()]

    def review_feedback(self, feedback_id: int, accept: bool, reviewer: str) -> None:
        if not _is_row_id(feedback_id):
            raise AccountError(f"There is no feedback item {feedback_id}.")
        with self.engine.begin() as conn:
            result = conn.execute(feedback.update().where(feedback.c.id == feedback_id).values(
                status="accepted" if accept else "rejected", reviewed_by=reviewer))
        if result.rowcount == 0:
            raise AccountError(f"There is no feedback item {feedback_id}.")


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


def _sqlite_connection_settings(dbapi_connection, _record) -> None:
    # WAL + synchronous=NORMAL: a commit no longer waits for fsync (one per prediction was the largest
    # share of /predict's own time); a killed app still leaves a consistent database, only a power
    # cut can lose the last commits.
    dbapi_connection.execute("PRAGMA synchronous=NORMAL")
    dbapi_connection.execute("PRAGMA busy_timeout=10000")


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
