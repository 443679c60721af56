"""Sign-in, sign-out and password reset: plain HTML forms and JSON for gradio_client.

Sessions are ours, not Gradio's `auth=`: `/login` sets the session cookie, `/logout` ends the session,
`/forgot` mails a one-time link (only with SMTP configured) and `/reset` uses it."""
from __future__ import annotations

import html
import logging
from urllib.parse import quote

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from starlette.background import BackgroundTask

from webapp.auth import SESSION_COOKIE, LoginRefused
from webapp.context import AppContext
from webapp.cookies import cookie, is_https
from webapp.forms import REFUSALS, SIGNIN_NAME_COOKIE, signin_form_html
from webapp.mail import send_mail
from webapp.store import PASSWORD_RULE, AccountError
from webapp.style import FORM_CSS

log = logging.getLogger("cifake.server")
HASH_SLOTS = 2  # scrypt calls at once (64 MB and ~50 ms each); the rest wait without blocking the loop


def router(ctx: AppContext) -> APIRouter:
    """Long on purpose: it is the route table, one short closure per route over the same context."""
    routes = APIRouter()
    auth, store, settings = ctx.auth, ctx.service.store, ctx.settings
    hash_slots = anyio.CapacityLimiter(HASH_SLOTS)  # sign-in and reset hash in worker threads, a few at once

    def address(request: Request) -> str:
        return auth.client_address(request.headers, request.client)

    def _https(request: Request) -> bool:
        return is_https(request.scope, settings.trust_proxy)

    @routes.get("/login")
    def login_page(request: Request):
        return html_page("Sign in", signin_form_html(ctx.smtp_enabled, in_app=False))

    @routes.post("/login")
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
            return await _login_failed(request, REFUSALS["wrong"], 401, None, "wrong", name)
        token = auth.sign(store.create_session(username, address(request)))
        response = RedirectResponse("/", status_code=303) if _wants_html(request) else \
            JSONResponse({"success": True, "username": username})
        response.headers.append("set-cookie", cookie(SESSION_COOKIE, token, _https(request), None))
        return response

    async def _login_failed(request: Request, message: str, status: int, headers: dict | None, refusal: str,
                            name: str):
        """Browsers go back to the app, which opens Sign in with the message and the name they typed;
        API clients get the status and the message."""
        await anyio.sleep(settings.failed_sign_in_delay)  # costs the event loop nothing; each flooding client waits
        if _wants_html(request):
            # the typed name travels in a short-lived cookie, not the URL (it may be a mistyped password)
            response = RedirectResponse(f"/?signin={refusal}", status_code=303)
            response.headers.append("set-cookie", cookie(SIGNIN_NAME_COOKIE, quote(name), _https(request), 120))
        else:
            response = JSONResponse({"success": False, "detail": message}, status_code=status)
        response.headers.update(headers or {})
        return response

    @routes.get("/logout")  # Gradio's own GET /logout (its auth=, unused here) left our session alive
    @routes.post("/logout")
    def logout(request: Request):
        token = auth.unsign(request.cookies.get(SESSION_COOKIE))
        if token:
            store.end_session(token)
        response = RedirectResponse("/", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    if ctx.smtp_enabled:
        @routes.get("/forgot")
        def forgot_page():
            return html_page("Forgot password", _forgot_form())

        @routes.post("/forgot")
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

    @routes.get("/reset")
    def reset_page(token: str = ""):
        if store.reset_token_user(token) is None:
            return html_page("Reset password", "<p class='cifake-error'>This reset link is invalid, used or expired."
                             "</p>", 400)
        return html_page("Reset password", _reset_form(token))

    @routes.post("/reset")
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

    return routes


def html_page(title: str, body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>{html.escape(title)} · CIFAKE detector</title>
<style>body{{font-family:system-ui,sans-serif;max-width:32rem;margin:3rem auto;padding:0 1rem;color:#111827}}
{FORM_CSS}</style></head><body><p><a href="/">← CIFAKE detector</a></p>{body}</body></html>""",
                        status_code=status)


def _wants_html(request: Request) -> bool:
    return "text/html" in request.headers.get("accept", "")


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
