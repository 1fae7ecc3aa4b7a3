"""The audit log: who decided, changed thresholds or accounts, and signed in, and when; newest first, one
page at a time, filterable by action and actor (read-only: the log is append-only)."""

from __future__ import annotations

import json

import gradio as gr

from app.dashboard.context import DashboardContext, page_label, when
from app.records.audit_log import ACTIONS

HEADERS = ["#", "when (UTC)", "who", "action", "target", "details"]


def entry_rows(ctx: DashboardContext, action: str | None, actor: str | None, page: int) -> list[list]:
    entries = ctx.client.audit_log(action=action or None, actor=(actor or "").strip() or None,
                                   offset=page * ctx.page_size, limit=ctx.page_size)
    return [[e.id, when(e.created_at), e.actor, e.action.value, e.target or "",
             json.dumps(e.details, ensure_ascii=False, sort_keys=True) if e.details else ""] for e in entries]


def build(ctx: DashboardContext, demo: gr.Blocks) -> None:
    with gr.Row():
        action = gr.Dropdown(["", *ACTIONS], value="", label="Action", elem_id="audit-action")
        actor = gr.Textbox(label="Who", elem_id="audit-actor")
        refresh = gr.Button("Refresh", elem_id="audit-refresh")
        prev_page = gr.Button("◀ Previous page")
        next_page = gr.Button("Next page ▶")
    where = gr.Markdown()
    page = gr.State(0)
    table = gr.Dataframe(headers=HEADERS, interactive=False, wrap=True, elem_id="audit-table")

    def load(action, actor, page, request: gr.Request):
        ctx.user(request)
        page = max(int(page or 0), 0)
        rows = entry_rows(ctx, action, actor, page)
        if not rows and page > 0:
            page -= 1
            rows = entry_rows(ctx, action, actor, page)
        return rows, page, page_label(page, ctx.page_size, len(rows))

    def first(action, actor, request: gr.Request):
        return load(action, actor, 0, request)

    def prev(action, actor, page, request: gr.Request):
        return load(action, actor, int(page or 0) - 1, request)

    def next_(action, actor, page, request: gr.Request):
        return load(action, actor, int(page or 0) + 1, request)

    outputs = [table, page, where]
    for trigger in (refresh.click, action.change, actor.submit):
        trigger(first, [action, actor], outputs)
    prev_page.click(prev, [action, actor, page], outputs)
    next_page.click(next_, [action, actor, page], outputs)
    demo.load(first, [action, actor], outputs)
