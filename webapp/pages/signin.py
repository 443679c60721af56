"""Sign in: a plain form that posts to `/login` (webapp.server sets the session cookie and comes back).

A refused sign-in comes back to the app (`/?signin=wrong`, the typed name in a 2-minute cookie): the app opens this tab with the
message above the form and the name the user typed still in it."""
from __future__ import annotations

import html
from urllib.parse import unquote

import gradio as gr

from webapp.context import AppContext
from webapp.pages import Page


SIGNIN_NAME_COOKIE = "cifake_signin_name"  # what a refused sign-in typed, for 2 minutes (webapp.server)
REFUSALS = {"wrong": "Wrong user name, e-mail or password.",
            "limited": "Too many failed attempts from here; wait a minute and try again."}


def signin_form_html(smtp_enabled: bool, error: str = "", name: str = "", in_app: bool = True) -> str:
    forgot = '<p><a href="/forgot">Forgot password?</a></p>' if smtp_enabled else \
        "<p>Forgot your password? Ask an administrator to reset it.</p>"
    message = f'<p class="cifake-error" role="alert" id="signin-error">{html.escape(error)}</p>' if error else ""
    register = ("<p>No account yet? Open the <b>Register</b> tab.</p>" if in_app else
                '<p>No account yet? <a href="/">Register in the app</a>.</p>')
    return f"""
<form method="post" action="/login" class="cifake-form" id="signin-form">
  <h2>Sign in</h2>{message}
  <label>User name or e-mail<input name="username" autocomplete="username" required
    value="{html.escape(name[:120])}"></label>
  <label>Password<input name="password" type="password" autocomplete="current-password" required></label>
  <button type="submit">Sign in</button>
</form>{forgot}
{register}"""


def signed_in_html(username: str) -> str:
    return (f"<p>You are signed in as <b>{html.escape(username)}</b>.</p><form method='post' action='/logout'>"
            "<button type='submit'>Sign out</button></form>")


def build(ctx: AppContext) -> Page:
    def form_for(request: gr.Request | None) -> tuple[str, bool]:
        """The form, with a refused sign-in's message and typed name (`?signin=…`); whether there was one."""
        query = request.query_params if request is not None else {}
        refusal = REFUSALS.get(query.get("signin", ""))
        if refusal is None:
            return signin_form_html(ctx.smtp_enabled), False
        typed = unquote(request.cookies.get(SIGNIN_NAME_COOKIE, ""))
        return signin_form_html(ctx.smtp_enabled, refusal, typed), True

    def show_form(request: gr.Request):
        user = ctx.user(request)  # the tab hides once signed in; should it still show, it says who you are
        return form_for(request)[0] if user is None else signed_in_html(user.username)

    def after_refusal(request: gr.Request):
        """On app load: a refused sign-in opens this tab with its message and the name typed."""
        form, refused = form_for(request)
        if not refused or ctx.user(request) is not None:
            return gr.skip(), False
        return form, True

    with gr.Tab("Sign in", id="signin") as tab:
        form = gr.HTML(signin_form_html(ctx.smtp_enabled))
    return Page(tab, "visitor", [(show_form, [form])], on_app_load=(after_refusal, [form]))
