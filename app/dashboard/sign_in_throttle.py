"""Sign-in throttling: failed attempts per account and per client address, with back-off, and a bound on
the password hashes computed at once.

- Counting: the `limits` library's moving windows (in-process memory). Every failed sign-in counts
  against its account (the name tried, hashed: attacker-chosen names cost 32 bytes each and expire with
  their window) and against its client address. Several windows per key ("5/minute;20/hour;100/day")
  are the back-off: the wait grows from about a minute to an hour to a day as the failures go on.
  A right password while throttled is refused like a wrong one (not even checked); a successful
  sign-in clears its account's counts (not its address's).
- Hashing: argon2id costs 64 MiB and ~0.1 s per attempt (app/records/users.py); at most
  SIGN_IN_CONCURRENCY attempts run at once (an anyio CapacityLimiter: the waiting requests are
  coroutines, not threads), and when MAX_WAITING already wait the request is answered 503 at once.
  The throttle is checked again inside the limiter, so a burst of parallel attempts cannot slip past it.
"""

from __future__ import annotations

import hashlib
import math
import time

import anyio
from limits import RateLimitItem, parse, parse_many
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

MAX_WAITING = 64  # sign-in requests waiting for a hash slot before more are answered 503
AUDIT_EVERY = "1/minute"  # at most one `sign_in_throttled` audit entry per key and minute


def _parse(text: str, name: str) -> list[RateLimitItem]:
    try:
        items = parse_many(text)
    except ValueError as e:
        raise ValueError(f"{name}={text!r}: not a `limits` rate list like '5/minute;20/hour' ({e})") from None
    if not items:
        raise ValueError(f"{name}={text!r}: give at least one rate like '5/minute'")
    return items


def account_key(username: object) -> str:
    """The counting key of an account name: SHA-256 of the stripped, lower-cased name (32 hex digits)."""
    text = username.strip().lower() if isinstance(username, str) else ""
    return hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()[:32]


class SignInThrottle:
    """Failed-attempt counts per account and per address (see the module docstring).

    account_limits / address_limits: `limits` rate lists (settings SIGN_IN_ACCOUNT_LIMITS,
    SIGN_IN_ADDRESS_LIMITS); concurrency: password hashes at once (SIGN_IN_CONCURRENCY).
    Raises ValueError naming the setting for a rate list `limits` cannot parse."""

    def __init__(self, account_limits: str, address_limits: str, concurrency: int):
        self.account_items = _parse(account_limits, "SIGN_IN_ACCOUNT_LIMITS")
        self.address_items = _parse(address_limits, "SIGN_IN_ADDRESS_LIMITS")
        self._limiter = MovingWindowRateLimiter(MemoryStorage())
        self._audit_item = parse(AUDIT_EVERY)
        self.hashing = anyio.CapacityLimiter(concurrency)

    def _keys(self, username: object, address: str | None):
        return ((self.account_items, ("account", account_key(username))),
                (self.address_items, ("address", address or "?")))

    def retry_after(self, username: object, address: str | None) -> tuple[int, str] | None:
        """(seconds to wait, "account" or "address") when an attempt must be refused unchecked, else None."""
        worst: tuple[float, str] | None = None
        for items, key in self._keys(username, address):
            for item in items:
                if not self._limiter.test(item, *key):
                    wait = self._limiter.get_window_stats(item, *key).reset_time - time.time()
                    if worst is None or wait > worst[0]:
                        worst = (wait, key[0])
        return None if worst is None else (max(1, math.ceil(worst[0])), worst[1])

    def failed(self, username: object, address: str | None) -> None:
        """Count one failed attempt against the account and the address."""
        for items, key in self._keys(username, address):
            for item in items:
                self._limiter.hit(item, *key)

    def succeeded(self, username: object) -> None:
        """Clear the account's counts (a right password after a few typos starts afresh)."""
        for item in self.account_items:
            self._limiter.clear(item, "account", account_key(username))

    def first_refusal(self, kind: str, key: str) -> bool:
        """True at most once a minute per (kind, key): whether to write a `sign_in_throttled` entry."""
        return self._limiter.hit(self._audit_item, "audit", kind, key)

    def busy(self) -> bool:
        """True when MAX_WAITING sign-ins already wait for a hash slot."""
        return self.hashing.statistics().tasks_waiting >= MAX_WAITING
