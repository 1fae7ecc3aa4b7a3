"""The dashboard's web app: a FastAPI app with the sign-in routes, the moderators' Gradio Blocks at
/dashboard/ (Check, Review queue, Library, Thresholds, Audit log) and the admins' Blocks at /admin/
(Accounts, Thresholds), behind two ASGI layers: app.dashboard.auth.SignInGuard (cross-origin refusal,
sign-in, admin check) and inside it app.dashboard.upload_gate.UploadGate (file paths in requests).

Gradio 6: each Blocks is mounted with gr.mount_gradio_app(..., auth_dependency=username_of), so Gradio's
own routes also know the user (gr.Request.username) and refuse requests without one; the guard in front
refuses them first, for every route (pages, /gradio_api/..., files, uploads). Gradio's upload folder
(GRADIO_TEMP_DIR, where uploads and served outputs live) is HOME/gradio, mode 0700, not a shared /tmp.
"""

from __future__ import annotations

import os
from pathlib import Path

import gradio as gr
from fastapi import FastAPI
from fastapi.responses import RedirectResponse

from app import moderation
from app.client import UniNoteClient
from app.dashboard import (accounts_page, audit_log_page, banks_page, check_page, library_page, queue_page,
                           thresholds_page)
from app.dashboard import backfills_page
from app.dashboard.auth import SessionCodec, SignInGuard, session_secret, username_of
from app.dashboard.context import GRADIO_FOLDER, DashboardContext
from app.dashboard.sign_in_routes import add_sign_in_routes
from app.dashboard.sign_in_throttle import SignInThrottle
from app.dashboard.upload_gate import UploadGate, UploadRegistry
from app.records.audit_log import Action
from app.settings import Settings

MAX_UPLOAD = "25mb"  # Gradio refuses bigger uploads (413)
DELETE_CACHE = (3600, 86400)  # hourly, Gradio deletes its cached files older than a day (HOME/uploads keeps ours)
MOUNTS = ("/dashboard", "/admin")
SIGN_OUT_JS = ("() => { const f = document.createElement('form'); f.method = 'post'; f.action = '/logout'; "
               "document.body.appendChild(f); f.submit(); }")

CSS = """
.uninote-text-evidence { border-collapse: collapse; width: 100%; }
.uninote-text-evidence td, .uninote-text-evidence th { border: 1px solid #ddd; padding: 4px 6px; vertical-align: top; }
.uninote-text-evidence mark { background: #ffe066; }
"""


def gradio_folder(settings: Settings) -> Path:
    """HOME/gradio (created, mode 0700): Gradio's upload folder; set as GRADIO_TEMP_DIR for this process."""
    folder = (settings.home / GRADIO_FOLDER).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    os.environ["GRADIO_TEMP_DIR"] = str(folder)
    return folder


def _header(ctx: DashboardContext, demo: gr.Blocks, title: str) -> None:
    with gr.Row():
        header = gr.Markdown(f"## {title}", elem_id="header")
        sign_out = gr.Button("Sign out", size="sm", scale=0, min_width=100, elem_id="sign-out")
    sign_out.click(None, None, None, js=SIGN_OUT_JS)  # a POST form: signing out is a state change

    def who(request: gr.Request) -> str:
        user = ctx.user(request)
        admin = " · [Admin pages](/admin/)" if user.is_admin else ""
        home = " · [Dashboard](/dashboard/)" if title.endswith("admin") else ""
        return f"## {title}\nSigned in as **{user.username}** ({user.role.value}){home}{admin}"

    demo.load(who, None, header)


def build_dashboard(ctx: DashboardContext) -> gr.Blocks:
    """The moderators' Blocks (every signed-in account)."""
    with gr.Blocks(title="UniNote dashboard", analytics_enabled=False, delete_cache=DELETE_CACHE) as demo:
        _header(ctx, demo, "UniNote moderation")
        with gr.Tab("Check a note", id="check"):
            check_page.build(ctx, demo)
        with gr.Tab("Review queue", id="queue"):
            queue_page.build(ctx, demo)
        with gr.Tab("Library", id="library"):
            library_page.build(ctx, demo)
        with gr.Tab("Banks", id="banks"):
            banks_page.build(ctx, demo)
        with gr.Tab("Thresholds", id="thresholds"):
            thresholds_page.build_report(ctx, demo)
        with gr.Tab("Audit log", id="audit"):
            audit_log_page.build(ctx, demo)
        backfills_page.tab(ctx, demo)
    return demo


def build_admin(ctx: DashboardContext) -> gr.Blocks:
    """The admins' Blocks (the guard lets only active admins reach /admin)."""
    with gr.Blocks(title="UniNote admin", analytics_enabled=False, delete_cache=DELETE_CACHE) as demo:
        _header(ctx, demo, "UniNote admin")
        with gr.Tab("Accounts", id="accounts"):
            accounts_page.build(ctx, demo)
        with gr.Tab("Thresholds", id="thresholds"):
            thresholds_page.build_admin(ctx, demo)
    return demo


def build_app(client: UniNoteClient) -> FastAPI:
    """The whole dashboard over one client (its settings give SECRET_KEY, ENVIRONMENT, HOME and the sign-in
    limits). Sets GRADIO_TEMP_DIR to HOME/gradio. Raises app.secret_key.SecretKeyFileError when
    HOME/secret_key is unsafe, ValueError for sign-in limits `limits` cannot parse."""
    settings = client.settings
    sessions = client.library.sessions
    codec = SessionCodec(session_secret(settings))
    throttle = SignInThrottle(settings.sign_in_account_limits, settings.sign_in_address_limits,
                              settings.sign_in_concurrency)
    uploads, upload_root = UploadRegistry(), gradio_folder(settings)  # before any Blocks reads the folder
    ctx = DashboardContext(client, upload_root)
    app = FastAPI(title="UniNote dashboard", docs_url=None, redoc_url=None, openapi_url=None)
    add_sign_in_routes(app, settings, sessions, codec, throttle, uploads.forget)

    @app.get("/")
    def root() -> RedirectResponse:
        return RedirectResponse("/dashboard/", status_code=303)

    common = dict(auth_dependency=username_of, ssr_mode=False, footer_links=[], css=CSS, max_file_size=MAX_UPLOAD)
    for path, blocks in (("/admin", build_admin(ctx)), ("/dashboard", build_dashboard(ctx))):
        gr.mount_gradio_app(app, blocks, path=path, **common)
        # Gradio checks that event inputs name uploaded files only once `has_launched` (set by launch(),
        # never by mount_gradio_app): turn its check on as a second lock behind the UploadGate.
        blocks.has_launched = True

    def audit_refusal(user, path: str, route: str, client_host: str | None) -> None:
        moderation.record_event(sessions, user.username, Action.FILE_REFUSED, f"file:{path}",
                                {"route": route, "client": client_host})

    app.add_middleware(UploadGate, mounts=MOUNTS, upload_root=upload_root, registry=uploads,
                       on_refused=audit_refusal)
    app.add_middleware(SignInGuard, codec=codec, sessions=sessions)  # added last: runs first
    return app
