"""The Library page: browse stored notes a page at a time, search them by text (a semantic search through
the same check as the Check page, not saved), open one note: its elements, images and match history."""

from __future__ import annotations

import uuid

import gradio as gr

from app.dashboard.context import DashboardContext, page_label, when
from app.dashboard.evidence import thumbnail
from app.records.types import NoteStatus

NOTE_HEADERS = ["note", "title", "author", "status", "indexed (UTC)", "model version", "last error"]
ELEMENT_HEADERS = ["kind", "index", "image", "box", "text", "PDQ quality"]
HISTORY_HEADERS = ["report", "rank", "query note", "matched note", "score", "verdict", "decision", "checked (UTC)"]
SEARCH_HEADERS = ["rank", "note", "title", "score", "verdict", "found by"]
STATUSES = [s.value for s in NoteStatus]


def note_rows(ctx: DashboardContext, status: str | None, page: int) -> tuple[list[list], int]:
    result = ctx.client.list_notes(status or None, offset=page * ctx.page_size, limit=ctx.page_size)
    rows = [[n.note_id, n.title, n.author or "", n.status.value, when(n.indexed_at), n.model_version or "",
             n.last_error or ""] for n in result.notes]
    return rows, result.total


def note_view(ctx: DashboardContext, note_id: str):
    """(markdown, image thumbnails, element rows, match-history rows) of one note."""
    client = ctx.client
    d = client.note(note_id)
    if d.record is None and not d.stored:
        raise gr.Error(f"no note {note_id!r} in the library")
    r = d.record
    facts = [f"### {note_id}", f"**{(r.title if r else d.payload.get('title')) or '(no title)'}**"]
    if r is not None:
        facts.append(f"status **{r.status.value}** · author {r.author or '-'} · indexed {when(r.indexed_at)} UTC · "
                     f"model `{r.model_version or '-'}` · source `{r.source or '-'}`")
        if r.last_error:
            facts.append(f"last error: {r.last_error}")
    if not d.stored:
        facts.append("_Not in the vector store (deleted, failed or not indexed yet)._")
    images = [(thumbnail(p, 240), f"image {i}") for i, p in enumerate(d.images)]
    elements = [[e.kind.value, e.index, "" if e.image_index is None else e.image_index,
                 "" if e.box is None else ", ".join(f"{x:.2f}" for x in e.box), e.text or "",
                 "" if e.pdq is None else e.pdq.quality] for e in d.elements]
    history = [[m.report_id, m.rank, m.query_note_id or "", m.matched_note_id, round(m.score, 3), m.verdict,
                m.decision.value if m.decision else "", when(m.created_at)]
               for m in client.get_matches(note_id)[:200]]
    return "\n\n".join(facts), images, elements, history


def build(ctx: DashboardContext, demo: gr.Blocks) -> None:
    with gr.Row():
        status = gr.Dropdown(STATUSES, value=NoteStatus.INDEXED.value, label="Status", elem_id="library-status")
        prev_page = gr.Button("◀ Previous page")
        next_page = gr.Button("Next page ▶")
        where = gr.Markdown()
    page = gr.State(0)
    table = gr.Dataframe(headers=NOTE_HEADERS, interactive=False, elem_id="library-table")
    with gr.Row():
        query = gr.Textbox(label="Search notes by text (meaning, not keywords)", elem_id="library-search")
        search = gr.Button("Search", elem_id="library-search-button")
    hits = gr.Dataframe(headers=SEARCH_HEADERS, interactive=False, elem_id="library-hits")
    with gr.Row():
        note_id = gr.Textbox(label="Note id", elem_id="library-note-id")
        open_note = gr.Button("Open note", elem_id="library-open")
    facts = gr.Markdown(elem_id="library-note")
    images = gr.Gallery(label="Images", columns=6, height=260, allow_preview=True)
    elements = gr.Dataframe(headers=ELEMENT_HEADERS, interactive=False, wrap=True, label="Elements",
                            elem_id="library-elements")
    history = gr.Dataframe(headers=HISTORY_HEADERS, interactive=False, label="Match history",
                           elem_id="library-history")

    def load(status, page, request: gr.Request):
        ctx.user(request)
        page = max(int(page or 0), 0)
        rows, total = note_rows(ctx, status, page)
        if not rows and page > 0:
            page = max((total - 1) // ctx.page_size, 0)
            rows, total = note_rows(ctx, status, page)
        return rows, page, page_label(page, ctx.page_size, len(rows), total)

    def first(status, request: gr.Request):
        return load(status, 0, request)

    def prev(status, page, request: gr.Request):
        return load(status, int(page or 0) - 1, request)

    def next_(status, page, request: gr.Request):
        return load(status, int(page or 0) + 1, request)

    def open_(note_id, request: gr.Request):
        ctx.user(request)
        if not (note_id or "").strip():
            raise gr.Error("Give a note id.")
        return note_view(ctx, note_id.strip())

    def open_row(rows, event: gr.SelectData, request: gr.Request):
        ctx.user(request)
        row = event.index[0] if isinstance(event.index, (list, tuple)) else event.index
        values = rows.values.tolist() if hasattr(rows, "values") else rows
        nid = str(values[row][0])
        return [nid, *note_view(ctx, nid)]

    def search_(text, request: gr.Request):
        ctx.user(request)
        if not (text or "").strip():
            raise gr.Error("Type some text to search for.")
        report = ctx.client.check({"note_id": f"search-{uuid.uuid4().hex[:12]}", "title": text.strip()[:1000],
                                   "body": text.strip()}, limit=20, save=False)
        return [[rank, m.note_id, m.title, round(m.score, 3), m.verdict, ", ".join(m.stages)]
                for rank, m in enumerate(report.matches, start=1)]

    status.change(first, [status], [table, page, where])
    prev_page.click(prev, [status, page], [table, page, where])
    next_page.click(next_, [status, page], [table, page, where])
    open_note.click(open_, [note_id], [facts, images, elements, history])
    note_id.submit(open_, [note_id], [facts, images, elements, history])
    table.select(open_row, [table], [note_id, facts, images, elements, history])
    search.click(search_, [query], [hits])
    query.submit(search_, [query], [hits])
    demo.load(first, [status], [table, page, where])
