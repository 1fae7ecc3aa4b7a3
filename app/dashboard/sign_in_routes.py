"""The dashboard's own routes: GET/POST /login, GET/POST /logout, GET /healthz.

POST /login: refused 429 (with Retry-After, password not checked) while the account or the address is
throttled, 503 when too many sign-ins already wait for a password hash (app/dashboard/sign_in_throttle.py);
else app.moderation.sign_in (argon2id; both outcomes audit-logged), and on success a new server-side
session (app/records/web_sessions.py) in the cookie. POST /logout ends the session; GET /logout only
shows a sign-out button. The guard in front (app/dashboard/auth.py) has already refused cross-origin POSTs.
"""

from __future__ import annotations

from collections.abc import Callable

import anyio
from fastapi import FastAPI, Form, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from sqlalchemy.orm import Session, sessionmaker

from app import moderation
from app.dashboard.auth import COOKIE, SessionCodec
from app.dashboard.pages import login_page, logout_page
from app.dashboard.sign_in_throttle import SignInThrottle, account_key
from app.records import users, web_sessions
from app.records.audit_log import Action
from app.records.db import transaction
from app.records.users import User
from app.settings import Settings

MAX_NAME_CHARS = 200  # longer "usernames" are cut before anything looks at them


def safe_next(target: str | None) -> str:
    """Only same-site absolute paths are followed after signing in (no open redirect)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/dashboard/"
    return target


class SignInAttempts:
    """One sign-in attempt, run in a worker thread inside the throttle's hash limiter."""

    def __init__(self, sessions: sessionmaker[Session], throttle: SignInThrottle, ttl_s: float):
        self.sessions, self.throttle, self.ttl_s = sessions, throttle, ttl_s

    def refusal(self, username: str, client: str | None) -> int | None:
        """Seconds to wait when the attempt is throttled (audit-logged once a minute per key), else None."""
        wait = self.throttle.retry_after(username, client)
        if wait is None:
            return None
        seconds, kind = wait
        key = account_key(username) if kind == "account" else (client or "?")
        if self.throttle.first_refusal(kind, key):
            with self.sessions() as s:
                known = users.get_user(s, username)
            target = f"user:{known.username}" if known else ("user:?" if kind == "account" else f"address:{client}")
            moderation.record_event(self.sessions, known.username if known else moderation.UNKNOWN_ACTOR,
                                    Action.SIGN_IN_THROTTLED, target,
                                    {"client": client, "by": kind, "retry_after_s": seconds,
                                     **({} if known else {"name_sha256": moderation.name_digest(username)})})
        return seconds

    def __call__(self, username: str, password: str, client: str | None) -> int | tuple[User, str] | None:
        """Seconds to wait (throttled), (account, session token) on success, None for a wrong password."""
        seconds = self.refusal(username, client)
        if seconds is not None:
            return seconds
        user = moderation.sign_in(self.sessions, username, password, client)
        if user is None:
            self.throttle.failed(username, client)
            return None
        self.throttle.succeeded(username)
        with transaction(self.sessions) as s:
            return user, web_sessions.open_session(s, user.id, self.ttl_s, client)


def add_sign_in_routes(app: FastAPI, settings: Settings, sessions: sessionmaker[Session], codec: SessionCodec,
                       throttle: SignInThrottle, on_sign_out: Callable[[str], None]) -> None:
    """The routes on `app`; on_sign_out(session key) runs after a session ends (forget its uploads)."""
    attempt = SignInAttempts(sessions, throttle, codec.ttl_s)

    @app.get("/login", response_class=HTMLResponse)
    def login_form(request: Request) -> HTMLResponse:
        return HTMLResponse(login_page(safe_next(request.query_params.get("next"))))

    @app.post("/login")
    async def login_submit(request: Request, username: str = Form(""), password: str = Form(""),
                           next: str = Form("/dashboard/")) -> Response:  # noqa: A002 (the form field's name)
        client = request.client.host if request.client else None
        name, target = username.strip()[:MAX_NAME_CHARS], safe_next(next)
        result: int | tuple[User, str] | None = await anyio.to_thread.run_sync(attempt.refusal, name, client)
        if result is None:  # not throttled: check the password (the throttle is asked again in the slot)
            if throttle.busy():
                return HTMLResponse(login_page(target, "The dashboard is busy: try again in a few seconds."),
                                    status_code=503, headers={"Retry-After": "5"})
            result = await anyio.to_thread.run_sync(attempt, name, password, client, limiter=throttle.hashing)
        if isinstance(result, int):
            return HTMLResponse(login_page(target, f"Too many sign-in attempts: try again in {result} s."),
                                status_code=429, headers={"Retry-After": str(result)})
        if result is None:
            return HTMLResponse(login_page(target, "Wrong username or password."), status_code=401)
        _, token = result
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(COOKIE, codec.encode(token), max_age=codec.ttl_s, httponly=True, samesite="lax",
                            secure=settings.environment == "production", path="/")
        return response

    @app.get("/logout", response_class=HTMLResponse)
    def logout_form() -> HTMLResponse:
        return HTMLResponse(logout_page())

    @app.post("/logout")
    def logout(request: Request) -> Response:
        token = codec.decode(request.cookies.get(COOKIE))
        if token:
            moderation.sign_out(sessions, token, request.client.host if request.client else None)
            on_sign_out(web_sessions.token_key(token))
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(COOKIE, path="/")
        return response

    @app.get("/healthz", response_class=PlainTextResponse)
    def healthz() -> str:
        return "ok"
