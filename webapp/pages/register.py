"""Register: the original project's profile fields, each checked with a clear message.

Open unless CIFAKE_ALLOW_SIGNUP=0. Protected against cross-site use (a token bound to the browser's
CSRF cookie, plus the Origin check in webapp.server) and limited per address.
"""
from __future__ import annotations

import gradio as gr

from webapp.actions import save_profile_picture
from webapp.auth import CSRF_COOKIE
from webapp.context import IMAGE_TYPES, AppContext, file_path
from webapp.forms import contact_problems, error_lines, field_of, field_with_error, parse_age
from webapp.pages import Page
from webapp.store import PASSWORD_RULE, AccountError, password_problem

FIELDS = ("username", "full_name", "email", "mobile", "age", "password", "repeat")  # each has an error line
SIGN_IN_AFTER_REGISTERING = """async (result, username, password) => {
  if (!result || !result.includes("created")) return;
  const body = new URLSearchParams({username: username, password: password});
  const answer = await fetch("/login", {method: "POST", body: body, credentials: "same-origin",
                                        headers: {"Accept": "application/json"}});
  if (answer.ok) window.location.assign("/");
}"""


def registration_problems(username, full_name, email, mobile, age, address, password, repeat) -> dict[str, str]:
    """Every problem with a registration form, by field (FIELDS), as sentences; empty when it is complete.
    The store checks the rest (names taken, e-mail format) when the account is created."""
    problems = {}
    if not (username or "").strip():
        problems["username"] = "Choose a user name."
    if not (full_name or "").strip():
        problems["full_name"] = "Enter your full name."
    if not (email or "").strip():
        problems["email"] = "Enter your e-mail address (you can sign in with it)."
    problems.update(contact_problems(mobile, age))
    if not password:
        problems["password"] = "Choose a password."
    elif (weak := password_problem(password, username or "")) is not None:
        problems["password"] = weak
    if password and password != repeat:
        problems["repeat"] = "The two passwords differ."
    return problems


class RegisterActions:
    """The page's handlers (visitors only); `build` lays the page out and wires them."""

    def __init__(self, ctx: AppContext):
        self.ctx = ctx

    def registration_token(self, request: gr.Request):
        """On open: the form token bound to the browser's CSRF cookie; the form only for visitors."""
        user = self.ctx.user(request)
        note = "" if user is None else f"You are signed in as **{user.username}**; sign out to register someone else."
        return self.ctx.auth.csrf_token(request.cookies.get(CSRF_COOKIE)), gr.Column(visible=user is None), note

    def register(self, username, full_name, email, mobile, age, address, picture, password, repeat, csrf,
                 request: gr.Request):
        """-> (result, one error line per field in FIELDS): every problem at once, each beside its field."""
        def answer(result: str = "", problems: dict | None = None):
            return (result, *error_lines(FIELDS, problems or {}))

        if not self.ctx.settings.allow_signup:
            return answer("Registration is closed here; an administrator creates accounts.")
        if not self.ctx.auth.csrf_ok(request.cookies.get(CSRF_COOKIE), csrf):
            return answer("This form has expired or came from another site; reload the page and try again.")
        problems = registration_problems(username, full_name, email, mobile, age, address, password, repeat)
        if problems:
            return answer("Please fix the fields marked ⚠.", problems)
        # every try counts, refused ones too: "is taken" must not answer an unlimited list of names
        try:
            self.ctx.check_rate(self.ctx.register_limit, request, "new accounts")
        except gr.Error as err:
            return answer(f"⚠ {err.message}")
        try:
            user = self.ctx.service.store.create_user(username, password, "user", full_name=full_name, email=email,
                                                      mobile=mobile, age=parse_age(age), address=address)
        except AccountError as err:
            field = field_of(str(err))
            return answer(f"⚠ {err}" if not field else "Please fix the fields marked ⚠.",
                          {field: str(err)} if field else None)
        if file_path(picture):
            try:
                save_profile_picture(self.ctx, user.username, file_path(picture))
            except gr.Error:
                pass  # the account stands; the picture can be added under Profile
        return answer(f"Account **{user.username}** created — signing you in…")


def build(ctx: AppContext) -> Page:
    actions = RegisterActions(ctx)

    with gr.Tab("Register", id="register") as tab:
        if not ctx.settings.allow_signup:
            gr.Markdown("Registration is closed here; an administrator creates accounts.")
            return Page(tab, "visitor")
        gr.Markdown("### Create an account\nSigned-in users get Batch, History, Profile and can flag verdicts.")
        note = gr.Markdown()
        with gr.Column() as form:
            field = field_with_error
            with gr.Row(elem_classes="cifake-columns"):
                username, username_error = field(gr.Textbox(label="User name (3-40: letters, digits, _ . -)",
                                                            elem_id="reg-username", render=False))
                full_name, full_name_error = field(gr.Textbox(label="Full name", elem_id="reg-fullname",
                                                              render=False))
                email, email_error = field(gr.Textbox(label="E-mail", elem_id="reg-email", render=False))
            with gr.Row(elem_classes="cifake-columns"):
                mobile, mobile_error = field(gr.Textbox(label="Mobile number (optional)", elem_id="reg-mobile",
                                                        render=False))
                age, age_error = field(gr.Textbox(label="Age (optional)", elem_id="reg-age", render=False))
                with gr.Column(min_width=220):
                    address = gr.Textbox(label="Address (optional)", elem_id="reg-address")
            picture = gr.File(label="Profile picture (optional)", file_types=IMAGE_TYPES, type="filepath",
                              elem_id="reg-picture", height=100)
            with gr.Row(elem_classes="cifake-columns"):
                password, password_error = field(gr.Textbox(label=f"Password — {PASSWORD_RULE}", type="password",
                                                            elem_id="reg-password", render=False))
                repeat, repeat_error = field(gr.Textbox(label="Repeat the password", type="password",
                                                        elem_id="reg-repeat", render=False))
            create = gr.Button("Register", variant="primary", elem_id="reg-submit")
            result = gr.Markdown(elem_id="reg-result")
        csrf = gr.State("")
        errors = [username_error, full_name_error, email_error, mobile_error, age_error, password_error, repeat_error]
        create.click(actions.register, [username, full_name, email, mobile, age, address, picture, password, repeat, csrf],
                     [result, *errors], api_visibility="private").then(
            None, [result, username, password], None, js=SIGN_IN_AFTER_REGISTERING)
    return Page(tab, "visitor", [(actions.registration_token, [csrf, form, note])])
