"""The dashboard's web app: a FastAPI app with the sign-in routes, the moderators' Gradio Blocks at
/dashboard/ (Check, Review queue, Library, Thresholds, Audit log) and the admins' Blocks at /admin/
(Accounts, Thresholds), all behind app.dashboard.auth.SignInGuard.

Gradio 6: each Blocks is mounted with gr.mount_gradio_app(..., auth_dependency=username_of), so Gradio's
own routes also know the user (gr.Request.username) and refuse requests without one; the guard in front
refuses them first, for every route (pages, /gradio_api/..., files, uploads).
"""

from __future__ import annotations

import gradio as gr
from fastapi import FastAPI
from fastapi.responses import RedirectResponse

from app.client import UniNoteClient
from app.dashboard import accounts_page, audit_log_page, check_page, library_page, queue_page, thresholds_page
from app.dashboard import backfills_page
from app.dashboard.auth import (SESSION_RECHECK_S, AccountCache, SessionCodec, SignInGuard, add_auth_routes,
                                username_of)
from app.dashboard.context import DashboardContext

CSS = """
.uninote-text-evidence { border-collapse: collapse; width: 100%; }
.uninote-text-evidence td, .uninote-text-evidence th { border: 1px solid #ddd; padding: 4px 6px; vertical-align: top; }
.uninote-text-evidence mark { background: #ffe066; }
"""


def _header(ctx: DashboardContext, demo: gr.Blocks, title: str) -> None:
    header = gr.Markdown(f"## {title}", elem_id="header")

    def who(request: gr.Request) -> str:
        user = ctx.user(request)
        admin = " · [Admin pages](/admin/)" if user.is_admin else ""
        home = " · [Dashboard](/dashboard/)" if title.endswith("admin") else ""
        return (f"## {title}\nSigned in as **{user.username}** ({user.role.value}){home}{admin} · "
                f"[Sign out](/logout)")

    demo.load(who, None, header)


def build_dashboard(ctx: DashboardContext) -> gr.Blocks:
    """The moderators' Blocks (every signed-in account)."""
    with gr.Blocks(title="UniNote dashboard", analytics_enabled=False) as demo:
        _header(ctx, demo, "UniNote moderation")
        with gr.Tab("Check a note", id="check"):
            check_page.build(ctx, demo)
        with gr.Tab("Review queue", id="queue"):
            queue_page.build(ctx, demo)
        with gr.Tab("Library", id="library"):
            library_page.build(ctx, demo)
        with gr.Tab("Thresholds", id="thresholds"):
            thresholds_page.build_report(ctx, demo)
        with gr.Tab("Audit log", id="audit"):
            audit_log_page.build(ctx, demo)
        backfills_page.tab(ctx, demo)
    return demo


def build_admin(ctx: DashboardContext) -> gr.Blocks:
    """The admins' Blocks (the guard lets only active admins reach /admin)."""
    with gr.Blocks(title="UniNote admin", analytics_enabled=False) as demo:
        _header(ctx, demo, "UniNote admin")
        with gr.Tab("Accounts", id="accounts"):
            accounts_page.build(ctx, demo)
        with gr.Tab("Thresholds", id="thresholds"):
            thresholds_page.build_admin(ctx, demo)
    return demo


def build_app(client: UniNoteClient, *, session_recheck_s: float = SESSION_RECHECK_S) -> FastAPI:
    """The whole dashboard over one client (its settings give SECRET_KEY and ENVIRONMENT).
    session_recheck_s: how long an account lookup is trusted (disabling takes effect after it)."""
    settings = client.settings
    sessions = client.library.sessions
    codec, accounts = SessionCodec(settings.secret_key), AccountCache(sessions, session_recheck_s)
    ctx = DashboardContext(client)
    app = FastAPI(title="UniNote dashboard", docs_url=None, redoc_url=None, openapi_url=None)
    add_auth_routes(app, settings, sessions, codec, accounts)

    @app.get("/")
    def root() -> RedirectResponse:
        return RedirectResponse("/dashboard/", status_code=303)

    common = dict(auth_dependency=username_of, ssr_mode=False, footer_links=[], css=CSS)
    gr.mount_gradio_app(app, build_admin(ctx), path="/admin", **common)
    gr.mount_gradio_app(app, build_dashboard(ctx), path="/dashboard", **common)
    app.add_middleware(SignInGuard, codec=codec, accounts=accounts)
    return app
