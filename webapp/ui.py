"""All pages in one Blocks: a header saying who is signed in, one tab per page module, and the API.

Tabs show by audience (visitors, members, admins), decided on the server when the page loads; hiding a
tab is only convenience: every handler checks the user itself.
"""
from __future__ import annotations

import html

import gradio as gr

from webapp.context import AppContext
from webapp.pages import (about, admin_evaluate, admin_model, admin_retraining, admin_users, api, batch, contact,
                          history, home, profile, register, signin)
from webapp.blocks import AppBlocks

PAGE_MODULES = (home, batch, history, profile, about, contact, signin, register,
                admin_model, admin_evaluate, admin_retraining, admin_users)
CACHE_SWEEP = (600, 3600)  # every 10 minutes, delete Gradio's cached uploads/results older than an hour


def header_html(user) -> str:
    if user is None:
        return '<div id="whoami">Visitor · open <b>Sign in</b> or <b>Register</b> for history and batch mode</div>'
    return (f'<div id="whoami">Signed in as <b>{html.escape(user.username)}</b> ({html.escape(user.role)}) '
            '<form method="post" action="/logout" style="display:inline"><button type="submit" id="signout-top">'
            'Sign out</button></form></div>')


def build_app(ctx: AppContext) -> gr.Blocks:
    with AppBlocks(title="CIFAKE detector — real or AI-generated?", delete_cache=CACHE_SWEEP) as demo:
        with gr.Row():
            gr.Markdown("# CIFAKE detector\nIs this picture a real photograph or AI-generated? "
                        "The verdict comes with a heatmap of what the model looked at.")
            header = gr.HTML("", elem_id="header")  # filled on load: who is signed in
        with gr.Tabs():
            pages = [module.build(ctx) for module in PAGE_MODULES]
        for page in pages:  # before the page has loaded: only the tabs everyone sees. The load event then
            # shows the visitor's or the member's tabs; it never has to hide one (Gradio 6.31 leaves a tab
            # that was rendered visible in the tab bar when an update sets visible=False).
            page.tab.visible = page.audience == "everyone"
        api.build(ctx)

        def show_pages(request: gr.Request):
            user = ctx.user(request)
            role = None if user is None else user.role
            return (header_html(user), *(gr.Tab(visible=page.visible_for(role)) for page in pages))

        demo.load(show_pages, None, [header, *(page.tab for page in pages)], api_visibility="private")
        for page in pages:  # each page loads its data when it is opened (Home, the first, needs none)
            for handler, outputs in page.loaders:
                page.tab.select(handler, None, outputs, api_visibility="private")
    return demo
