"""The review queue: saved reports (from ingestion, look-back and the Check page), newest or highest score
first, filtered by verdict and date, one page at a time; open one to see its evidence and decide."""

from __future__ import annotations

import gradio as gr

from app.audit import CLEAR, DUPLICATE, POSSIBLE_INFRINGEMENT
from app.dashboard.context import DashboardContext, page_label, parse_day, when
from app.dashboard.report_panel import ReportPanel

REPORT_HEADERS = ["report", "checked (UTC)", "query note", "verdict", "top score", "matches"]
FLAGGED = [DUPLICATE, POSSIBLE_INFRINGEMENT]


def report_rows(ctx: DashboardContext, verdicts: list[str], since: str | None, order: str, page: int) -> list[list]:
    """One page of the queue as table rows (one indexed query: list_reports)."""
    summaries = ctx.client.list_reports(verdict=verdicts or None, since=parse_day(since), order=order,
                                        offset=page * ctx.page_size, limit=ctx.page_size)
    return [[r.id, when(r.created_at), r.query_note_id or "", r.verdict,
             None if r.top_score is None else round(r.top_score, 3), r.match_count] for r in summaries]


def build(ctx: DashboardContext, demo: gr.Blocks) -> None:
    with gr.Row():
        verdicts = gr.CheckboxGroup([DUPLICATE, POSSIBLE_INFRINGEMENT, CLEAR], value=FLAGGED, label="Verdict",
                                    elem_id="queue-verdicts")
        since = gr.Textbox(label="Since (YYYY-MM-DD)", elem_id="queue-since")
        order = gr.Radio([("newest first", "newest"), ("highest score first", "score")], value="newest",
                         label="Order", elem_id="queue-order")
    with gr.Row():
        refresh = gr.Button("Refresh", elem_id="queue-refresh")
        prev_page = gr.Button("◀ Previous page")
        next_page = gr.Button("Next page ▶")
        where = gr.Markdown()
    page = gr.State(0)
    table = gr.Dataframe(headers=REPORT_HEADERS, interactive=False, elem_id="queue-table")
    with gr.Row():
        report_id = gr.Number(label="Report #", precision=0, elem_id="queue-report-id")
        open_report = gr.Button("Open report", elem_id="queue-open")
    panel = ReportPanel(ctx, "queue")

    def load(verdicts, since, order, page, request: gr.Request):
        ctx.user(request)
        page = max(int(page or 0), 0)
        rows = report_rows(ctx, verdicts, since, order, page)
        if not rows and page > 0:  # stepped past the last page: stay on it
            page -= 1
            rows = report_rows(ctx, verdicts, since, order, page)
        return rows, page, page_label(page, ctx.page_size, len(rows))

    def first_page(verdicts, since, order, request: gr.Request):
        return load(verdicts, since, order, 0, request)

    def step(delta):
        def go(verdicts, since, order, page, request: gr.Request):
            return load(verdicts, since, order, max(int(page or 0) + delta, 0), request)
        return go

    def open_(report_id, request: gr.Request):
        ctx.user(request)
        if report_id is None:
            raise gr.Error("Give a report number (the first column of the queue).")
        return panel.show(int(report_id))

    def open_row(rows, event: gr.SelectData, request: gr.Request):
        ctx.user(request)
        row = event.index[0] if isinstance(event.index, (list, tuple)) else event.index
        values = rows.values.tolist() if hasattr(rows, "values") else rows
        return [int(values[row][0])] + panel.show(int(values[row][0]))

    filters = [verdicts, since, order, page]
    for trigger in (refresh.click, verdicts.change, order.change, since.submit):
        trigger(first_page, filters[:3], [table, page, where])
    prev_page.click(step(-1), filters, [table, page, where])
    next_page.click(step(+1), filters, [table, page, where])
    open_report.click(open_, [report_id], panel.outputs)
    table.select(open_row, [table], [report_id] + panel.outputs)
    demo.load(first_page, filters[:3], [table, page, where])
