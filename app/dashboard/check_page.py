"""The "Check a note" page: upload images and text (or name a stored note), get the saved report with its
ranked matches and evidence, decide on a match. Calls UniNoteClient.check / check_stored."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import gradio as gr

from app import moderation
from app.dashboard.context import DashboardContext
from app.dashboard.report_panel import ReportPanel
from app.dashboard.upload_gate import inside
from app.notes import MAX_IMAGES
from app.records.audit_log import Action
from app.stored_notes import NoteNotStoredError, uploads_dir
from encoder.types import InputError


def save_uploads(ctx: DashboardContext, note_id: str, files: list[str], actor: str) -> list[Path]:
    """Copy uploaded files to HOME/uploads/<note_id>/<n><suffix> (kept so the report's evidence can be
    shown later from the review queue); returns the new paths in upload order.

    Raises gr.Error (and writes a `file_refused` audit entry as `actor`) for a path outside Gradio's upload
    folder: the UploadGate refuses such requests first, this is the last lock before a file is opened."""
    for f in files:
        if not isinstance(f, str) or not inside(f, ctx.upload_root):
            moderation.record_event(ctx.client.library.sessions, actor, Action.FILE_REFUSED, f"file:{str(f)[:500]}",
                                    {"route": "check_upload"})
            raise gr.Error("Only files uploaded on this page can be checked.")
    folder = uploads_dir(ctx.client.settings, note_id)
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i, f in enumerate(files):
        src = Path(f)
        dst = folder / f"{i}{src.suffix.lower()[:8] or '.img'}"
        shutil.copyfile(src, dst)
        out.append(dst)
    return out


def build(ctx: DashboardContext, demo: gr.Blocks) -> None:  # noqa: ARG001 (same signature as every page)
    gr.Markdown("Upload a note's images and text, or name a stored note, and check it against the library. "
                "The report is saved: its matches appear in the review queue.")
    with gr.Row():
        with gr.Column():
            files = gr.File(label=f"Images (up to {MAX_IMAGES})", file_count="multiple", file_types=["image"],
                            elem_id="check-images")
            title = gr.Textbox(label="Title", elem_id="check-title")
            body = gr.Textbox(label="Body", lines=3, elem_id="check-body")
            run = gr.Button("Check", variant="primary", elem_id="check-button")
        with gr.Column():
            stored = gr.Textbox(label="…or the id of a stored note (look-back check)", elem_id="check-note-id")
            run_stored = gr.Button("Check stored note", elem_id="check-stored-button")
    panel = ReportPanel(ctx, "check")

    def check_upload(files, title, body, request: gr.Request):
        user = ctx.user(request)
        files = list(files or [])
        if len(files) > MAX_IMAGES:
            raise gr.Error(f"a note has at most {MAX_IMAGES} images, got {len(files)}")
        if not (files or (title or "").strip() or (body or "").strip()):
            raise gr.Error("Give at least one image, a title or a body.")
        note_id = f"upload-{uuid.uuid4().hex[:16]}"
        paths = save_uploads(ctx, note_id, [getattr(f, "name", f) for f in files], user.username)
        try:
            report = ctx.client.check({"note_id": note_id, "title": title or "", "body": body or "",
                                       "images": [str(p) for p in paths]})
        except (ValueError, InputError) as e:
            raise gr.Error(str(e)) from None
        return panel.show(report.report_id)

    def check_stored(note_id, request: gr.Request):
        ctx.user(request)
        if not (note_id or "").strip():
            raise gr.Error("Give the id of a stored note.")
        try:
            report = ctx.client.check_stored(note_id.strip())
        except NoteNotStoredError as e:
            raise gr.Error(str(e)) from None
        return panel.show(report.report_id)

    run.click(check_upload, [files, title, body], panel.outputs)
    run_stored.click(check_stored, [stored], panel.outputs)
