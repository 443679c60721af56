"""Admin · Users: accounts (create, disable, enable, reset password, delete) and contact messages."""
from __future__ import annotations

from datetime import datetime

import gradio as gr

from webapp.context import AppContext
from webapp.pages import Page, admin_loader
from webapp.store import MIN_PASSWORD, AccountError

USER_HEADERS = ["user", "role", "status", "full name", "e-mail"]
MESSAGE_HEADERS = ["id", "time", "name", "e-mail", "signed in as", "message"]


def build(ctx: AppContext) -> Page:
    store = ctx.service.store

    def admin_users(request: gr.Request):
        ctx.require_admin(request)
        return [[u["username"], u["role"], "disabled" if u["disabled"] else "active", u["full_name"], u["email"]]
                for u in store.list_users()]

    def account_action(action, message: str, request: gr.Request):
        ctx.require_admin(request)
        try:
            action()
        except AccountError as err:
            raise gr.Error(str(err)) from None
        return message, admin_users(request)

    def admin_create_user(username, password, role, request: gr.Request):
        return account_action(lambda: store.create_user(username or "", password or "", role),
                              f"Created {username} ({role}).", request)

    def admin_disable_user(username, request: gr.Request):
        """Disable an account: its sessions and API tokens stop working at once."""
        admin = ctx.require_admin(request)
        if (username or "").strip() == admin.username:
            raise gr.Error("You cannot disable your own account.")
        return account_action(lambda: store.set_disabled(username or "", True), f"{username} disabled.", request)

    def admin_enable_user(username, request: gr.Request):
        return account_action(lambda: store.set_disabled(username or "", False), f"{username} enabled.", request)

    def admin_reset_password(username, password, request: gr.Request):
        return account_action(lambda: store.set_password(username or "", password or ""),
                              f"Password of {username} reset; their sessions ended.", request)

    def admin_delete_user(username, request: gr.Request):
        admin = ctx.require_admin(request)
        if (username or "").strip() == admin.username:
            raise gr.Error("You cannot delete your own account.")
        return account_action(lambda: store.delete_user(username or ""), f"{username} deleted.", request)

    def admin_messages(request: gr.Request):
        ctx.require_admin(request)
        return [[m["id"], datetime.fromtimestamp(m["created_at"]).strftime("%Y-%m-%d %H:%M"), m["name"], m["email"],
                 m["username"] or "", m["body"]] for m in store.list_messages()]

    def open_page(request: gr.Request):
        return admin_users(request), admin_messages(request)

    with gr.Tab("Admin · Users", id="admin-users") as tab:
        users = gr.Dataframe(headers=USER_HEADERS, interactive=False, elem_id="users-table")
        with gr.Row():
            username = gr.Textbox(label="User name", elem_id="admin-username")
            password = gr.Textbox(label=f"Password (≥ {MIN_PASSWORD} characters)", type="password")
            role = gr.Radio(["user", "admin"], value="user", label="Role")
        with gr.Row():
            create = gr.Button("Create user", variant="primary")
            disable = gr.Button("Disable user", elem_id="admin-disable")
            enable = gr.Button("Enable user")
            reset = gr.Button("Reset password to the one above")
            delete = gr.Button("Delete user", variant="stop")
        message = gr.Markdown(elem_id="users-msg")
        gr.Markdown("### Messages from the Contact page")
        messages = gr.Dataframe(headers=MESSAGE_HEADERS, interactive=False, wrap=True, elem_id="messages-table")
        refresh = gr.Button("Refresh", size="sm")
        refresh.click(admin_users, None, users, api_name="admin_users")
        refresh.click(admin_messages, None, messages, api_name="admin_messages")
        create.click(admin_create_user, [username, password, role], [message, users], api_name="admin_create_user")
        disable.click(admin_disable_user, username, [message, users], api_name="admin_disable_user")
        enable.click(admin_enable_user, username, [message, users], api_name="admin_enable_user")
        reset.click(admin_reset_password, [username, password], [message, users], api_name="admin_reset_password")
        delete.click(admin_delete_user, username, [message, users], api_name="admin_delete_user")
    return Page(tab, "admin", [(admin_loader(ctx, open_page, 2), [users, messages])])
