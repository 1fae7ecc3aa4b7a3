"""Thresholds: the precision and recall each threshold would have given on the decisions recorded so far
(everyone), raw vs normalised scores (SSCD score normalisation, app/threshold_report.py), and changing the
thresholds in force (admins, on the /admin pages). The page only lays out what the report computed."""

from __future__ import annotations

import gradio as gr

from app.dashboard.context import DashboardContext
from app.moderation import PermissionDeniedError
from app.threshold_report import NormalisationReport, ThresholdReport, ThresholdRow

HEADERS = ["threshold", "flagged", "true positives", "false positives", "false negatives", "precision", "recall"]
NORMALISATION_HEADERS = ["threshold", "flagged raw", "precision raw", "recall raw", "flagged normalised",
                         "precision normalised", "recall normalised"]
BIN_HEADERS = ["score", "copies raw", "copies normalised", "not copies raw", "not copies normalised"]


def rows(table: list[ThresholdRow]) -> list[list]:
    return [[r.threshold, r.flagged, r.true_positives, r.false_positives, r.false_negatives, round(r.precision, 3),
             "-" if r.recall is None else round(r.recall, 3)] for r in table]


def current_markdown(ctx: DashboardContext) -> str:
    t = ctx.client.thresholds()
    who = "the settings (DUPLICATE_THRESHOLD, INFRINGEMENT_THRESHOLD)" if t.source == "settings" else \
        f"an admin's change ({t.source.replace(':', ' entry #')})"
    return (f"**In force:** duplicate ≥ **{t.duplicate:.3f}**, possible infringement ≥ **{t.infringement:.3f}** "
            f"(from {who}).")


def normalisation_rows(n: NormalisationReport | None) -> list[list]:
    """Precision/recall of the raw and the normalised score at each threshold, side by side."""
    if n is None:
        return []
    rate = lambda x: "-" if x is None else round(x, 3)  # noqa: E731
    return [[r.threshold, r.flagged, rate(r.precision), rate(r.recall), m.flagged, rate(m.precision), rate(m.recall)]
            for r, m in zip(n.raw, n.normalised)]


def bin_rows(n: NormalisationReport | None) -> list[list]:
    """The raw and normalised score distributions of decided copies and non-copies, one row per bin."""
    if n is None:
        return []
    return [[f"{b.low:.1f}–{b.high:.1f}", b.copies_raw, b.copies_normalised, b.others_raw, b.others_normalised]
            for b in n.bins]


def normalisation_markdown(n: NormalisationReport | None) -> str:
    if n is None:
        return "No decided match carries a raw score yet (reports made before score normalisation was reported)."
    return (f"On **{n.n_matches}** decided matches whose report carries both scores. *Raw*: the score before "
            "score normalisation; *normalised*: each image's evidence minus how close its query already is to "
            "its 5th-nearest library note (SSCD), the score the thresholds apply to. Normalisation is meant to "
            "make one threshold give one precision for every query.")


def report_markdown(report: ThresholdReport) -> str:
    return (f"On **{report.n_decisions}** decided matches ({report.n_copies} decided copies, of which "
            f"{report.n_duplicates} duplicates). A match counts as flagged when its score is at or above the "
            f"threshold; recall counts the decided matches only.")


def build_report(ctx: DashboardContext, demo: gr.Blocks) -> None:
    current = gr.Markdown(elem_id="thresholds-current")
    summary = gr.Markdown()
    refresh = gr.Button("Refresh", elem_id="thresholds-refresh")
    gr.Markdown("#### Infringement threshold (flag = decided duplicate or infringing)")
    infringement = gr.Dataframe(headers=HEADERS, interactive=False, elem_id="thresholds-infringement")
    gr.Markdown("#### Duplicate threshold (flag = decided duplicate)")
    duplicate = gr.Dataframe(headers=HEADERS, interactive=False, elem_id="thresholds-duplicate")
    gr.Markdown("#### Score normalisation: raw vs normalised (flag = decided duplicate or infringing)")
    norm_summary = gr.Markdown(elem_id="thresholds-normalisation-summary")
    normalisation = gr.Dataframe(headers=NORMALISATION_HEADERS, interactive=False,
                                 elem_id="thresholds-normalisation")
    gr.Markdown("Score distributions (decided matches per score bin)")
    bins = gr.Dataframe(headers=BIN_HEADERS, interactive=False, elem_id="thresholds-distributions")
    gr.Markdown("Admins change the thresholds on the [admin pages](/admin/).")

    def load(request: gr.Request):
        ctx.user(request)
        report = ctx.client.threshold_report()
        n = report.normalisation
        return (current_markdown(ctx), report_markdown(report), rows(report.infringement), rows(report.duplicate),
                normalisation_markdown(n), normalisation_rows(n), bin_rows(n))

    outputs = [current, summary, infringement, duplicate, norm_summary, normalisation, bins]
    refresh.click(load, None, outputs)
    demo.load(load, None, outputs)


def build_admin(ctx: DashboardContext, demo: gr.Blocks) -> None:
    current = gr.Markdown(elem_id="admin-thresholds-current")
    with gr.Row():
        duplicate = gr.Number(label="Duplicate threshold", precision=3, elem_id="admin-duplicate")
        infringement = gr.Number(label="Infringement threshold", precision=3, elem_id="admin-infringement")
    save = gr.Button("Save thresholds", variant="primary", elem_id="admin-save-thresholds")
    status = gr.Markdown(elem_id="admin-thresholds-status")
    gr.Markdown("#### What each threshold would have given (flag = decided duplicate or infringing)")
    table = gr.Dataframe(headers=HEADERS, interactive=False)

    def load(request: gr.Request):
        ctx.user(request)
        t = ctx.client.thresholds()
        return current_markdown(ctx), t.duplicate, t.infringement, rows(ctx.client.threshold_report().infringement)

    def store(duplicate, infringement, request: gr.Request):
        user = ctx.user(request)
        if duplicate is None or infringement is None:
            raise gr.Error("Give both thresholds.")
        try:
            t = ctx.client.set_thresholds(user.username, float(duplicate), float(infringement))
        except (PermissionDeniedError, ValueError) as e:
            raise gr.Error(str(e)) from None
        saved = f"Saved by {user.username}: duplicate {t.duplicate}, infringement {t.infringement}."
        return current_markdown(ctx), saved

    demo.load(load, None, [current, duplicate, infringement, table])
    save.click(store, [duplicate, infringement], [current, status])
