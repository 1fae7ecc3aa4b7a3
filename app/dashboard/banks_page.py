"""The Banks page: every bank (kind, action label, thresholds, enabled, entries, hits) and, for one bank, a
page of its entries with their hit counts and its webhook delivery log. Read-only; banks are changed over
the API or `uninote bank` (app.banks.Banks, the functions both call)."""

from __future__ import annotations

import gradio as gr

from app.dashboard.context import DashboardContext, page_label, when

BANK_HEADERS = ["bank", "kind", "action", "enabled", "duplicate ≥", "infringement ≥", "entries", "hits", "webhook"]
ENTRY_HEADERS = ["entry", "origin", "note", "PDQ hash", "added by", "added (UTC)", "hits", "last hit (UTC)"]
DELIVERY_HEADERS = ["delivery", "event", "status", "attempts", "last status", "last error", "created (UTC)"]


def bank_rows(ctx: DashboardContext) -> list[list]:
    return [[b.name, b.kind.value, b.action, "yes" if b.enabled else "no",
             "" if b.duplicate_threshold is None else b.duplicate_threshold,
             "" if b.infringement_threshold is None else b.infringement_threshold, b.entries, b.hits,
             "yes" if b.webhook_url else ""] for b in ctx.client.banks.list()]


def entry_rows(ctx: DashboardContext, bank: str, page: int) -> list[list]:
    entries = ctx.client.banks.entries(bank, offset=page * ctx.page_size, limit=ctx.page_size)
    return [[e.id, e.origin.value, e.note_id or "", e.pdq_hex or "", e.added_by, when(e.added_at), e.hit_count,
             when(e.last_hit_at)] for e in entries]


def delivery_rows(ctx: DashboardContext, bank: str) -> list[list]:
    return [[d.id, d.event, d.status.value, d.attempts, d.last_status_code or "", d.last_error or "",
             when(d.created_at)] for d in ctx.client.banks.deliveries(bank, limit=ctx.page_size)]


def build(ctx: DashboardContext, demo: gr.Blocks) -> None:
    banks = gr.Dataframe(headers=BANK_HEADERS, interactive=False, elem_id="banks-table")
    with gr.Row():
        name = gr.Textbox(label="Bank", elem_id="banks-name")
        show = gr.Button("Show entries", elem_id="banks-show")
        prev_page = gr.Button("◀ Previous page")
        next_page = gr.Button("Next page ▶")
        where = gr.Markdown()
    page = gr.State(0)
    entries = gr.Dataframe(headers=ENTRY_HEADERS, interactive=False, label="Entries", elem_id="banks-entries")
    deliveries = gr.Dataframe(headers=DELIVERY_HEADERS, interactive=False, wrap=True, label="Webhook deliveries",
                              elem_id="banks-deliveries")

    def list_(request: gr.Request):
        ctx.user(request)
        return bank_rows(ctx)

    def load(bank, page, request: gr.Request):
        ctx.user(request)
        bank = (bank or "").strip()
        if not bank:
            raise gr.Error("Give a bank name (click a row of the table).")
        try:
            ctx.client.banks.get(bank)
        except LookupError:
            raise gr.Error(f"no bank {bank!r}") from None
        page = max(int(page or 0), 0)
        rows = entry_rows(ctx, bank, page)
        if not rows and page > 0:
            page -= 1
            rows = entry_rows(ctx, bank, page)
        return rows, delivery_rows(ctx, bank), page, page_label(page, ctx.page_size, len(rows))

    def open_row(rows, event: gr.SelectData, request: gr.Request):
        row = event.index[0] if isinstance(event.index, (list, tuple)) else event.index
        values = rows.values.tolist() if hasattr(rows, "values") else rows
        bank = str(values[row][0])
        return [bank, *load(bank, 0, request)]

    def first(bank, request: gr.Request):
        return load(bank, 0, request)

    def prev(bank, page, request: gr.Request):
        return load(bank, int(page or 0) - 1, request)

    def next_(bank, page, request: gr.Request):
        return load(bank, int(page or 0) + 1, request)

    outputs = [entries, deliveries, page, where]
    show.click(first, [name], outputs)
    name.submit(first, [name], outputs)
    prev_page.click(prev, [name, page], outputs)
    next_page.click(next_, [name, page], outputs)
    banks.select(open_row, [banks], [name, *outputs])
    demo.load(list_, None, [banks])
