"""Where a bank's webhook may deliver: an http(s) URL whose host is a public address (the SSRF guard).

A webhook URL is chosen by whoever may configure a bank (an `admin` API key, `uninote bank`), and the
delivery is made from inside the deployment, where the URL could reach what the outside cannot: the
loopback interface (the API itself, Redis, PostgreSQL), private networks, link-local addresses and the
cloud metadata services (169.254.169.254: instance credentials). So (OWASP SSRF prevention cheat sheet):
- only `http` and `https`, a host, no other scheme;
- every address the host resolves to must be public (`ipaddress`'s is_global, IPv4-mapped IPv6 unwrapped):
  loopback, private (RFC 1918, fc00::/7), link-local, shared (100.64/10), multicast, reserved and
  unspecified addresses are refused, unless WEBHOOK_ALLOW_PRIVATE_ADDRESSES=true (a receiver on the same
  host or network, as in the tests); cloud metadata addresses are refused even then;
- checked when a bank's webhook is set (Banks.create/update) and again at every delivery, which then
  connects to the very address it checked (the Host header and TLS SNI keep the name), so a DNS answer
  that changes after the check (DNS rebinding) is not followed; redirects are never followed.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

METADATA_ADDRESSES = frozenset(ipaddress.ip_address(a) for a in (
    "169.254.169.254",  # AWS, GCP, Azure, OpenStack, DigitalOcean instance metadata
    "169.254.170.2",  # AWS ECS task metadata
    "fd00:ec2::254",  # AWS instance metadata over IPv6
    "100.100.100.200",  # Alibaba Cloud metadata
))


class WebhookTargetError(ValueError):
    """A webhook URL that may not be delivered to; the message starts with the field name `webhook_url:`."""


@dataclass(frozen=True)
class WebhookTarget:
    """A checked webhook URL: its host name, port and the public address a delivery connects to."""

    url: str
    scheme: str
    host: str
    port: int
    address: str


def refusal(address: IpAddress, allow_private: bool) -> str | None:
    """Why a delivery may not connect to `address` (None = it may)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address in METADATA_ADDRESSES:
        return "a cloud metadata address"
    if allow_private:
        return None
    for test, what in (("is_loopback", "a loopback address"), ("is_link_local", "a link-local address"),
                       ("is_multicast", "a multicast address"), ("is_unspecified", "an unspecified address"),
                       ("is_private", "a private address")):
        if getattr(address, test):
            return what
    return None if address.is_global else "not a public address"


def _addresses(host: str, port: int) -> list[IpAddress]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as e:
        raise WebhookTargetError(f"webhook_url: host {host!r} does not resolve ({e})") from None
    return list(dict.fromkeys(ipaddress.ip_address(info[4][0].split("%", 1)[0]) for info in infos))


def resolve_target(url: str, allow_private: bool = False) -> WebhookTarget:
    """Check `url` (module docstring) and resolve it. Raises WebhookTargetError naming what is wrong."""
    url = str(url).strip()
    try:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise WebhookTargetError(f"webhook_url: not a URL: {url[:200]!r}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise WebhookTargetError(f"webhook_url: expected an http(s) URL with a host, got {url[:200]!r}")
    host = parts.hostname
    addresses = _addresses(host, port)
    for address in addresses:
        why = refusal(address, allow_private)
        if why is not None:
            hint = "" if why == "a cloud metadata address" else (
                " (set WEBHOOK_ALLOW_PRIVATE_ADDRESSES=true for a receiver inside your own network)")
            shown = host if str(address) == host else f"{host} ({address})"
            raise WebhookTargetError(f"webhook_url: {shown} is {why}: refused{hint}")
    return WebhookTarget(url, parts.scheme, host, port, str(addresses[0]))


def check_webhook_url(url: str, allow_private: bool = False) -> str:
    """The URL, stripped, when a webhook may deliver to it. Raises WebhookTargetError."""
    return resolve_target(url, allow_private).url
