"""Admin · Users: accounts (create, disable, enable, reset password, delete) and contact messages.

The table shows the whole profile; clicking a row selects that user (name box and picture). Names match in
any case, as at registration. Delete and Disable ask first in the browser (an API call is its own
confirmation); a refused action says why under the buttons and leaves the table as it was."""
from __future__ import annotations

import html
from datetime import datetime

import gradio as gr

from webapp.context import AppContext, clicked_row
from webapp.pages import Page, admin_loader
from webapp.store import MIN_PASSWORD, AccountError

USER_HEADERS = ["user", "role", "status", "full name", "e-mail", "mobile", "age", "address", "picture"]
CONFIRM = """(username) => (username && confirm("{verb} the account " + username + "?{detail}")) ? username : null"""
MESSAGE_HEADERS = ["id", "time", "name", "e-mail", "signed in as", "message"]


class UsersActions:
    """The page's handlers (each checks that an admin calls); `build` lays the page out and wires them."""

    def __init__(self, ctx: AppContext):
        self.ctx = ctx
        self.store = ctx.service.store

    def admin_users(self, request: gr.Request):
        self.ctx.require_admin(request)
        return [[u["username"], u["role"], "disabled" if u["disabled"] else "active", u["full_name"], u["email"],
                 u["mobile"] or "", u["age"] if u["age"] is not None else "", u["address"] or "",
                 "yes" if u["picture"] else "—"] for u in self.store.list_users()]

    def account_action(self, username, action, message: str, request: gr.Request, refuse_own: str = ""):
        """Run `action(stored name)` -> (message, table). The name matches in any case; a declined browser
        confirmation (None) does nothing; a refusal keeps the table (gr.skip) and says why. `refuse_own`:
        the verb an admin may not apply to their own account."""
        admin = self.ctx.require_admin(request)
        if username is None:
            return gr.skip(), gr.skip()
        name = self.store.find_username(username) or username.strip()
        if refuse_own and name == admin.username:
            return f"⚠ You cannot {refuse_own} your own account.", gr.skip()
        try:
            action(name)
        except AccountError as err:
            return f"⚠ {err}", gr.skip()
        return message.format(name=name), self.admin_users(request)

    def admin_create_user(self, username, password, role, request: gr.Request):
        return self.account_action(username or "", lambda n: self.store.create_user(n, password or "", role),
                                   f"Created {{name}} ({role}).", request)

    def admin_disable_user(self, username, request: gr.Request):
        """Disable an account: its sessions and API tokens stop working at once."""
        return self.account_action(username, lambda n: self.store.set_disabled(n, True), "{name} disabled.", request,
                                   refuse_own="disable")

    def admin_enable_user(self, username, request: gr.Request):
        return self.account_action(username or "", lambda n: self.store.set_disabled(n, False), "{name} enabled.", request)

    def admin_reset_password(self, username, password, request: gr.Request):
        return self.account_action(username or "", lambda n: self.store.set_password(n, password or ""),
                                   "Password of {name} reset; their sessions ended.", request)

    def admin_delete_user(self, username, request: gr.Request):
        return self.account_action(username, self.store.delete_user, "{name} deleted.", request, refuse_own="delete")

    def select_user(self, table, evt: gr.SelectData, request: gr.Request):
        """A click on a row: that user's name in the box, their picture beside it."""
        self.ctx.require_admin(request)
        row = clicked_row(table, evt)
        if row is None:
            return gr.skip(), gr.skip()
        name = str(row[0])
        picture = (f'<img src="/media/profile/{html.escape(name)}" alt="{html.escape(name)}" class="admin-picture">'
                   if row[-1] == "yes" else "")
        return name, f"<p>Selected: <b>{html.escape(name)}</b></p>{picture}"

    def admin_messages(self, request: gr.Request):
        self.ctx.require_admin(request)
        return [[m["id"], datetime.fromtimestamp(m["created_at"]).strftime("%Y-%m-%d %H:%M"), m["name"], m["email"],
                 m["username"] or "", m["body"]] for m in self.store.list_messages()]

    def open_page(self, request: gr.Request):
        return self.admin_users(request), self.admin_messages(request)


def build(ctx: AppContext) -> Page:
    actions = UsersActions(ctx)

    with gr.Tab("Admin · Users", id="admin-users") as tab:
        users = gr.Dataframe(headers=USER_HEADERS, interactive=False, elem_id="users-table")
        with gr.Row():
            username = gr.Textbox(label="User name (or click a row)", elem_id="admin-username")
            password = gr.Textbox(label=f"Password (≥ {MIN_PASSWORD} characters)", type="password")
            role = gr.Radio(["user", "admin"], value="user", label="Role")
        with gr.Row():
            create = gr.Button("Create user", variant="primary")
            disable = gr.Button("Disable user", elem_id="admin-disable")
            enable = gr.Button("Enable user")
            reset = gr.Button("Reset password to the one above")
            delete = gr.Button("Delete user", variant="stop")
        message = gr.Markdown(elem_id="users-msg")
        selected = gr.HTML(elem_id="users-selected")
        gr.Markdown("### Messages from the Contact page")
        messages = gr.Dataframe(headers=MESSAGE_HEADERS, interactive=False, wrap=True, elem_id="messages-table")
        refresh = gr.Button("Refresh", size="sm")
        refresh.click(actions.admin_users, None, users, api_name="admin_users")
        refresh.click(actions.admin_messages, None, messages, api_name="admin_messages")
        create.click(actions.admin_create_user, [username, password, role], [message, users], api_name="admin_create_user")
        users.select(actions.select_user, users, [username, selected], api_visibility="private")
        disable.click(actions.admin_disable_user, username, [message, users], api_name="admin_disable_user",
                      js=CONFIRM.format(verb="Disable", detail=" Their sessions and API tokens stop at once."))
        enable.click(actions.admin_enable_user, username, [message, users], api_name="admin_enable_user")
        reset.click(actions.admin_reset_password, [username, password], [message, users], api_name="admin_reset_password")
        delete.click(actions.admin_delete_user, username, [message, users], api_name="admin_delete_user",
                     js=CONFIRM.format(verb="Delete", detail=" Their history and pictures go too; this cannot be undone."))
    return Page(tab, "admin", [(admin_loader(ctx, actions.open_page, 2), [users, messages])])
