"""Sign-in failures, sessions, API tokens and password-reset links."""
from __future__ import annotations

import secrets
import time

import sqlalchemy as sa

from webapp.store.passwords import token_hash, verify_password, _DUMMY_HASH
from webapp.store.schema import (AccountError, api_tokens, login_attempts, reset_tokens, sessions, users, _is_row_id, _owned_by, _user_id)


class SignIns:
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
