"""One saved audit report on screen: verdict, ranked matches with thumbnails, the evidence of the chosen
match (query image beside matched image with crop boxes, highlighted text pieces, which Matryoshka stage
found it) and the decision form. Used by the Check and Review-queue pages.

`ReportView` and its functions are plain data (testable without a browser); `ReportPanel` lays out the
Gradio components and wires them to those functions and to UniNoteClient.record_decision.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from pathlib import Path

import gradio as gr
from PIL import Image

from app.audit import AuditReport, Match
from app.client import UniNoteClient
from app.dashboard.context import DashboardContext, when
from app.dashboard.evidence import evidence_pictures, stack, text_evidence_html, thumbnail
from app.records.types import Decision

MATCH_HEADERS = ["rank", "match id", "note", "title", "score", "verdict", "found by", "decision"]
VERDICT_COLOUR = {"duplicate": "#c62828", "possible_infringement": "#ef6c00", "clear": "#2e7d32"}
DECISION_CHOICES = [("duplicate", Decision.DUPLICATE.value), ("infringing", Decision.INFRINGING.value),
                    ("not a copy", Decision.NOT_A_COPY.value)]


@dataclass
class ReportView:
    """A saved report ready to show. match_ids[i] / decisions[i]: the records' id and latest decision of
    the match at rank i + 1."""

    report_id: int
    report: AuditReport
    created_at: str
    match_ids: list[int]
    decisions: list[str | None]
    query_images: list[Path | None] = field(default_factory=list)

    def match(self, rank: int) -> Match:
        if not 1 <= rank <= len(self.report.matches):
            raise gr.Error(f"no match of rank {rank} in report {self.report_id}")
        return self.report.matches[rank - 1]


def load_view(client: UniNoteClient, report_id: int) -> ReportView:
    """The saved report `report_id` with its match ids, decisions and the query's image files."""
    record = client.get_report(int(report_id))
    report = AuditReport.from_dict(record.report)
    query_images = client.note(record.query_note_id).images if record.query_note_id else []
    return ReportView(record.id, report, when(record.created_at), [m.id for m in record.matches],
                      [m.decision.value if m.decision else None for m in record.matches], query_images)


def summary_markdown(view: ReportView) -> str:
    r = view.report
    top = f"{r.matches[0].score:.3f}" if r.matches else "-"
    thresholds = f"duplicate ≥ {r.config.get('duplicate_threshold')}, possible infringement ≥ " \
                 f"{r.config.get('infringement_threshold')}"
    badge = (f'<span style="background:{VERDICT_COLOUR.get(r.verdict, "#555")};color:white;padding:1px 8px;'
             f'border-radius:4px">{html.escape(r.verdict.replace("_", " "))}</span>')
    return (f"### Report #{view.report_id}: {badge}\n"
            f"Query `{r.query_note_id}` · checked {view.created_at} UTC · top score **{top}** · "
            f"{len(r.matches)} matches of {r.n_candidates} candidates · thresholds {thresholds} · "
            f"model `{r.model_version}`" + (f"  \nTime: {r.timings_line()}" if r.timings_ms else ""))


def match_rows(view: ReportView) -> list[list]:
    return [[rank, view.match_ids[rank - 1] if rank - 1 < len(view.match_ids) else "", m.note_id, m.title,
             round(m.score, 3), m.verdict, ", ".join(m.stages), view.decisions[rank - 1] or ""]
            for rank, m in enumerate(view.report.matches, start=1)]


def match_choices(view: ReportView) -> list[tuple[str, int]]:
    return [(f"{rank}. {m.note_id} · {m.score:.3f} · {m.verdict}", rank)
            for rank, m in enumerate(view.report.matches, start=1)]


def match_gallery(client: UniNoteClient, view: ReportView) -> list[tuple[Image.Image, str]]:
    """A thumbnail of each match's first image (a grey tile for text-only notes), captioned."""
    out = []
    for rank, m in enumerate(view.report.matches, start=1):
        images = client.note(m.note_id).images
        out.append((thumbnail(images[0] if images else None), f"{rank}. {m.note_id} · {m.score:.3f}"))
    return out


def stage_markdown(match: Match) -> str:
    """Which searches found the candidate (the Matryoshka stage, element or PDQ search) and its scores."""
    stages = "; ".join(f"`{s}`" for s in match.stages)
    return (f"**{html.escape(match.note_id)}** · score **{match.score:.3f}** ({match.verdict}) · global cosine "
            f"{match.global_score:.3f} · note score {match.note_score:.3f} · best image evidence "
            f"{match.local_score:.3f} · text {match.text_score:.3f} (verbatim {match.verbatim_score:.3f}, "
            f"semantic {match.semantic_score:.3f})  \nFound by: {stages}")


def evidence(client: UniNoteClient, view: ReportView, rank: int) -> tuple[str, Image.Image | None, str]:
    """(stage markdown, evidence picture: every image pair stacked, or None, text-evidence HTML) of the
    match at `rank`."""
    m = view.match(rank)
    pictures = evidence_pictures(m, view.query_images, client.note(m.note_id).images)
    return stage_markdown(m), stack(pictures), text_evidence_html(m)


class ReportPanel:
    """The components of one report on screen; `outputs` + `show(report_id)` fill them all at once."""

    def __init__(self, ctx: DashboardContext, key: str):
        self.ctx = ctx
        self.report_id = gr.State(None)
        self.summary = gr.Markdown(elem_id=f"{key}-summary")
        self.gallery = gr.Gallery(label="Matches", columns=6, height=240, allow_preview=False,
                                  elem_id=f"{key}-gallery")
        self.table = gr.Dataframe(headers=MATCH_HEADERS, interactive=False, wrap=True, elem_id=f"{key}-matches")
        self.pick = gr.Dropdown(label="Evidence of match", choices=[], elem_id=f"{key}-pick")
        self.stages = gr.Markdown(elem_id=f"{key}-stages")
        self.pictures = gr.Image(label="Query image ↔ matched image (matched crops boxed)", type="pil",
                                 interactive=False, elem_id=f"{key}-evidence")
        self.text = gr.HTML(elem_id=f"{key}-text-evidence")
        with gr.Row():
            self.decision = gr.Radio(DECISION_CHOICES, label="Decision on this match", elem_id=f"{key}-decision")
            self.comment = gr.Textbox(label="Comment", lines=1, elem_id=f"{key}-comment")
        self.decide = gr.Button("Record decision", variant="primary", elem_id=f"{key}-decide")
        self.status = gr.Markdown(elem_id=f"{key}-status")

        self.pick.change(self._evidence, [self.report_id, self.pick], [self.stages, self.pictures, self.text])
        self.gallery.select(self._pick_from_gallery, None, [self.pick])
        self.decide.click(self._decide, [self.report_id, self.pick, self.decision, self.comment],
                          [self.table, self.status])

    @property
    def outputs(self) -> list:
        return [self.report_id, self.summary, self.gallery, self.table, self.pick, self.stages, self.pictures,
                self.text, self.status]

    def show(self, report_id: int | None) -> list:
        """Values for `outputs`: the report with its best match's evidence opened."""
        if report_id is None:
            return [None, "", [], [], gr.update(choices=[], value=None), "", None, "", ""]
        client = self.ctx.client
        view = load_view(client, report_id)
        choices = match_choices(view)
        if view.report.matches:
            stages, pictures, text = evidence(client, view, 1)
        else:
            stages, pictures, text = "No match: nothing in the library resembles this note.", None, ""
        return [view.report_id, summary_markdown(view), match_gallery(client, view), match_rows(view),
                gr.update(choices=choices, value=choices[0][1] if choices else None), stages, pictures, text, ""]

    def _evidence(self, report_id, rank, request: gr.Request):
        self.ctx.user(request)
        if report_id is None or rank is None:
            return "", None, ""
        return evidence(self.ctx.client, load_view(self.ctx.client, report_id), int(rank))

    @staticmethod
    def _pick_from_gallery(event: gr.SelectData):
        return gr.update(value=int(event.index) + 1)

    def _decide(self, report_id, rank, decision, comment, request: gr.Request):
        user = self.ctx.user(request)
        if report_id is None or rank is None:
            raise gr.Error("Open a report and choose a match first.")
        if not decision:
            raise gr.Error("Choose a decision: duplicate, infringing or not a copy.")
        client = self.ctx.client
        view = load_view(client, report_id)
        match_id = view.match_ids[int(rank) - 1]
        record = client.record_decision(match_id, decision, user.username, comment or None)
        view = load_view(client, report_id)
        return match_rows(view), (f"Recorded **{record.decision.value}** on match #{match_id} "
                                  f"({record.matched_note_id}) by {record.moderator}.")
