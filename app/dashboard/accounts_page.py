"""Accounts (admins only, on the /admin pages): list accounts, add one, change a role, enable or disable,
set a password. Every change goes through app.moderation (admin check + audit-log entry)."""

from __future__ import annotations

import gradio as gr

from app.dashboard.context import DashboardContext, page_label, when
from app.moderation import PermissionDeniedError, change_active, change_password, change_role, create_user
from app.records import users
from app.records.errors import RecordNotFoundError
from app.records.users import ROLES

HEADERS = ["username", "role", "active", "created (UTC)", "last sign-in (UTC)"]


def account_rows(ctx: DashboardContext, page: int) -> list[list]:
    with ctx.client.library.sessions() as s:
        accounts = users.list_users(s, offset=page * ctx.page_size, limit=ctx.page_size)
    return [[u.username, u.role.value, "yes" if u.active else "no", when(u.created_at), when(u.last_login_at)]
            for u in accounts]


def build(ctx: DashboardContext, demo: gr.Blocks) -> None:
    with gr.Row():
        prev_page = gr.Button("◀ Previous page")
        next_page = gr.Button("Next page ▶")
        where = gr.Markdown()
    page = gr.State(0)
    table = gr.Dataframe(headers=HEADERS, interactive=False, elem_id="accounts-table")
    gr.Markdown("#### Add an account")
    with gr.Row():
        new_name = gr.Textbox(label="Username", elem_id="accounts-new-username")
        new_password = gr.Textbox(label="Password (8+ characters)", type="password", elem_id="accounts-new-password")
        new_role = gr.Radio(list(ROLES), value="moderator", label="Role", elem_id="accounts-new-role")
    add = gr.Button("Add account", variant="primary", elem_id="accounts-add")
    gr.Markdown("#### Change an account")
    with gr.Row():
        name = gr.Textbox(label="Username", elem_id="accounts-username")
        role = gr.Radio(list(ROLES), label="Role", elem_id="accounts-role")
        password = gr.Textbox(label="New password", type="password", elem_id="accounts-password")
    with gr.Row():
        set_role_ = gr.Button("Set role")
        disable = gr.Button("Disable")
        enable = gr.Button("Enable")
        set_password_ = gr.Button("Set password")
    status = gr.Markdown(elem_id="accounts-status")

    def load(page, request: gr.Request):
        ctx.user(request)
        page = max(int(page or 0), 0)
        rows = account_rows(ctx, page)
        if not rows and page > 0:
            page -= 1
            rows = account_rows(ctx, page)
        return rows, page, page_label(page, ctx.page_size, len(rows))

    def done(page, request, message):
        return (*load(page, request), message)

    def guarded(fn, *args):
        try:
            return fn(ctx.client.library.sessions, *args)
        except (PermissionDeniedError, ValueError, RecordNotFoundError) as e:
            raise gr.Error(str(e)) from None

    def add_(page, username, password, role, request: gr.Request):
        u = guarded(create_user, ctx.user(request).username, username, password, role)
        return done(page, request, f"Added {u.username} ({u.role.value}).")

    def role_(page, username, role, request: gr.Request):
        if not role:
            raise gr.Error("Choose a role.")
        u = guarded(change_role, ctx.user(request).username, username, role)
        return done(page, request, f"{u.username} is now {u.role.value}.")

    def disable_(page, username, request: gr.Request):
        u = guarded(change_active, ctx.user(request).username, username, False)
        return done(page, request, f"{u.username} is disabled.")

    def enable_(page, username, request: gr.Request):
        u = guarded(change_active, ctx.user(request).username, username, True)
        return done(page, request, f"{u.username} is enabled.")

    def password_(page, username, password, request: gr.Request):
        u = guarded(change_password, ctx.user(request).username, username, password)
        return done(page, request, f"Password of {u.username} replaced.")

    def prev(page, request: gr.Request):
        return load(int(page or 0) - 1, request)

    def next_(page, request: gr.Request):
        return load(int(page or 0) + 1, request)

    outputs = [table, page, where, status]
    add.click(add_, [page, new_name, new_password, new_role], outputs)
    set_role_.click(role_, [page, name, role], outputs)
    disable.click(disable_, [page, name], outputs)
    enable.click(enable_, [page, name], outputs)
    set_password_.click(password_, [page, name, password], outputs)
    prev_page.click(prev, [page], [table, page, where])
    next_page.click(next_, [page], [table, page, where])
    demo.load(load, [page], [table, page, where])
