"""The upload gate: a dashboard request may name only files its own session uploaded.

Why: a Gradio event's inputs arrive as JSON in which a file is `{"path": ..., "meta": {"_type":
"gradio.FileData"}}`, and the path is the client's word. Gradio 6.31 preprocesses every input of every
event (whatever the component: a Textbox slot too) with processing_utils.async_move_files_to_cache, which
copies the named file into its cache (opening and reading it) before any component or handler sees it.
Its own check (`_check_allowed`: only the upload folder) is skipped unless `Blocks.has_launched`, which
only `Blocks.launch()` sets, never `gr.mount_gradio_app()`. So `/var/tmp/secret.jpg` was copied and shown
as evidence, and the live `uninote.db` was opened and closed outside SQLite (which drops the process's
POSIX locks on it: another process's SQLite then deleted the dashboard's -wal/-shm).

What: pure ASGI middleware in front of the mounted Gradio apps (behind SignInGuard, which puts the user
and the session key in scope["state"]):
- `POST <mount>/gradio_api/upload`: passed to Gradio; the paths Gradio answers (the files it stored in the
  upload folder) are remembered for this session (UploadRegistry).
- every other POST/PUT/PATCH/DELETE under a mount: the body (at most MAX_BODY bytes) must be JSON; every
  object in it with a "path" key must name a file this session uploaded (under "event_data", where Gradio
  echoes back its own outputs and never opens them: a file inside the upload folder). Anything else is
  refused 403 before Gradio reads the body, and written to the audit log (`file_refused`, at most
  AUDIT_PER_MINUTE entries a minute per session).
- `GET <mount>/gradio_api/file=PATH`: PATH must resolve inside the upload folder (Gradio's own rule also
  admits its examples cache and static paths; the dashboard has neither).
Paths are compared after os.path.realpath, so `..` and symlinks cannot leave the folder.
"""

from __future__ import annotations

import json
import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

import anyio
from limits import parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter
from starlette.responses import JSONResponse

from app.dashboard.csrf import SAFE_METHODS

MAX_BODY = 4 * 1024 * 1024  # bytes of a Gradio JSON request (event inputs are text, numbers, file references)
MAX_UPLOAD_ANSWER = 1024 * 1024  # bytes of Gradio's upload answer kept to read the stored paths
AUDIT_PER_MINUTE = "10/minute"  # file_refused entries per session (the refusals themselves are not limited)
UPLOAD_ROUTE = "/gradio_api/upload"
FILE_ROUTES = ("/gradio_api/file=", "/gradio_api/file/")


def inside(path: str, folder: Path) -> bool:
    """Whether `path` resolves (symlinks and `..` followed) to `folder` or below it. Never opens the file."""
    try:
        real = os.path.realpath(path)
    except (OSError, ValueError):  # a NUL byte, a loop of links
        return False
    root = os.path.realpath(folder)
    return real == root or real.startswith(root + os.sep)


class UploadRegistry:
    """session key -> real paths of the files Gradio stored for that session's uploads. Bounded: the oldest
    sessions (MAX_SESSIONS) and each session's oldest files (MAX_FILES) are forgotten. Thread-safe."""

    MAX_SESSIONS = 10_000
    MAX_FILES = 512

    def __init__(self) -> None:
        self._files: OrderedDict[str, OrderedDict[str, None]] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, session_key: str, paths: list[str]) -> None:
        with self._lock:
            files = self._files.setdefault(session_key, OrderedDict())
            self._files.move_to_end(session_key)
            for p in paths:
                files[os.path.realpath(p)] = None
            while len(files) > self.MAX_FILES:
                files.popitem(last=False)
            while len(self._files) > self.MAX_SESSIONS:
                self._files.popitem(last=False)

    def has(self, session_key: str, path: str) -> bool:
        try:
            real = os.path.realpath(path)
        except (OSError, ValueError):
            return False
        with self._lock:
            return real in self._files.get(session_key, ())

    def forget(self, session_key: str) -> None:
        with self._lock:
            self._files.pop(session_key, None)


def file_paths(body):
    """(path value, under event_data) for every object with a "path" key in a parsed JSON request body;
    under event_data: inside the body's top-level "event_data" value."""
    stack = [(v, k == "event_data") for k, v in body.items()] if isinstance(body, dict) else [(body, False)]
    if isinstance(body, dict) and "path" in body:
        yield body["path"], False
    while stack:
        item, in_event = stack.pop()
        if isinstance(item, dict):
            if "path" in item:
                yield item["path"], in_event
            stack.extend((v, in_event) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, in_event) for v in item)


class UploadGate:
    """ASGI middleware (see the module docstring). mounts: the Gradio mount paths ("/dashboard", "/admin");
    upload_root: Gradio's upload folder; on_refused(user, path, route, client): writes the audit entry
    (called in a worker thread)."""

    def __init__(self, app, *, mounts: tuple[str, ...], upload_root: Path, registry: UploadRegistry,
                 on_refused: Callable[[object, str, str, str | None], None]):
        self.app, self.mounts, self.upload_root = app, mounts, Path(upload_root)
        self.registry, self.on_refused = registry, on_refused
        self._audit_limiter, self._audit_item = MovingWindowRateLimiter(MemoryStorage()), parse(AUDIT_PER_MINUTE)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope.get("path", "")
        mount = next((m for m in self.mounts if path.startswith(m + "/")), None)
        if mount is None:
            return await self.app(scope, receive, send)
        route, method = path[len(mount):], scope.get("method", "GET")
        state = scope.get("state", {})
        session_key = state.get("session_key")
        if route.rstrip("/") == UPLOAD_ROUTE and method == "POST":
            return await self.app(scope, receive, self._remember_uploads(send, session_key))
        for prefix in FILE_ROUTES:
            if route.startswith(prefix):
                served = route[len(prefix):]
                if not inside(served, self.upload_root):
                    return await self._refuse(scope, receive, send, served, route)
        if method in SAFE_METHODS:
            return await self.app(scope, receive, send)
        body, too_big = await _read_body(receive, MAX_BODY)
        if too_big:
            return await JSONResponse({"error": f"request body over {MAX_BODY} bytes"}, 413)(scope, receive, send)
        if body:
            content_type = dict(scope.get("headers", [])).get(b"content-type", b"").split(b";")[0].strip()
            if content_type != b"application/json":
                return await JSONResponse({"error": "only JSON requests are accepted here"}, 415)(
                    scope, receive, send)
            try:
                data = json.loads(body)
            except (ValueError, RecursionError):
                return await JSONResponse({"error": "the request body is not valid JSON"}, 400)(scope, receive, send)
            for value, in_event in file_paths(data):
                if not self._allowed(value, in_event, session_key):
                    return await self._refuse(scope, receive, send, value, route)
        return await self.app(scope, _replay(body, receive), send)

    def _allowed(self, value, in_event_data: bool, session_key: str | None) -> bool:
        if not isinstance(value, str) or not value:
            return False
        if in_event_data:
            return inside(value, self.upload_root)
        return session_key is not None and self.registry.has(session_key, value)

    def _remember_uploads(self, send, session_key: str | None):
        status, chunks = [0], []

        async def wrapped(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            elif message["type"] == "http.response.body" and status[0] == 200 and session_key is not None:
                if sum(map(len, chunks)) < MAX_UPLOAD_ANSWER:
                    chunks.append(message.get("body", b""))
                if not message.get("more_body", False):
                    try:
                        answer = json.loads(b"".join(chunks))
                    except ValueError:
                        answer = []
                    if isinstance(answer, list):
                        stored = [p for p in answer if isinstance(p, str) and inside(p, self.upload_root)]
                        self.registry.add(session_key, stored)
            await send(message)

        return wrapped

    async def _refuse(self, scope, receive, send, value, route: str):
        shown = value if isinstance(value, str) else json.dumps(value)[:200]
        state = scope.get("state", {})
        user, key = state.get("user"), state.get("session_key") or "?"
        client = scope.get("client")[0] if scope.get("client") else None
        if user is not None and self._audit_limiter.hit(self._audit_item, "file_refused", key):
            await anyio.to_thread.run_sync(self.on_refused, user, shown[:500], route[:200], client)
        response = JSONResponse({"error": f"file not uploaded in this session: {shown[:200]}"}, 403)
        await response(scope, receive, send)


async def _read_body(receive, limit: int) -> tuple[bytes, bool]:
    """The whole request body, or (b"", True) as soon as it passes `limit` bytes."""
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return b"".join(chunks), False
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return b"", True
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks), False


def _replay(body: bytes, receive):
    """A receive() that hands the already-read body to the app once, then waits on the real channel
    (so a disconnect still reaches it)."""
    sent = [False]

    async def replay():
        if not sent[0]:
            sent[0] = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
