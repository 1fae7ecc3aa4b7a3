"""Backfills: the recent backfill and re-index jobs with their progress, and which ones are stalled (running,
but no progress for BACKFILL_STALL_FACTOR batch times: their workers died) with the command that resumes
them. Read-only: starting, pausing and resuming jobs stays with the command line."""

from __future__ import annotations

import gradio as gr

from app.dashboard.context import DashboardContext, when

HEADERS = ["job", "kind", "source", "status", "progress", "done", "failed", "notes/s", "last progress (UTC)",
           "stalled"]


def job_rows(ctx: DashboardContext) -> list[list]:
    """One row per job of the newest page (UniNoteClient.backfills)."""
    rows = []
    for view in ctx.client.backfills(limit=ctx.page_size):
        job = view.job
        stalled = ("" if view.stalled_s is None else
                   f"STALLED {view.stalled_s:.0f} s: uninote backfill --resume {job.id}")
        rows.append([job.id, job.kind.value, job.source, job.status.value, f"{job.cursor}/{job.total}", job.done,
                     job.failed, f"{job.rate:.1f}" if job.rate else "", when(job.updated_at), stalled])
    return rows


def tab(ctx: DashboardContext, demo: gr.Blocks) -> None:
    """The 'Backfills' tab of the moderators' Blocks."""
    with gr.Tab("Backfills", id="backfills"):
        refresh = gr.Button("Refresh", elem_id="backfills-refresh")
        table = gr.Dataframe(headers=HEADERS, interactive=False, wrap=True, elem_id="backfills-table")

        def load(request: gr.Request):
            ctx.user(request)
            return job_rows(ctx)

        refresh.click(load, None, table)
        demo.load(load, None, table)
