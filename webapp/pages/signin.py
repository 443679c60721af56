"""Sign in: a plain form that posts to `/login` (webapp.server sets the session cookie and comes back)."""
from __future__ import annotations

import html

import gradio as gr

from webapp.context import AppContext
from webapp.pages import Page


def signin_form_html(smtp_enabled: bool, error: str = "") -> str:
    forgot = '<p><a href="/forgot">Forgot password?</a></p>' if smtp_enabled else \
        "<p>Forgot your password? Ask an administrator to reset it.</p>"
    message = f'<p class="cifake-error" role="alert">{html.escape(error)}</p>' if error else ""
    return f"""
<form method="post" action="/login" class="cifake-form" id="signin-form">
  <h2>Sign in</h2>{message}
  <label>User name or e-mail<br><input name="username" autocomplete="username" required></label><br>
  <label>Password<br><input name="password" type="password" autocomplete="current-password" required></label><br>
  <button type="submit">Sign in</button>
</form>{forgot}
<p>No account yet? Open the <b>Register</b> tab.</p>"""


def signed_in_html(username: str) -> str:
    return (f"<p>You are signed in as <b>{html.escape(username)}</b>.</p><form method='post' action='/logout'>"
            "<button type='submit'>Sign out</button></form>")


def build(ctx: AppContext) -> Page:
    def show_form(request: gr.Request):
        user = ctx.user(request)  # the tab hides once signed in; should it still show, it says who you are
        return signin_form_html(ctx.smtp_enabled) if user is None else signed_in_html(user.username)

    with gr.Tab("Sign in", id="signin") as tab:
        form = gr.HTML(signin_form_html(ctx.smtp_enabled))
    return Page(tab, "visitor", [(show_form, [form])])
