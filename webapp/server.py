"""The HTTP side: a FastAPI app with the Gradio Blocks mounted at `/`, our own routes beside it
(`webapp.routes`: sign-in and password reset, user pictures), security headers, refused cross-site writes
and request-body limits in front of everything.

Sessions are ours, not Gradio's `auth=`: every page is reachable signed out (the front door), and each
handler asks `webapp.context.AppContext.user(request)` who is calling.
"""
from __future__ import annotations

import logging
from urllib.parse import urlsplit

import anyio
import gradio as gr
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from webapp.auth import CSRF_COOKIE, SESSION_COOKIE
from webapp.bodylimit import BodyLimitMiddleware, BodyLimits
from webapp.context import AppContext
from webapp.cookies import cookie, is_https
from webapp.routes import account, media
from webapp.settings import Settings
from webapp.style import APP_CSS
from webapp.uploads import keep_cache_under

log = logging.getLogger("cifake.server")
UNSAFE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


# -- headers and cross-site checks ------------------------------------------------------------------
def security_headers(settings, https: bool) -> list[tuple[bytes, bytes]]:
    ancestors = "'self'" + (f" https://huggingface.co https://{settings.space_host}" if settings.space_host else "")
    csp = ("default-src 'self'; script-src 'self' 'unsafe-inline' 'unsafe-eval'; style-src 'self' 'unsafe-inline'; "
           "img-src 'self' data: blob:; media-src 'self' data: blob:; font-src 'self' data:; connect-src 'self'; "
           f"worker-src 'self' blob:; object-src 'none'; base-uri 'self'; form-action 'self'; "
           f"frame-ancestors {ancestors}")
    headers = [(b"content-security-policy", csp.encode()), (b"x-content-type-options", b"nosniff"),
               (b"referrer-policy", b"same-origin"), (b"cross-origin-opener-policy", b"same-origin"),
               (b"permissions-policy", b"camera=(), microphone=(), geolocation=(), payment=()")]
    if not settings.space_host:
        headers.append((b"x-frame-options", b"SAMEORIGIN"))
    if https:
        headers.append((b"strict-transport-security", b"max-age=31536000"))
    return headers


class GuardMiddleware:
    """Pure ASGI (streams pass through): refuses cross-site writes, adds security headers and the
    CSRF cookie that the registration form's token is bound to."""

    def __init__(self, app, ctx: AppContext):
        self.app = app
        self.ctx = ctx

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        if scope["method"] in UNSAFE_METHODS and _cross_site(headers, self.ctx.settings.trust_proxy):
            response = JSONResponse({"detail": "Cross-site request refused."}, status_code=403)
            return await response(scope, receive, send)
        https = is_https(scope, self.ctx.settings.trust_proxy)
        extra = security_headers(self.ctx.settings, https)
        if scope["method"] == "GET" and CSRF_COOKIE.encode() + b"=" not in headers.get(b"cookie", b""):
            import secrets

            extra.append((b"set-cookie", cookie(CSRF_COOKIE, secrets.token_urlsafe(24), https, 86400 * 30,
                                                 same_site="strict").encode()))

        if scope["method"] == "GET" and scope.get("path") == "/" and self._stale_session(headers):
            # the page starts afresh as a visitor; the tab that held the session was told (webapp.actions)
            extra.append((b"set-cookie", cookie(SESSION_COOKIE, "", https, 0).encode()))

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                names = {k.lower() for k, _ in message.get("headers", [])}
                message["headers"] = list(message.get("headers", [])) + [
                    (k, v) for k, v in extra if k == b"set-cookie" or k not in names]
            await send(message)

        await self.app(scope, receive, send_with_headers)

    def _stale_session(self, headers: dict) -> bool:
        """A session cookie that no longer signs anyone in (signed out elsewhere, idle, user disabled)."""
        if SESSION_COOKIE.encode() + b"=" not in headers.get(b"cookie", b""):
            return False
        from http.cookies import SimpleCookie

        cookies = SimpleCookie(headers[b"cookie"].decode("latin-1"))
        value = cookies[SESSION_COOKIE].value if SESSION_COOKIE in cookies else ""
        return bool(value) and self.ctx.auth.user_for({}, {SESSION_COOKIE: value}) is None


def _cross_site(headers: dict, trust_proxy: bool) -> bool:
    """A browser's write from another site (clients that send no Origin, like gradio_client, pass)."""
    if headers.get(b"sec-fetch-site", b"") == b"cross-site":
        return True
    origin = headers.get(b"origin")
    if not origin or origin == b"null":
        return origin == b"null"
    host = (trust_proxy and headers.get(b"x-forwarded-host")) or headers.get(b"host", b"")
    return urlsplit(origin.decode("latin-1")).netloc != host.decode("latin-1").split(",")[0].strip()


# -- the app --------------------------------------------------------------------------------------
def create_app(ctx: AppContext, demo: gr.Blocks) -> FastAPI:
    """Routes, then the middleware (last added is outermost), then the Blocks mounted at `/`."""
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    auth, settings = ctx.auth, ctx.settings
    app.include_router(account.router(ctx))
    app.include_router(media.router(ctx))

    async def who(scope) -> tuple[bool, str]:
        """For the body limits of uploads: signed in?, and the client's address."""
        request = Request(scope)
        username = await anyio.to_thread.run_sync(auth.username_for, request.headers, request.cookies)
        return username is not None, auth.client_address(request.headers, request.client)

    app.add_middleware(BodyLimitMiddleware, limits=BodyLimits.from_settings(settings), who=who)
    app.add_middleware(GuardMiddleware, ctx=ctx)  # added last, so outermost: a 413 gets the headers too
    folder = ctx.service.folder
    # CVE-2026-134825 (Gradio 6.27-6.31): auth bypass through a forged Host header when SSR is on.
    # SSR stays off until a fixed Gradio is available (6.31.0 is the newest here).
    app = gr.mount_gradio_app(app, demo, path="/", ssr_mode=False, show_error=True, css=APP_CSS,
                              max_file_size=f"{settings.max_file_mb}mb", allowed_paths=[],
                              blocked_paths=[str(folder)], footer_links=["api"],
                              mcp_server=_mcp_available())
    # Gradio checks the file paths a request names only once the Blocks has launched, and a mounted
    # Blocks never launches: set the flag as launch() does (in Gradio 6.31 it gates nothing else).
    # webapp.uploads explains this first layer and the second, our own.
    demo.has_launched = True
    keep_cache_under(demo.GRADIO_CACHE, settings.cache_max_mb * 2**20, demo.upload_file_set)
    return app


def serve(app: FastAPI, settings: Settings) -> None:
    """Run `app` under uvicorn until SIGTERM/SIGINT. A stop first ends Gradio's heartbeat streams (every
    open tab holds one): a mounted Blocks never launches, so nothing else tells them, and uvicorn would
    wait `CIFAKE_SHUTDOWN_SECONDS` for them and then log a traceback for each."""
    import uvicorn
    from starlette.routing import Mount

    streams = [route.app.stop_event for route in app.routes
               if isinstance(route, Mount) and isinstance(route.app, gr.routes.App)]

    class Server(uvicorn.Server):
        async def shutdown(self, sockets=None) -> None:
            for stop in streams:
                stop.set()
            await super().shutdown(sockets)

    Server(uvicorn.Config(app, host=settings.host, port=settings.port, log_level="warning",
                          timeout_graceful_shutdown=settings.shutdown_seconds)).run()


def _mcp_available() -> bool:
    try:
        import mcp  # noqa: F401 - gradio[mcp] installed: also serve the API as MCP tools
    except ImportError:
        return False
    return True
