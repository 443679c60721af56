"""Sign in: a plain form (webapp.forms) that posts to `/login` (webapp.routes.account sets the session cookie and
comes back).

A refused sign-in comes back to the app (`/?signin=wrong`, the typed name in a 2-minute cookie): the app opens this tab with the
message above the form and the name the user typed still in it."""
from __future__ import annotations

import html
from urllib.parse import unquote

import gradio as gr

from webapp.context import AppContext
from webapp.forms import REFUSALS, SIGNIN_NAME_COOKIE, signin_form_html
from webapp.pages import Page


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
