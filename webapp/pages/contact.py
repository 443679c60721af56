"""Contact: anyone may write to the administrators (rate-limited per address); admins read it in the app."""
from __future__ import annotations

import gradio as gr

from webapp.context import AppContext
from webapp.pages import Page
from webapp.store import AccountError


def build(ctx: AppContext) -> Page:
    def send_message(name: str, email: str, body: str, request: gr.Request):
        user = ctx.user(request)
        ctx.check_rate(ctx.message_limit, request, "messages", record=False)
        try:
            ctx.service.store.add_message(name, email, body, user.username if user else None)
        except AccountError as err:
            raise gr.Error(str(err)) from None
        ctx.message_limit.record(ctx.address(request))
        return "Thank you — your message reached the administrators.", ""

    with gr.Tab("Contact", id="contact") as tab:
        gr.Markdown("### Write to us\nQuestions, a wrong verdict, an account problem: the administrators read "
                    "these messages in the app.")
        name = gr.Textbox(label="Your name", elem_id="contact-name")
        email = gr.Textbox(label="Your e-mail (to answer you)", elem_id="contact-email")
        body = gr.Textbox(label="Message", lines=5, elem_id="contact-body")
        send = gr.Button("Send", variant="primary", elem_id="contact-send")
        sent = gr.Markdown(elem_id="contact-result")
        send.click(send_message, [name, email, body], [sent, body], api_visibility="private")
    return Page(tab, "everyone")
