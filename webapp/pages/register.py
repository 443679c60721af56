"""Register: the original project's profile fields, each checked with a clear message.

Open unless CIFAKE_ALLOW_SIGNUP=0. Protected against cross-site use (a token bound to the browser's
CSRF cookie, plus the Origin check in webapp.server) and limited per address.
"""
from __future__ import annotations

import re

import gradio as gr

from webapp.auth import CSRF_COOKIE
from webapp.context import IMAGE_TYPES, AppContext, file_path
from webapp.pages import Page
from webapp.pages.profile import save_profile_picture
from webapp.store import MIN_PASSWORD, AccountError

MOBILE_RE = re.compile(r"^\+?[0-9][0-9 ()-]{5,19}$")


def registration_problem(username, full_name, email, mobile, age, address, password, repeat) -> str | None:
    """The first problem with a registration form, as a sentence; None when it is complete."""
    if not (username or "").strip():
        return "Choose a user name."
    if not (full_name or "").strip():
        return "Enter your full name."
    if not (email or "").strip():
        return "Enter your e-mail address (you can sign in with it)."
    if mobile and not MOBILE_RE.match(mobile.strip()):
        return f"{mobile!r} does not look like a mobile number (digits, spaces, + - ( ); 6-20 characters)."
    if age not in (None, "") and not (isinstance(age, (int, float)) and float(age).is_integer() and 0 < age < 150):
        return f"Age must be a whole number between 1 and 149; got {age!r}."
    if not password:
        return "Choose a password."
    if password != repeat:
        return "The two passwords differ."
    return None


def build(ctx: AppContext) -> Page:
    def registration_token(request: gr.Request):
        """On open: the form token bound to the browser's CSRF cookie; the form only for visitors."""
        user = ctx.user(request)
        note = "" if user is None else f"You are signed in as **{user.username}**; sign out to register someone else."
        return ctx.auth.csrf_token(request.cookies.get(CSRF_COOKIE)), gr.Column(visible=user is None), note

    def register(username, full_name, email, mobile, age, address, picture, password, repeat, csrf,
                 request: gr.Request):
        if not ctx.settings.allow_signup:
            raise gr.Error("Registration is closed here; an administrator creates accounts.")
        if not ctx.auth.csrf_ok(request.cookies.get(CSRF_COOKIE), csrf):
            raise gr.Error("This form has expired or came from another site; reload the page and try again.")
        problem = registration_problem(username, full_name, email, mobile, age, address, password, repeat)
        if problem:
            raise gr.Error(problem, title="Please check the form")
        # every try counts, refused ones too: "is taken" must not answer an unlimited list of names
        ctx.check_rate(ctx.register_limit, request, "new accounts")
        try:
            user = ctx.service.store.create_user(username, password, "user", full_name=full_name, email=email,
                                                 mobile=mobile, age=None if age in (None, "") else int(age),
                                                 address=address)
        except AccountError as err:
            raise gr.Error(str(err), title="Please check the form") from None
        if file_path(picture):
            try:
                save_profile_picture(ctx, user.username, file_path(picture))
            except gr.Error:
                pass  # the account stands; the picture can be added under Profile
        return (f"Account **{user.username}** created. Open **Sign in** and use your user name or e-mail.",
                "", "")

    with gr.Tab("Register", id="register") as tab:
        if not ctx.settings.allow_signup:
            gr.Markdown("Registration is closed here; an administrator creates accounts.")
            return Page(tab, "visitor")
        gr.Markdown("### Create an account\nSigned-in users get Batch, History, Profile and can flag verdicts.")
        note = gr.Markdown()
        with gr.Column() as form:
            with gr.Row():
                username = gr.Textbox(label="User name (3-40: letters, digits, _ . -)", elem_id="reg-username")
                full_name = gr.Textbox(label="Full name", elem_id="reg-fullname")
                email = gr.Textbox(label="E-mail", elem_id="reg-email")
            with gr.Row():
                mobile = gr.Textbox(label="Mobile number", elem_id="reg-mobile")
                age = gr.Number(label="Age", precision=0, elem_id="reg-age")
                address = gr.Textbox(label="Address", elem_id="reg-address")
            picture = gr.File(label="Profile picture (optional)", file_types=IMAGE_TYPES, type="filepath",
                              elem_id="reg-picture")
            with gr.Row():
                password = gr.Textbox(label=f"Password (≥ {MIN_PASSWORD} characters, not common)", type="password",
                                      elem_id="reg-password")
                repeat = gr.Textbox(label="Repeat the password", type="password", elem_id="reg-repeat")
            create = gr.Button("Register", variant="primary", elem_id="reg-submit")
            result = gr.Markdown(elem_id="reg-result")
        csrf = gr.State("")
        create.click(register, [username, full_name, email, mobile, age, address, picture, password, repeat, csrf],
                     [result, password, repeat], api_visibility="private")
    return Page(tab, "visitor", [(registration_token, [csrf, form, note])])
