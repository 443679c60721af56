"""Who is asking: signed session cookies, API tokens, and sign-in throttled per (account, address).

- The session cookie holds a random token plus an HMAC of it (so forged cookies cost no database
  look-up); the database keeps only the token's hash, so ending a session is deleting a row: that is
  how disabling, deleting or resetting a user ends their sessions at once.
- Programmatic clients send `Authorization: Bearer cft_…` (a per-user API token) or sign in through
  `/login` like gradio_client's `auth=(user, password)` does.
- Sign-in: each failed (account, address) pair waits longer before its next try; each address has a
  budget of failures per window. An attacker at one address cannot lock a user out at another.
  Password hashing runs in worker threads, at most `hash_concurrency` at once.
"""
from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from webapp.store import Store, User

SESSION_COOKIE = "cifake_session"
CSRF_COOKIE = "cifake_csrf"


class LoginRefused(Exception):
    """A sign-in refused before checking the password (too many failures); the message says how long."""

    def __init__(self, message: str, retry_after: float):
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True)
class LoginPolicy:
    window: float = 900.0  # seconds a failure counts
    free_failures: int = 3  # per (account, address) before delays start
    max_delay: float = 300.0  # the delay doubles per failure up to this
    address_budget: int = 30  # failures per address per window, any accounts


def load_secret(folder: Path, configured: str | None = None) -> bytes:
    """CIFAKE_SECRET_KEY if set, else a random key kept in the data folder (created once, mode 0600)."""
    if configured:
        return configured.encode()
    path = folder / "secret_key"
    try:  # O_EXCL: replicas starting together on one shared folder create one key, not one each
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(fd, "wb") as handle:
            handle.write(secrets.token_bytes(32))
    for _ in range(50):  # the other replica may be between creating and writing it
        key = path.read_bytes()
        if key:
            return key
        time.sleep(0.1)
    raise RuntimeError(f"{path} is empty; delete it (signing everyone out) or set CIFAKE_SECRET_KEY.")


class Auth:
    def __init__(self, store: Store, secret: bytes, idle_seconds: float = 7200.0,
                 policy: LoginPolicy = LoginPolicy(), trust_proxy: int = 0):
        self.store = store
        self.secret = secret
        self.idle_seconds = idle_seconds
        self.policy = policy
        self.trust_proxy = int(trust_proxy)  # proxies in front of the app (True counts as one)
        self._prune_lock = threading.Lock()
        self._last_prune = 0.0

    # -- cookies ----------------------------------------------------------------------------------
    def sign(self, token: str) -> str:
        mac = hmac.new(self.secret, token.encode(), hashlib.sha256).hexdigest()[:32]
        return f"{token}.{mac}"

    def unsign(self, value: str | None) -> str | None:
        token, _, mac = (value or "").rpartition(".")
        if not token or not hmac.compare_digest(self.sign(token).rpartition(".")[2], mac):
            return None
        return token

    def csrf_token(self, csrf_cookie: str | None) -> str:
        """The form token that goes with a browser's CSRF cookie (a cross-site page can read neither)."""
        return hmac.new(self.secret, b"csrf:" + (csrf_cookie or "").encode(), hashlib.sha256).hexdigest()

    def csrf_ok(self, csrf_cookie: str | None, token: str | None) -> bool:
        return bool(csrf_cookie) and hmac.compare_digest(self.csrf_token(csrf_cookie), token or "")

    # -- who is asking -----------------------------------------------------------------------------
    def client_address(self, headers, client) -> str:
        """Behind `trust_proxy` proxies, the address the outermost one saw: each proxy appends the address
        it received from, so that is the n-th entry from the right. Entries left of it are whatever the
        client wrote itself, never trusted (a client that sent its own header got unlimited tries)."""
        hops = [entry.strip() for entry in headers.get("x-forwarded-for", "").split(",") if entry.strip()]
        if self.trust_proxy and hops:
            return hops[-min(self.trust_proxy, len(hops))][:64]
        return getattr(client, "host", None) or "unknown"

    def username_for(self, headers, cookies) -> str | None:
        """The signed-in user of a request (API token or session cookie), or None for a visitor."""
        bearer = headers.get("authorization", "")
        if bearer.lower().startswith("bearer "):
            return self.store.api_token_user(bearer[7:].strip())
        token = self.unsign(cookies.get(SESSION_COOKIE))
        return self.store.session_user(token, self.idle_seconds) if token else None

    def user_for(self, headers, cookies) -> User | None:
        username = self.username_for(headers, cookies)
        return self.store.get_user(username) if username else None

    # -- sign in ----------------------------------------------------------------------------------
    def check_allowed(self, name: str, address: str, now: float | None = None) -> None:
        """Raise LoginRefused while this (account, address) must wait or the address is over budget."""
        now = time.time() if now is None else now
        self._prune(now)
        since = now - self.policy.window
        from_address = self.store.login_failures(since, address=address)
        if len(from_address) >= self.policy.address_budget:
            wait = from_address[-self.policy.address_budget] + self.policy.window - now
            raise LoginRefused(f"Too many failed sign-ins from your address; try again in {wait / 60:.0f} min.",
                               wait)
        pair = self.store.login_failures(since, key=name, address=address)
        extra = len(pair) - self.policy.free_failures
        if extra >= 0:
            delay = min(self.policy.max_delay, 2.0 ** extra)
            wait = pair[-1] + delay - now
            if wait > 0:
                raise LoginRefused(f"Too many failed sign-ins for this account; try again in {wait:.0f} s.", wait)

    def sign_in(self, name: str, password: str, address: str) -> str | None:
        """Blocking (call it in a worker thread): the user name if the password is right, else None.

        Raises LoginRefused without hashing anything while throttled.
        """
        name = (name or "").strip()[:120]
        self.check_allowed(name, address)
        username = self.store.check_password(name, password)
        if username is None:
            self.store.record_login_failure(name, address)
            return None
        self.store.clear_login_failures(name, address)
        return username

    def _prune(self, now: float) -> None:
        with self._prune_lock:
            if now - self._last_prune < 60:
                return
            self._last_prune = now
        self.store.prune_login_failures(now - self.policy.window)
        self.store.prune_sessions(self.idle_seconds)
