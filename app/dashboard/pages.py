"""The dashboard's few plain HTML pages (sign-in, sign-out, refusals); everything else is Gradio."""

from __future__ import annotations

import html


def page(title: str, body: str) -> str:
    """A minimal HTML page; `body` is HTML the caller escaped."""
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(title)} · UniNote</title>
<style>body{{font-family:system-ui,sans-serif;max-width:26rem;margin:12vh auto;padding:0 1rem}}
label{{display:block;margin:.8rem 0 .2rem}}input{{width:100%;padding:.5rem;font-size:1rem;box-sizing:border-box}}
button{{margin-top:1rem;padding:.5rem 1.4rem;font-size:1rem}}.error{{color:#b00020}}</style></head>
<body><h1>{html.escape(title)}</h1>{body}</body></html>"""


def login_page(next_path: str, error: str | None = None) -> str:
    """The sign-in form, with `error` above it."""
    message = f'<p class="error" id="login-error">{html.escape(error)}</p>' if error else ""
    return page("UniNote sign-in", f"""{message}<form method="post" action="/login">
<input type="hidden" name="next" value="{html.escape(next_path, quote=True)}">
<label for="username">Username</label><input id="username" name="username" autocomplete="username" required>
<label for="password">Password</label><input id="password" name="password" type="password"
 autocomplete="current-password" required>
<button type="submit" id="sign-in">Sign in</button></form>""")


def logout_page() -> str:
    """What GET /logout shows: a button that signs out by POST (a link or an image cannot sign anyone out)."""
    return page("Sign out", """<form method="post" action="/logout">
<button type="submit" id="sign-out">Sign out</button></form><p><a href="/dashboard/">Back to the dashboard</a></p>""")
