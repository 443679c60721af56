"""Profile: the user's details and picture, password change, and API tokens for gradio_client."""
from __future__ import annotations

from datetime import datetime
from urllib.parse import quote

import gradio as gr
from PIL import Image

from inference.preprocess import load_image
from webapp.context import IMAGE_TYPES, AppContext, clicked_row, file_path
from webapp.pages import Page
from webapp.store import MIN_PASSWORD, AccountError


def save_profile_picture(ctx: AppContext, username: str, path: str) -> str:
    """Decode an uploaded picture (same guards as predictions), keep a 256 px PNG; returns its data path."""
    try:
        image, _ = load_image(path)
    except ValueError as err:
        raise gr.Error(f"Profile picture: {err}") from None
    image.thumbnail((256, 256))
    target = ctx.service.folder / "profiles" / f"{username}.png"
    target.parent.mkdir(exist_ok=True)
    image.save(target)
    ctx.service.store.update_profile(username, picture=str(target.relative_to(ctx.service.folder)))
    return str(target)


def profile_picture(ctx: AppContext, username: str) -> Image.Image | None:
    """The stored picture of `username` (callers check that the asker may see it)."""
    user = ctx.service.store.get_user(username)
    picture = user.profile.get("picture") if user else ""
    path = ctx.service.folder / picture if picture else None  # older rows hold absolute paths; "/" keeps them
    if path is None or not path.is_file() or ctx.service.folder not in path.resolve().parents:
        return None
    with Image.open(path) as image:
        return image.convert("RGB")


def profile_picture_html(ctx: AppContext, username: str) -> str:
    """The picture from /media/profile/<name>, which checks the asker (never an open Gradio file URL)."""
    user = ctx.service.store.get_user(username)
    picture = user.profile.get("picture") if user else ""
    path = ctx.service.folder / picture if picture else None
    if path is None or not path.is_file():
        return "<p>No picture yet.</p>"
    version = path.stat().st_mtime_ns  # a new picture gets a new address, so the page shows it
    return (f'<img src="/media/profile/{quote(username)}?v={version}" alt="Your profile picture" '
            'style="height:160px">')


def _token_rows(ctx: AppContext, username: str) -> list[list]:
    def when(t):
        return datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M") if t else "never"

    return [[t["id"], t["label"], when(t["created_at"]), when(t["last_used"])]
            for t in ctx.service.store.list_api_tokens(username)]


def build(ctx: AppContext) -> Page:
    store = ctx.service.store

    def load_profile(request: gr.Request):
        user = ctx.user(request)
        if user is None:
            return ("", "", "", "", None, "", None, [])
        p = user.profile
        return (f"Signed in as **{user.username}** ({user.role})", p["full_name"], p["email"], p["mobile"],
                p["age"], p["address"], profile_picture_html(ctx, user.username), _token_rows(ctx, user.username))

    def save_profile(full_name, email, mobile, age, address, picture, request: gr.Request):
        user = ctx.require_user(request)
        try:
            store.update_profile(user.username, full_name=full_name, email=email, mobile=mobile,
                                 age=age if age not in (None, "") else None, address=address)
        except AccountError as err:
            raise gr.Error(str(err)) from None
        if file_path(picture):
            save_profile_picture(ctx, user.username, file_path(picture))
        return "Profile saved.", profile_picture_html(ctx, user.username)

    def change_password(current, new, repeat, request: gr.Request):
        user = ctx.require_user(request)
        if new != repeat:
            raise gr.Error("The new passwords differ.")
        if not store.authenticate(user.username, current or ""):
            raise gr.Error("The current password is wrong.")
        try:
            store.set_password(user.username, new or "")  # ends every session: sign in again
        except AccountError as err:
            raise gr.Error(str(err)) from None
        return "Password changed. Every session ended; sign in again with the new password.", "", "", ""

    def create_token(label, request: gr.Request):
        user = ctx.require_user(request)
        token = store.create_api_token(user.username, label or "")
        return (f"Your new API token (shown only now; copy it):\n\n`{token}`", _token_rows(ctx, user.username))

    def revoke_token(token_id, request: gr.Request):
        user = ctx.require_user(request)
        try:
            store.revoke_api_token(user.username, int(token_id or 0))
        except AccountError as err:
            raise gr.Error(str(err)) from None
        return f"Token #{int(token_id)} revoked.", _token_rows(ctx, user.username)

    def select_token(table, evt: gr.SelectData, request: gr.Request):
        """A click on a token's row: its Revoke button (no ids to type)."""
        ctx.require_user(request)
        row = clicked_row(table, evt)
        if row is None:
            return gr.skip(), gr.skip()
        token, label = int(row[0]), str(row[1])
        return token, gr.Button(f"Revoke “{label}” (#{token})" if label else f"Revoke token #{token}", visible=True)

    with gr.Tab("Profile", id="profile") as tab:
        who = gr.Markdown(elem_id="profile-who")
        with gr.Row():
            full_name = gr.Textbox(label="Full name")
            email = gr.Textbox(label="E-mail")
            mobile = gr.Textbox(label="Mobile")
            age = gr.Number(label="Age", precision=0)
        address = gr.Textbox(label="Address", lines=2)
        with gr.Row():
            picture_show = gr.HTML(label="Picture", elem_id="profile-picture")
            picture = gr.File(label="New picture", file_types=IMAGE_TYPES, type="filepath")
        save = gr.Button("Save profile")
        message = gr.Markdown(elem_id="profile-msg")
        with gr.Accordion("Change password", open=False):
            current_pw = gr.Textbox(label="Current password", type="password")
            new_pw = gr.Textbox(label=f"New password (≥ {MIN_PASSWORD} characters)", type="password")
            repeat_pw = gr.Textbox(label="Repeat the new password", type="password")
            pw_button = gr.Button("Change password")
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
        save.click(save_profile, [full_name, email, mobile, age, address, picture], [message, picture_show],
                   api_visibility="private")
        pw_button.click(change_password, [current_pw, new_pw, repeat_pw], [message, current_pw, new_pw, repeat_pw],
                        api_visibility="private")
        token_create.click(create_token, token_label, [token_shown, tokens], api_visibility="private")
        tokens.select(select_token, tokens, [token_id, token_revoke], api_visibility="private")
        token_revoke.click(revoke_token, token_id, [token_shown, tokens], api_visibility="private").then(
            lambda: gr.Button(visible=False), None, token_revoke, api_visibility="private")
    return Page(tab, "member", [(load_profile, [who, full_name, email, mobile, age, address, picture_show,
                                                tokens])])
