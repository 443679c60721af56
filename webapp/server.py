"""The HTTP side: a FastAPI app that owns sign-in, sign-out, password reset and user files, adds
security headers and refuses cross-site writes, with the Gradio Blocks mounted at `/`.

Sessions are ours, not Gradio's `auth=`: every page is reachable signed out (the front door), and each
handler asks `webapp.context.AppContext.user(request)` who is calling.
"""
from __future__ import annotations

import html
import io
import logging
from urllib.parse import quote, urlsplit

import anyio
import gradio as gr
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from PIL import Image
from starlette.background import BackgroundTask

from webapp.auth import CSRF_COOKIE, SESSION_COOKIE, LoginRefused
from webapp.bodylimit import BodyLimitMiddleware, BodyLimits
from webapp.context import AppContext
from webapp.mail import send_mail
from webapp.pages.signin import SIGNIN_NAME_COOKIE, signin_form_html
from webapp.store import PASSWORD_RULE, AccountError
from webapp.style import APP_CSS, FORM_CSS
from webapp.uploads import keep_cache_under

log = logging.getLogger("cifake.server")
HASH_SLOTS = 2  # scrypt calls at once (64 MB and ~50 ms each); the rest wait without blocking the loop
FAILED_SIGN_IN_DELAY = 0.5  # seconds before a refused sign-in is answered: a flood gets slow answers, not CPU
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


def is_https(scope, trust_proxy: bool) -> bool:
    if scope.get("scheme") == "https":
        return True
    forwarded = dict(scope.get("headers") or []).get(b"x-forwarded-proto", b"")
    return trust_proxy and forwarded.split(b",")[0].strip() == b"https"


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

            extra.append((b"set-cookie", _cookie(CSRF_COOKIE, secrets.token_urlsafe(24), https, 86400 * 30,
                                                 same_site="strict").encode()))

        if scope["method"] == "GET" and scope.get("path") == "/" and self._stale_session(headers):
            # the page starts afresh as a visitor; the tab that held the session was told (webapp.actions)
            extra.append((b"set-cookie", _cookie(SESSION_COOKIE, "", https, 0).encode()))

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


def _cookie(name: str, value: str, https: bool, max_age: int | None, same_site: str = "lax") -> str:
    parts = [f"{name}={value}", "Path=/", "HttpOnly", f"SameSite={same_site.capitalize()}"]
    if max_age is not None:
        parts.append(f"Max-Age={max_age}")
    if https:
        parts.append("Secure")
    return "; ".join(parts)


# -- small HTML pages -----------------------------------------------------------------------------
def html_page(title: str, body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>{html.escape(title)} · CIFAKE detector</title>
<style>body{{font-family:system-ui,sans-serif;max-width:32rem;margin:3rem auto;padding:0 1rem;color:#111827}}
{FORM_CSS}</style></head><body><p><a href="/">← CIFAKE detector</a></p>{body}</body></html>""",
                        status_code=status)


def _wants_html(request: Request) -> bool:
    return "text/html" in request.headers.get("accept", "")


# -- the app --------------------------------------------------------------------------------------
def create_app(ctx: AppContext, demo: gr.Blocks) -> FastAPI:
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    auth, store, settings = ctx.auth, ctx.service.store, ctx.settings
    hash_slots = anyio.CapacityLimiter(HASH_SLOTS)

    def address(request: Request) -> str:
        return auth.client_address(request.headers, request.client)

    @app.get("/login")
    def login_page(request: Request):
        return html_page("Sign in", signin_form_html(ctx.smtp_enabled, in_app=False))

    @app.post("/login")
    async def login(request: Request):
        """Browsers get a redirect; gradio_client (`Client(url, auth=(name, password))`) gets 200/401."""
        form = await request.form()
        name, password = str(form.get("username", ""))[:120], str(form.get("password", ""))[:200]
        try:
            username = await anyio.to_thread.run_sync(auth.sign_in, name, password, address(request),
                                                      limiter=hash_slots)
        except LoginRefused as err:
            return await _login_failed(request, str(err), 429, {"Retry-After": str(int(err.retry_after) + 1)},
                                       "limited", name)
        if username is None:
            return await _login_failed(request, "Wrong user name, e-mail or password.", 401, None, "wrong", name)
        token = auth.sign(store.create_session(username, address(request)))
        response = RedirectResponse("/", status_code=303) if _wants_html(request) else \
            JSONResponse({"success": True, "username": username})
        response.headers.append("set-cookie", _cookie(SESSION_COOKIE, token, is_https(request.scope,
                                                                                     settings.trust_proxy), None))
        return response

    async def _login_failed(request: Request, message: str, status: int, headers: dict | None, refusal: str,
                            name: str):
        """Browsers go back to the app, which opens Sign in with the message and the name they typed;
        API clients get the status and the message."""
        await anyio.sleep(FAILED_SIGN_IN_DELAY)  # costs the event loop nothing; each flooding client waits
        if _wants_html(request):
            # the typed name travels in a short-lived cookie, not the URL (it may be a mistyped password)
            response = RedirectResponse(f"/?signin={refusal}", status_code=303)
            response.headers.append("set-cookie", _cookie(SIGNIN_NAME_COOKIE, quote(name), is_https(
                request.scope, settings.trust_proxy), 120))
        else:
            response = JSONResponse({"success": False, "detail": message}, status_code=status)
        response.headers.update(headers or {})
        return response

    @app.get("/logout")  # Gradio's own GET /logout (its auth=, unused here) left our session alive
    @app.post("/logout")
    def logout(request: Request):
        token = auth.unsign(request.cookies.get(SESSION_COOKIE))
        if token:
            store.end_session(token)
        response = RedirectResponse("/", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    if ctx.smtp_enabled:
        @app.get("/forgot")
        def forgot_page():
            return html_page("Forgot password", _forgot_form())

        @app.post("/forgot")
        async def forgot(request: Request):
            form = await request.form()
            wait = ctx.message_limit.wait_time("forgot:" + address(request))
            if wait > 0:
                return html_page("Forgot password", _forgot_form(f"Too many requests; try again in {wait:.0f} s.",
                                                                 str(form.get("username", ""))), 429)
            response = html_page("Forgot password", "<p>If an account with that name or e-mail has an e-mail "
                                 "address, a reset link is on its way. It works once and expires in "
                                 f"{settings.reset_link_minutes:.0f} minutes.</p>")
            # looked up and mailed after the answer has gone: real and unknown names answer alike
            response.background = BackgroundTask(_send_reset_link, ctx, str(form.get("username", ""))[:120])
            return response

    @app.get("/reset")
    def reset_page(token: str = ""):
        if store.reset_token_user(token) is None:
            return html_page("Reset password", "<p class='cifake-error'>This reset link is invalid, used or expired."
                             "</p>", 400)
        return html_page("Reset password", _reset_form(token))

    @app.post("/reset")
    async def reset(request: Request):
        form = await request.form()
        token, password, repeat = (str(form.get(k, "")) for k in ("token", "password", "repeat"))
        if password != repeat:
            return html_page("Reset password", _reset_form(token, "The two passwords differ."), 400)
        try:
            username = await anyio.to_thread.run_sync(store.use_reset_token, token, password, limiter=hash_slots)
        except AccountError as err:
            return html_page("Reset password", _reset_form(token, str(err)), 400)
        return html_page("Password changed", f"<p>The password of <b>{html.escape(username)}</b> is changed and "
                         "every session of the account ended. <a href='/login'>Sign in</a>.</p>")

    @app.get("/media/profile/{username}")
    def profile_picture(username: str, request: Request):
        """A profile picture, for its owner and admins only."""
        asker = auth.user_for(request.headers, request.cookies)
        if asker is None or (asker.username != username and not asker.is_admin):
            return Response("Not found.", status_code=404)
        from webapp.actions import profile_picture as load

        return _png_response(load(ctx, username))

    def own_record(prediction_id: int, request: Request) -> dict | None:
        """A history record, if the asker is the user it belongs to or an admin."""
        asker = auth.user_for(request.headers, request.cookies)
        row = store.get_prediction(prediction_id)
        if asker is None or row is None or (row["username"] != asker.username and not asker.is_admin):
            return None
        return row

    @app.get("/media/input/{prediction_id}")
    def stored_input(prediction_id: int, request: Request):
        """The 32x32 input of a prediction, for the user it belongs to and admins only."""
        row = own_record(prediction_id, request)
        if row is None:
            return Response("Not found.", status_code=404)
        from webapp.pages.admin_retraining import _stored_input

        return _png_response(_stored_input(ctx, row["image_path"]) if row["image_path"] else None)

    @app.get("/media/thumbnail/{prediction_id}")
    def thumbnail(prediction_id: int, request: Request):
        """The History page's small picture of a prediction, for its user and admins only."""
        row = own_record(prediction_id, request)
        if row is None or not row["thumbnail"]:
            return Response("Not found.", status_code=404)
        return Response(row["thumbnail"], media_type="image/png", headers={"Cache-Control": "private, no-store"})

    async def who(scope) -> tuple[bool, str]:
        """For the body limits of uploads: signed in?, and the client's address."""
        request = Request(scope)
        username = await anyio.to_thread.run_sync(auth.username_for, request.headers, request.cookies)
        return username is not None, address(request)

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


def _png_response(image: Image.Image | None) -> Response:
    if image is None:
        return Response("Not found.", status_code=404)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return Response(buffer.getvalue(), media_type="image/png", headers={"Cache-Control": "private, no-store"})


def _send_reset_link(ctx: AppContext, name_or_email: str) -> None:
    store = ctx.service.store
    username = store.find_username(name_or_email)
    user = store.get_user(username) if username else None
    if user is None or user.disabled or not user.profile.get("email"):
        return
    token = store.create_reset_token(username, ctx.settings.reset_link_minutes * 60)
    link = ctx.settings.public_url.rstrip("/") + "/reset?token=" + quote(token)
    try:
        send_mail(ctx.settings.smtp_url, user.profile["email"], "Reset your CIFAKE detector password",
                  f"Hello {username},\n\nsomeone (hopefully you) asked to reset your password. Open this link "
                  f"within {ctx.settings.reset_link_minutes:.0f} minutes; it works once:\n\n{link}\n\n"
                  "If it was not you, ignore this message; your password stays as it is.\n")
    except Exception:  # noqa: BLE001 - the visitor gets the same answer; the admin sees the log
        log.exception("could not send the reset e-mail")


def _forgot_form(error: str = "", name: str = "") -> str:
    """The form; after a refusal, with its message and the name the user typed."""
    message = f'<p class="cifake-error" role="alert">{html.escape(error)}</p>' if error else ""
    return f"""<h2>Forgot your password?</h2>{message}<form method="post" action="/forgot" class="cifake-form">
<label>User name or e-mail<input name="username" autocomplete="username" required value="{html.escape(name[:120])}">
</label>
<button type="submit">Send me a reset link</button></form>"""


def _reset_form(token: str, error: str = "") -> str:
    message = f'<p class="cifake-error" role="alert">{html.escape(error)}</p>' if error else ""
    return f"""<h2>Choose a new password</h2>{message}<form method="post" action="/reset" class="cifake-form">
<p class="cifake-hint">{PASSWORD_RULE}</p>
<input type="hidden" name="token" value="{html.escape(token)}">
<label>New password<input name="password" type="password" autocomplete="new-password" required></label>
<label>Repeat it<input name="repeat" type="password" autocomplete="new-password" required></label>
<button type="submit">Set the new password</button></form>"""


def _mcp_available() -> bool:
    try:
        import mcp  # noqa: F401 - gradio[mcp] installed: also serve the API as MCP tools
    except ImportError:
        return False
    return True
