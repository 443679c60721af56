"""What every page needs: the service, the settings, who is asking, rate limits and temporary files.

Handlers take `request: gr.Request` (annotated, so Gradio passes it) and ask the context for the user;
every role check happens here, on the server.
"""
from __future__ import annotations

import io
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import gradio as gr
from PIL import Image

from webapp.auth import SESSION_COOKIE, Auth, load_secret
from webapp.limits import RateLimiter
from webapp.service import DetectorService
from webapp.settings import Settings
from webapp.store import User

VERDICT_TEXT = {"FAKE": "AI-generated", "REAL": "Real photograph", "UNCERTAIN": "Uncertain"}
IMAGE_TYPES = [".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"]


class TempFiles:
    """Result files (CSV, JSON, PNG) in one private folder; files older than `max_age` are swept."""

    def __init__(self, max_age: float = 900.0):
        self.folder = Path(tempfile.mkdtemp(prefix="cifake-results-"))
        self.max_age = max_age
        self._last_sweep = time.monotonic()

    def write(self, data: bytes, suffix: str, prefix: str = "cifake-") -> str:
        self.sweep()
        handle = tempfile.NamedTemporaryFile(delete=False, suffix=suffix, prefix=prefix, dir=self.folder)
        with handle:
            handle.write(data)
        return handle.name

    def png(self, image: Image.Image, prefix: str) -> str:
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        return self.write(buffer.getvalue(), ".png", prefix)

    def sweep(self, force: bool = False) -> int:
        """Delete files older than `max_age` (at most once a minute unless forced); returns how many."""
        now = time.monotonic()
        if not force and now - self._last_sweep < 60:
            return 0
        self._last_sweep, removed, cutoff = now, 0, time.time() - self.max_age
        for path in self.folder.glob("*"):
            try:
                if path.stat().st_mtime < cutoff:
                    path.unlink()
                    removed += 1
            except FileNotFoundError:
                pass
        return removed


@dataclass
class AppContext:
    service: DetectorService
    settings: Settings
    auth: Auth
    temp: TempFiles = field(default_factory=TempFiles)

    def __post_init__(self):
        s = self.settings
        self.visitor_limit = RateLimiter(s.visitor_predictions_per_minute, 60.0)
        self.register_limit = RateLimiter(s.registrations_per_hour, 3600.0)
        self.message_limit = RateLimiter(s.messages_per_hour, 3600.0)
        self.profile_lock = threading.Lock()

    @classmethod
    def create(cls, settings: Settings) -> "AppContext":
        service = DetectorService(settings.data_dir, settings.database_url, ort_threads=settings.ort_threads)
        auth = Auth(service.store, load_secret(service.folder, settings.secret_key or None),
                    idle_seconds=settings.session_idle_minutes * 60, trust_proxy=settings.trust_proxy)
        auth.policy = type(auth.policy)(address_budget=settings.login_address_budget)
        return cls(service, settings, auth)

    # -- who is asking ------------------------------------------------------------------------------
    def user(self, request: gr.Request | None) -> User | None:
        if request is None:
            return None
        return self.auth.user_for(request.headers, request.cookies)

    def signed_out(self, request: gr.Request | None, user: User | None) -> bool:
        """`user` (this request's, from `user()`) is None yet the request carries a valid-looking session
        cookie: its tab was signed in before. (A page load drops such a cookie: webapp.server.GuardMiddleware.)"""
        return user is None and request is not None and bool(self.auth.unsign(request.cookies.get(SESSION_COOKIE)))

    def require_user(self, request: gr.Request | None) -> User:
        user = self.user(request)
        if user is None or user.disabled:
            raise gr.Error("Please sign in.", title="Not signed in")
        return user

    def require_admin(self, request: gr.Request | None) -> User:
        user = self.require_user(request)
        if not user.is_admin:
            raise gr.Error("Only administrators can do this.", title="Not allowed")
        return user

    def address(self, request: gr.Request | None) -> str:
        return self.auth.client_address(request.headers, request.client) if request is not None else "unknown"

    def check_rate(self, limiter: RateLimiter, request: gr.Request, what: str, record: bool = True) -> None:
        wait = limiter.wait_time(self.address(request), record=record)
        if wait > 0:
            raise gr.Error(f"Too many {what} from your address; try again in {wait:.0f} s.", title="Slow down")

    @property
    def smtp_enabled(self) -> bool:
        return bool(self.settings.smtp_url)


def file_path(value) -> str | None:
    """The local path of a gr.File value (str, dict, object or a one-item list)."""
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        value = value[0] if value else None
    return getattr(value, "name", None) or (value.get("path") if isinstance(value, dict) else value)


def clicked_row(table, event: gr.SelectData) -> list | None:
    """The row of a gr.Dataframe value (DataFrame or list of rows) that a select event clicked, or None."""
    index = event.index[0] if isinstance(event.index, (list, tuple)) else None
    rows = table.values.tolist() if hasattr(table, "values") else (table or [])
    return rows[index] if isinstance(index, int) and 0 <= index < len(rows) else None
