"""Profile: the user's details and picture, password change, and API tokens for gradio_client."""
from __future__ import annotations

from datetime import datetime

import gradio as gr

from webapp.actions import profile_picture_html, save_profile_picture
from webapp.context import IMAGE_TYPES, AppContext, clicked_row, file_path
from webapp.forms import contact_problems, error_lines, field_of, field_with_error, parse_age
from webapp.pages import Page
from webapp.store import MIN_PASSWORD, AccountError, password_problem

PROFILE_FIELDS = ("email", "mobile", "age", "picture")  # each has an error line
PASSWORD_FIELDS = ("current", "new", "repeat")


def _token_rows(ctx: AppContext, username: str) -> list[list]:
    def when(t):
        return datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M") if t else "never"

    return [[t["id"], t["label"], when(t["created_at"]), when(t["last_used"])]
            for t in ctx.service.store.list_api_tokens(username)]


class ProfileActions:
    """The page's handlers (each for the signed-in user only); `build` lays the page out and wires them."""

    def __init__(self, ctx: AppContext):
        self.ctx = ctx
        self.store = ctx.service.store

    def load_profile(self, request: gr.Request):
        user = self.ctx.user(request)
        if user is None:
            return ("", "", "", "", "", "", None, [])
        p = user.profile
        return (f"Signed in as **{user.username}** ({user.role})", p["full_name"], p["email"], p["mobile"],
                "" if p["age"] is None else str(p["age"]), p["address"], profile_picture_html(self.ctx, user.username),
                _token_rows(self.ctx, user.username))

    def save_profile(self, full_name, email, mobile, age, address, picture, request: gr.Request):
        """-> (message, picture, one error line per PROFILE_FIELDS): every problem at once, beside its
        field; nothing is saved while any field is wrong."""
        user = self.ctx.require_user(request)
        problems = contact_problems(mobile, age)
        if not problems:
            try:
                self.store.update_profile(user.username, full_name=full_name, email=email, mobile=mobile,
                                          age=parse_age(age), address=address)
            except AccountError as err:
                problems[field_of(str(err)) or "email"] = str(err)
        if not problems and file_path(picture):
            try:
                save_profile_picture(self.ctx, user.username, file_path(picture))
            except gr.Error as err:
                problems["picture"] = err.message
        message = "Please fix the fields marked ⚠." if problems else "Profile saved."
        return message, profile_picture_html(self.ctx, user.username), *error_lines(PROFILE_FIELDS, problems)

    def change_password(self, current, new, repeat, request: gr.Request):
        """-> (message, the three boxes, one error line per PASSWORD_FIELDS). Emptied only on success."""
        user = self.ctx.require_user(request)
        problems = {}
        if not self.store.authenticate(user.username, current or ""):
            problems["current"] = "The current password is wrong."
        if (weak := password_problem(new or "", user.username)) is not None:
            problems["new"] = weak
        elif new != repeat:
            problems["repeat"] = "The two new passwords differ."
        if not problems:
            try:
                self.store.set_password(user.username, new or "")  # ends every session: sign in again
            except AccountError as err:
                problems["new"] = str(err)
        if problems:
            return ("Please fix the fields marked ⚠.", gr.skip(), gr.skip(), gr.skip(),
                    *error_lines(PASSWORD_FIELDS, problems))
        return ("Password changed. Every session ended; sign in again with the new password.", "", "", "",
                *error_lines(PASSWORD_FIELDS, {}))

    def create_token(self, label, request: gr.Request):
        user = self.ctx.require_user(request)
        token = self.store.create_api_token(user.username, label or "")
        return (f"Your new API token (shown only now; copy it):\n\n`{token}`", _token_rows(self.ctx, user.username))

    def revoke_token(self, token_id, request: gr.Request):
        user = self.ctx.require_user(request)
        try:
            self.store.revoke_api_token(user.username, int(token_id or 0))
        except AccountError as err:
            raise gr.Error(str(err)) from None
        return f"Token #{int(token_id)} revoked.", _token_rows(self.ctx, user.username)

    def select_token(self, table, evt: gr.SelectData, request: gr.Request):
        """A click on a token's row: its Revoke button (no ids to type)."""
        self.ctx.require_user(request)
        row = clicked_row(table, evt)
        if row is None:
            return gr.skip(), gr.skip()
        token, label = int(row[0]), str(row[1])
        return token, gr.Button(f"Revoke “{label}” (#{token})" if label else f"Revoke token #{token}", visible=True)


def build(ctx: AppContext) -> Page:
    actions = ProfileActions(ctx)

    with gr.Tab("Profile", id="profile") as tab:
        who = gr.Markdown(elem_id="profile-who")
        with gr.Row(elem_classes="cifake-columns"):
            full_name = gr.Textbox(label="Full name", elem_id="profile-fullname")
            email, email_error = field_with_error(gr.Textbox(label="E-mail", elem_id="profile-email", render=False))
            mobile, mobile_error = field_with_error(gr.Textbox(label="Mobile (optional)", elem_id="profile-mobile",
                                                               render=False))
            age, age_error = field_with_error(gr.Textbox(label="Age (optional)", elem_id="profile-age", render=False))
        address = gr.Textbox(label="Address", lines=2)
        with gr.Row(elem_classes="cifake-columns"):
            picture_show = gr.HTML(label="Picture", elem_id="profile-picture")
            picture, picture_error = field_with_error(gr.File(label="New picture", file_types=IMAGE_TYPES,
                                                              type="filepath", elem_id="profile-new-picture",
                                                              render=False))
        save = gr.Button("Save profile", elem_id="profile-save")
        message = gr.Markdown(elem_id="profile-msg")
        with gr.Accordion("Change password", open=False):
            current_pw, current_error = field_with_error(gr.Textbox(label="Current password", type="password",
                                                                    elem_id="pw-current", render=False))
            new_pw, new_error = field_with_error(gr.Textbox(label=f"New password (≥ {MIN_PASSWORD} characters)",
                                                            type="password", elem_id="pw-new", render=False))
            repeat_pw, repeat_error = field_with_error(gr.Textbox(label="Repeat the new password", type="password",
                                                                  elem_id="pw-repeat", render=False))
            pw_button = gr.Button("Change password", elem_id="pw-change")
            pw_message = gr.Markdown(elem_id="pw-msg")
        with gr.Accordion("API tokens (for gradio_client)", open=False):
            gr.Markdown("`Client(url, headers={'Authorization': 'Bearer <token>'})` calls the API as you. "
                        "Revoke a token you no longer use.")
            with gr.Row():
                token_label = gr.Textbox(label="What the token is for", scale=3)
                token_create = gr.Button("Create token", scale=1)
            token_shown = gr.Markdown(elem_id="token-shown")
            gr.Markdown("Click a token's row to revoke it.", elem_classes="cifake-hint")
            tokens = gr.Dataframe(headers=["id", "label", "created", "last used"], interactive=False,
                                  elem_id="tokens-table")
            token_id = gr.Number(visible=False, precision=0)
            token_revoke = gr.Button("Revoke token", variant="stop", visible=False, elem_id="token-revoke")
        gr.HTML('<form method="post" action="/logout"><button type="submit" id="signout">Sign out</button></form>')
        save.click(actions.save_profile, [full_name, email, mobile, age, address, picture],
                   [message, picture_show, email_error, mobile_error, age_error, picture_error],
                   api_visibility="private")
        pw_button.click(actions.change_password, [current_pw, new_pw, repeat_pw],
                        [pw_message, current_pw, new_pw, repeat_pw, current_error, new_error, repeat_error],
                        api_visibility="private")
        token_create.click(actions.create_token, token_label, [token_shown, tokens], api_visibility="private")
        tokens.select(actions.select_token, tokens, [token_id, token_revoke], api_visibility="private")
        token_revoke.click(actions.revoke_token, token_id, [token_shown, tokens], api_visibility="private").then(
            lambda: gr.Button(visible=False), None, token_revoke, api_visibility="private")
    return Page(tab, "member", [(actions.load_profile, [who, full_name, email, mobile, age, address, picture_show,
                                                        tokens])])
