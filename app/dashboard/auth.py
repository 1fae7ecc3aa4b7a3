"""Signing in to the dashboard: a signed session cookie, the sign-in page, and an ASGI guard in front of
every route (the Gradio pages, their /gradio_api/... routes, uploads and files).

- Cookie `uninote_session` = base64url(JSON {u: username, exp: unix seconds}) "." base64url(HMAC-SHA256
  with SECRET_KEY) (stdlib hmac; the same construction as itsdangerous' signed values). HttpOnly,
  SameSite=Lax (no cross-site POST carries it), Secure when ENVIRONMENT=production.
- `SignInGuard` (pure ASGI middleware, so Gradio's streaming responses pass untouched) lets through only
  /login, /logout and /healthz without a valid session: pages redirect to /login, every other request
  (API routes, files, websockets) gets 401. Under /admin the account must be an active admin, else 403.
  The account is re-read from the database (cached SESSION_RECHECK_S), so disabling an account or
  taking its admin role takes effect within seconds, not at cookie expiry.
- Passwords are checked by app.moderation.sign_in (argon2id, app/records/users.py); both outcomes are
  written to the audit log.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import json
import threading
import time
from dataclasses import dataclass
from urllib.parse import quote

import anyio
from fastapi import FastAPI, Form, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from sqlalchemy.orm import Session, sessionmaker

from app import moderation
from app.records import users
from app.records.users import User
from app.settings import Settings

COOKIE = "uninote_session"
SESSION_TTL_S = 12 * 3600  # a sign-in lasts a working day
SESSION_RECHECK_S = 5.0  # how long an account lookup is trusted before the database is asked again
PUBLIC_PATHS = {"/login", "/logout", "/healthz"}
ADMIN_PREFIX = "/admin"


@dataclass(frozen=True)
class SessionCodec:
    """Signs and verifies session cookie values with `secret` (HMAC-SHA256)."""

    secret: str
    ttl_s: int = SESSION_TTL_S

    def _mac(self, payload: bytes) -> str:
        digest = hmac.new(self.secret.encode("utf-8"), payload, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")

    def encode(self, username: str, now: float | None = None) -> str:
        """A cookie value for `username`, valid for ttl_s seconds from `now` (unix seconds)."""
        body = json.dumps({"u": username, "exp": int((now or time.time()) + self.ttl_s)}, separators=(",", ":"))
        payload = base64.urlsafe_b64encode(body.encode("utf-8")).rstrip(b"=")
        return f"{payload.decode('ascii')}.{self._mac(payload)}"

    def decode(self, value: str | None, now: float | None = None) -> str | None:
        """The username of a valid, unexpired cookie value, else None (bad signature, format or expiry)."""
        if not value or value.count(".") != 1:
            return None
        payload, mac = value.split(".")
        if not hmac.compare_digest(mac, self._mac(payload.encode("ascii", "replace"))):
            return None
        try:
            data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        except (ValueError, UnicodeDecodeError):
            return None
        if not isinstance(data, dict) or not isinstance(data.get("u"), str) or not isinstance(data.get("exp"), int):
            return None
        return data["u"] if data["exp"] > (now or time.time()) else None


class AccountCache:
    """username -> (User | None, when read); entries older than SESSION_RECHECK_S are read again."""

    def __init__(self, sessions: sessionmaker[Session], ttl_s: float = SESSION_RECHECK_S):
        self.sessions, self.ttl_s = sessions, ttl_s
        self._entries: dict[str, tuple[User | None, float]] = {}
        self._lock = threading.Lock()

    def get(self, username: str) -> User | None:
        """The account if it exists and is active, else None."""
        with self._lock:
            entry = self._entries.get(username)
        if entry is not None and time.monotonic() - entry[1] < self.ttl_s:
            return entry[0]
        with self.sessions() as s:
            user = users.get_user(s, username)
        user = user if user is not None and user.active else None
        with self._lock:
            self._entries[username] = (user, time.monotonic())
        return user

    def forget(self, username: str) -> None:
        with self._lock:
            self._entries.pop(username, None)


def _cookie_from_scope(scope) -> str | None:
    for name, value in scope.get("headers", []):
        if name == b"cookie":
            for part in value.decode("latin-1").split(";"):
                key, _, val = part.strip().partition("=")
                if key == COOKIE:
                    return val
    return None


class SignInGuard:
    """ASGI middleware: no route but PUBLIC_PATHS works without a valid session; /admin needs an admin.
    The signed-in User is put in scope["state"]["user"]."""

    def __init__(self, app, codec: SessionCodec, accounts: AccountCache):
        self.app, self.codec, self.accounts = app, codec, accounts

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        path = scope.get("path", "")
        if path in PUBLIC_PATHS:
            return await self.app(scope, receive, send)
        username = self.codec.decode(_cookie_from_scope(scope))
        user = await anyio.to_thread.run_sync(self.accounts.get, username) if username else None
        if user is None:
            return await self._refuse(scope, receive, send, 401, path)
        if (path == ADMIN_PREFIX or path.startswith(ADMIN_PREFIX + "/")) and not user.is_admin:
            return await self._refuse(scope, receive, send, 403, path)
        scope.setdefault("state", {})["user"] = user
        return await self.app(scope, receive, send)

    async def _refuse(self, scope, receive, send, status: int, path: str):
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 4401 if status == 401 else 4403})
            return
        accepts_html = any(n == b"accept" and b"text/html" in v for n, v in scope.get("headers", []))
        if status == 401 and scope.get("method") == "GET" and accepts_html:
            response: Response = RedirectResponse(f"/login?next={quote(path)}", status_code=303)
        elif status == 403 and accepts_html:
            response = HTMLResponse(_page("Admins only", "<p>This page is for admins. "
                                          '<a href="/dashboard/">Back to the dashboard</a></p>'), status_code=403)
        else:
            response = JSONResponse({"error": "sign in required" if status == 401 else "admins only"},
                                    status_code=status)
        await response(scope, receive, send)


def _safe_next(target: str | None) -> str:
    """Only same-site absolute paths are followed after signing in (no open redirect)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/dashboard/"
    return target


def _page(title: str, body: str) -> str:
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(title)} · UniNote</title>
<style>body{{font-family:system-ui,sans-serif;max-width:26rem;margin:12vh auto;padding:0 1rem}}
label{{display:block;margin:.8rem 0 .2rem}}input{{width:100%;padding:.5rem;font-size:1rem;box-sizing:border-box}}
button{{margin-top:1rem;padding:.5rem 1.4rem;font-size:1rem}}.error{{color:#b00020}}</style></head>
<body><h1>{html.escape(title)}</h1>{body}</body></html>"""


def login_page(next_path: str, error: str | None = None) -> str:
    """The sign-in form (HTML)."""
    message = f'<p class="error" id="login-error">{html.escape(error)}</p>' if error else ""
    return _page("UniNote sign-in", f"""{message}<form method="post" action="/login">
<input type="hidden" name="next" value="{html.escape(next_path, quote=True)}">
<label for="username">Username</label><input id="username" name="username" autocomplete="username" required>
<label for="password">Password</label><input id="password" name="password" type="password"
 autocomplete="current-password" required>
<button type="submit" id="sign-in">Sign in</button></form>""")


def add_auth_routes(app: FastAPI, settings: Settings, sessions: sessionmaker[Session], codec: SessionCodec,
                    accounts: AccountCache) -> None:
    """GET/POST /login, GET /logout, GET /healthz on `app`."""

    @app.get("/login", response_class=HTMLResponse)
    def login_form(request: Request) -> HTMLResponse:
        return HTMLResponse(login_page(_safe_next(request.query_params.get("next"))))

    @app.post("/login")
    def login_submit(request: Request, username: str = Form(""), password: str = Form(""),
                     next: str = Form("/dashboard/")) -> Response:  # noqa: A002 (the form field's name)
        host = request.client.host if request.client else None
        user = moderation.sign_in(sessions, username, password, host)
        if user is None:
            return HTMLResponse(login_page(_safe_next(next), "Wrong username or password."), status_code=401)
        accounts.forget(user.username)
        response = RedirectResponse(_safe_next(next), status_code=303)
        response.set_cookie(COOKIE, codec.encode(user.username), max_age=codec.ttl_s, httponly=True,
                            samesite="lax", secure=settings.environment == "production", path="/")
        return response

    @app.get("/logout")
    def logout() -> Response:
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(COOKIE, path="/")
        return response

    @app.get("/healthz", response_class=PlainTextResponse)
    def healthz() -> str:
        return "ok"


def username_of(request) -> str | None:
    """Gradio's auth_dependency: the signed-in username the guard put on the request scope."""
    user = request.scope.get("state", {}).get("user")
    return user.username if user is not None else None

