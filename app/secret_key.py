"""The dashboard's session-signing key (SECRET_KEY): how strong a key is, and the per-installation key kept
in $UNINOTE_HOME when none is configured.

Strength is an estimate of the key's entropy in bits, the smallest of three upper bounds:
- length × log2(alphabet): the alphabet is that of the character classes the key uses (hex digits alone
  count 16 symbols; mixed-case base64 / base64url symbols alone 64; otherwise digits 10, lower and upper case
  26 each, ASCII punctuation 33, anything else 128);
- length × 1.5 × Shannon entropy per character (catches repeated characters: `aaaa...` scores 0);
- 8 × zlib-compressed length (catches repeated patterns: `0123456789abcdef` × 4).
A random key of 32 bytes scores at least 256 bits in every usual spelling (`secrets.token_hex(32)`,
`secrets.token_urlsafe(32)`); MIN_KEY_BITS is 256, i.e. 32 bytes of entropy.

Stdlib only (secrets, zlib, math): app/settings.py imports this module.
"""

from __future__ import annotations

import collections
import math
import os
import secrets
import stat
import string
import zlib
from pathlib import Path

MIN_KEY_BITS = 256  # 32 bytes of entropy
KEY_FILE = "secret_key"  # HOME/secret_key, mode 0600: the installation's key when SECRET_KEY is unset
KNOWN_KEYS = {"dev-secret-key", "change-me", "changeme", "secret", "password", "uninote"}  # public values
GENERATE_HINT = "generate one with: python -c 'import secrets; print(secrets.token_urlsafe(32))'"
_ZLIB_OVERHEAD = len(zlib.compress(b"", 9))  # header + checksum bytes of an empty stream
_BASE64 = set(string.ascii_letters + string.digits + "+/-_=")  # base64 and base64url symbols


class WeakSecretKeyError(ValueError):
    """SECRET_KEY is too weak (or a public default) for where it is used; the message says what to do."""


class SecretKeyFileError(ValueError):
    """HOME/secret_key cannot be used (readable by others, not a regular file, unreadable)."""


def key_bits(key: str) -> float:
    """Estimated entropy of `key` in bits (see the module docstring); 0.0 for an empty key."""
    if not key:
        return 0.0
    counts = collections.Counter(key)
    shannon = -sum(c / len(key) * math.log2(c / len(key)) for c in counts.values())
    compressed = 8 * (len(zlib.compress(key.encode("utf-8"), 9)) - _ZLIB_OVERHEAD)
    return max(0.0, min(len(key) * math.log2(_alphabet(key)), len(key) * 1.5 * shannon, float(compressed)))


def _alphabet(key: str) -> int:
    if all(c in string.hexdigits[:16] for c in key) or all(c in "0123456789ABCDEF" for c in key):
        return 16
    if all(c in _BASE64 for c in key) and any(c.islower() for c in key) and any(c.isupper() for c in key):
        return 64  # a base64 / base64url spelling: a random one may lack digits, - and _ (1 in ~7,500 at 43 chars)
    classes = [(string.digits, 10), (string.ascii_lowercase, 26), (string.ascii_uppercase, 26),
               (string.punctuation, 33)]
    size = sum(n for chars, n in classes if any(c in chars for c in key))
    return size + (128 if any(ord(c) > 127 or c.isspace() for c in key) else 0)


def is_strong(key: str | None) -> bool:
    """True when `key` is not a known public value and has at least MIN_KEY_BITS bits of entropy."""
    return bool(key) and key.strip().lower() not in KNOWN_KEYS and key_bits(key) >= MIN_KEY_BITS


def check_strong(key: str | None, where: str) -> None:
    """Raises WeakSecretKeyError naming `where` (e.g. 'ENVIRONMENT=production') unless is_strong(key)."""
    if not is_strong(key):
        bits = key_bits(key or "")
        raise WeakSecretKeyError(f"SECRET_KEY is too weak for {where}: about {bits:.0f} bits of entropy, "
                                 f"at least {MIN_KEY_BITS} (32 random bytes) needed; {GENERATE_HINT}")


def installation_key(home: Path) -> str:
    """The installation's key in HOME/secret_key, created on first use (32 random bytes, URL-safe base64,
    file mode 0600, created atomically so two processes starting together agree on one key).

    Raises SecretKeyFileError when the file is not a regular file owned by this user with no group/other
    permissions, or holds a weak key (someone wrote it by hand).
    """
    home = Path(home)
    home.mkdir(parents=True, exist_ok=True)
    path = home / KEY_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    except FileExistsError:
        return _read_key_file(path)
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(secrets.token_urlsafe(32) + "\n")
    return _read_key_file(path)


def _read_key_file(path: Path) -> str:
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError as e:
        raise SecretKeyFileError(f"cannot read the dashboard key {path}: {e.strerror}") from None
    with os.fdopen(fd, encoding="ascii", errors="replace") as f:
        info = os.fstat(f.fileno())
        if not stat.S_ISREG(info.st_mode) or info.st_mode & 0o077 or info.st_uid != os.geteuid():
            raise SecretKeyFileError(f"the dashboard key {path} must be a file of this user with mode 0600 "
                                     f"(it is {stat.filemode(info.st_mode)}): run `chmod 600 {path}` or delete it "
                                     "to get a new key (everyone is signed out)")
        key = f.read(4096).strip()
    if not is_strong(key):
        raise SecretKeyFileError(f"the dashboard key in {path} is too weak; delete the file to get a new one")
    return key
