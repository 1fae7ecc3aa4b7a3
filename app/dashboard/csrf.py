"""Cross-site request forgery: a state-changing request must come from a page of the dashboard itself.

OWASP's "verifying origin with standard headers": browsers send `Origin` on every POST (and on websocket
handshakes), `Referer` on most; a page on another site (or another port of localhost, which SameSite=Lax
cookies do not tell apart) cannot forge either. A request whose Origin, else Referer, names another host
or port, or that sends neither, is refused. Hosts are compared as (host, port) with the default port of
the Origin's scheme, so a TLS proxy in front (Origin https://host, Host header `host`) passes.
"""

from __future__ import annotations

from urllib.parse import urlsplit

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def needs_check(scope) -> bool:
    """True for a websocket handshake and for every HTTP method but GET, HEAD and OPTIONS."""
    return scope["type"] == "websocket" or scope.get("method", "GET") not in SAFE_METHODS


def same_origin(scope) -> bool:
    """Whether the request's Origin (else Referer) header names the host it was sent to (its Host header)."""
    headers = {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in scope.get("headers", [])}
    host = headers.get("host")
    source = headers.get("origin") or headers.get("referer")
    if not host or not source or source == "null":
        return False
    try:
        origin = urlsplit(source)
        default = DEFAULT_PORTS.get(origin.scheme)
        if default is None or not origin.hostname:
            return False
        target = urlsplit(f"//{host}")
        return (origin.hostname, origin.port or default) == (target.hostname, target.port or default)
    except ValueError:  # a port that is not a number, a malformed IPv6 address
        return False
