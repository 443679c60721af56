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
    if user is None:  # real buttons: on a phone the tabs past the third hide in a "⋯" menu
        return ('<div id="whoami">Visitor · <a class="cifake-button" id="header-signin" href="/?open=signin">Sign in'
                '</a> <a class="cifake-button secondary" id="header-register" href="/?open=register">Register</a>'
                '<br><span class="cifake-hint">for history, batch mode and the API with a token</span></div>')
    return (f'<div id="whoami">Signed in as <b>{html.escape(user.username)}</b> ({html.escape(user.role)}) '
            '<form method="post" action="/logout" style="display:inline"><button type="submit" id="signout-top">'
            'Sign out</button></form></div>')


def _opening(page):
    """A page's on-app-load handler, its last value (open this tab?) turned into a Tabs update."""
    handler, _ = page.on_app_load

    def on_load(request: gr.Request):
        *values, open_tab = handler(request)
        return (*values, gr.Tabs(selected=page.tab.id) if open_tab else gr.skip())

    on_load.__name__ = f"load_{handler.__name__}"
    return on_load


def build_app(ctx: AppContext) -> gr.Blocks:
    with AppBlocks(title="CIFAKE detector — real or AI-generated?", delete_cache=CACHE_SWEEP) as demo:
        with gr.Row():
            gr.Markdown("# CIFAKE detector\nIs this picture a real photograph or AI-generated? "
                        "The verdict comes with a heatmap of what the model looked at.")
            header = gr.HTML("", elem_id="header")  # filled on load: who is signed in
        with gr.Tabs() as tabs:
            pages = [module.build(ctx) for module in PAGE_MODULES]
        for page in pages:  # before the page has loaded: only the tabs everyone sees. The load event then
            # shows the visitor's or the member's tabs; it never has to hide one (Gradio 6.31 leaves a tab
            # that was rendered visible in the tab bar when an update sets visible=False).
            page.tab.visible = page.audience == "everyone"
        api.build(ctx)

        def show_pages(request: gr.Request):
            """The header and the user's tabs; `?open=<tab id>` opens that tab when the user may see it."""
            user = ctx.user(request)
            role = None if user is None else user.role
            wanted = request.query_params.get("open", "") if request is not None else ""
            opened = next((page.tab.id for page in pages if page.tab.id == wanted and page.visible_for(role)), None)
            return (header_html(user), gr.Tabs(selected=opened) if opened else gr.skip(),
                    *(gr.Tab(visible=page.visible_for(role)) for page in pages))

        demo.load(show_pages, None, [header, tabs, *(page.tab for page in pages)], api_visibility="private")
        for page in pages:  # e.g. a refused sign-in comes back to the app and opens its tab with the message
            if page.on_app_load is not None:
                demo.load(_opening(page), None, [*page.on_app_load[1], tabs], api_visibility="private")
        for page in pages:  # each page loads its data when it is opened (Home, the first, needs none)
            for handler, outputs in page.loaders:
                page.tab.select(handler, None, outputs, api_visibility="private")
    return demo
