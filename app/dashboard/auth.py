"""Who is signed in: the session cookie, the installation's signing key, and an ASGI guard in front of every
route (the Gradio pages, their /gradio_api/... routes, uploads and files).

- Cookie `uninote_session` = token "." base64url(HMAC-SHA256(SECRET_KEY, token)): the token is a random
  server-side session id (app/records/web_sessions.py; the database keeps its SHA-256 only), the MAC
  refuses forged values before the database is asked. HttpOnly, SameSite=Lax, Secure when
  ENVIRONMENT=production. A session ends at sign-out, after SESSION_TTL_S, and when its account's
  password, role or active flag changes; every request reads it again (one indexed query), so an ended
  session is refused at once.
- SECRET_KEY unset: the installation's random key in HOME/secret_key (app/secret_key.py).
- `SignInGuard` (pure ASGI middleware, so Gradio's streaming responses pass untouched): a state-changing
  request from another origin is refused 403 (app/dashboard/csrf.py); only /login, /logout and /healthz
  work without a valid session: pages redirect to /login, every other request (API routes, files,
  websockets) gets 401; under /admin the account must be an active admin, else 403. The signed-in User
  and the session's key go into scope["state"] ("user", "session_key").
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from urllib.parse import quote

import anyio
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from sqlalchemy.orm import Session, sessionmaker

from app.dashboard.csrf import needs_check, same_origin
from app.dashboard.pages import page
from app.records import web_sessions
from app.records.web_sessions import WebSession
from app.secret_key import installation_key
from app.settings import Settings

COOKIE = "uninote_session"
SESSION_TTL_S = 12 * 3600  # a sign-in lasts a working day
PUBLIC_PATHS = {"/login", "/logout", "/healthz"}
ADMIN_PREFIX = "/admin"


def session_secret(settings: Settings) -> str:
    """SECRET_KEY, else the installation's key (HOME/secret_key, created on first use).
    Raises app.secret_key.SecretKeyFileError when that file is unsafe to use."""
    return settings.secret_key or installation_key(settings.home)


@dataclass(frozen=True)
class SessionCodec:
    """Signs and verifies session cookie values with `secret` (HMAC-SHA256); ttl_s: the cookie's max age."""

    secret: str
    ttl_s: int = SESSION_TTL_S

    def _mac(self, token: str) -> str:
        digest = hmac.new(self.secret.encode("utf-8"), b"uninote-session:" + token.encode("utf-8", "replace"),
                          hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")

    def encode(self, token: str) -> str:
        """The cookie value of a session token."""
        return f"{token}.{self._mac(token)}"

    def decode(self, value: str | None) -> str | None:
        """The token of a correctly signed cookie value, else None (whether it is a live session is the
        database's answer: web_sessions.find_session)."""
        if not value or value.count(".") != 1 or len(value) > 200:
            return None
        token, mac = value.split(".")
        return token if token and hmac.compare_digest(mac, self._mac(token)) else None


def cookie_value(headers) -> str | None:
    """The session cookie in an ASGI header list, else None."""
    for name, value in headers:
        if name == b"cookie":
            for part in value.decode("latin-1").split(";"):
                key, _, val = part.strip().partition("=")
                if key == COOKIE:
                    return val
    return None


class SignInGuard:
    """ASGI middleware (see the module docstring) over `app`; sessions: the records database."""

    def __init__(self, app, codec: SessionCodec, sessions: sessionmaker[Session]):
        self.app, self.codec, self.sessions = app, codec, sessions

    def _find(self, token: str) -> WebSession | None:
        with self.sessions() as s:
            return web_sessions.find_session(s, token)

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        path = scope.get("path", "")
        if needs_check(scope) and not same_origin(scope):
            return await self._refuse(scope, receive, send, 403, path, "cross-site request refused")
        if path in PUBLIC_PATHS:
            return await self.app(scope, receive, send)
        token = self.codec.decode(cookie_value(scope.get("headers", [])))
        web = await anyio.to_thread.run_sync(self._find, token) if token else None
        if web is None:
            return await self._refuse(scope, receive, send, 401, path, "sign in required")
        if (path == ADMIN_PREFIX or path.startswith(ADMIN_PREFIX + "/")) and not web.user.is_admin:
            return await self._refuse(scope, receive, send, 403, path, "admins only")
        state = scope.setdefault("state", {})
        state["user"], state["session_key"] = web.user, web.key
        return await self.app(scope, receive, send)

    async def _refuse(self, scope, receive, send, status: int, path: str, error: str):
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 4000 + status})
            return
        accepts_html = any(n == b"accept" and b"text/html" in v for n, v in scope.get("headers", []))
        if status == 401 and scope.get("method") == "GET" and accepts_html:
            response: Response = RedirectResponse(f"/login?next={quote(path)}", status_code=303)
        elif error == "admins only" and accepts_html:
            response = HTMLResponse(page("Admins only", "<p>This page is for admins. "
                                         '<a href="/dashboard/">Back to the dashboard</a></p>'), status_code=403)
        else:
            response = JSONResponse({"error": error}, status_code=status)
        await response(scope, receive, send)


def username_of(request) -> str | None:
    """Gradio's auth_dependency: the signed-in username the guard put on the request scope."""
    user = request.scope.get("state", {}).get("user")
    return user.username if user is not None else None
