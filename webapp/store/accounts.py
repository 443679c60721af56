"""Users: create, find, profile, role, disable, delete, passwords; the first admin."""
from __future__ import annotations

import os
import secrets
import time

import sqlalchemy as sa

from webapp.store.passwords import hash_password, password_problem
from webapp.store.schema import (AccountError, api_tokens, feedback, messages, predictions, PROFILE_FIELDS, reset_tokens, ROLES, sessions, User, USERNAME_RE, users, _clean_profile, _email_key, _owned_by)


class Accounts:
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
