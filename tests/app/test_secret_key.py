"""app/secret_key.py and where it is enforced: the entropy estimate, the per-installation key file, the
production settings and the dashboard's bind check."""

from __future__ import annotations

import os
import secrets
import stat

import pytest
from pydantic import ValidationError

from app.dashboard.server import check_bind, is_loopback
from app.secret_key import (KEY_FILE, MIN_KEY_BITS, SecretKeyFileError, WeakSecretKeyError, installation_key,
                            is_strong, key_bits)
from app.settings import Settings


@pytest.mark.parametrize("key", ["aaaaaaaaaaaaaaaa", "a" * 100, "dev-secret-key", "0123456789abcdef" * 4,
                                 "0123456789abcdef0123456789abcdef", "change-me", "", "Tr0ub4dor&3"])
def test_weak_keys_score_under_32_bytes(key):
    assert not is_strong(key), (key, key_bits(key))


def test_random_32_byte_keys_pass_in_every_usual_spelling():
    for _ in range(200):
        for key in (secrets.token_hex(32), secrets.token_urlsafe(32), secrets.token_urlsafe(48)):
            assert key_bits(key) >= MIN_KEY_BITS and is_strong(key), key
    assert key_bits(secrets.token_hex(16)) < MIN_KEY_BITS  # 16 random bytes are not enough


def test_the_installation_key_is_made_once_with_mode_0600(tmp_path):
    key = installation_key(tmp_path / "home")
    path = tmp_path / "home" / KEY_FILE
    assert is_strong(key) and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert installation_key(tmp_path / "home") == key
    assert installation_key(tmp_path / "other") != key  # per installation
    path.chmod(0o644)
    with pytest.raises(SecretKeyFileError, match="chmod 600"):
        installation_key(tmp_path / "home")
    path.chmod(0o600)
    path.write_text("aaaaaaaaaaaaaaaa\n")
    with pytest.raises(SecretKeyFileError, match="too weak"):
        installation_key(tmp_path / "home")
    path.unlink()
    os.symlink(tmp_path / "other" / KEY_FILE, path)  # a link planted in HOME is not followed
    with pytest.raises(SecretKeyFileError):
        installation_key(tmp_path / "home")


def test_production_refuses_weak_or_missing_keys():
    for key in ("aaaaaaaaaaaaaaaa", "dev-secret-key", secrets.token_hex(16)):
        with pytest.raises(ValidationError, match="SECRET_KEY is too weak"):
            Settings(_env_file=None, environment="production", secret_key=key)
    with pytest.raises(ValidationError, match="SECRET_KEY must be set"):
        Settings(_env_file=None, environment="production")
    assert Settings(_env_file=None, environment="production", secret_key=secrets.token_urlsafe(32))


def test_a_weak_key_may_serve_loopback_only(tmp_path):
    weak = Settings(_env_file=None, UNINOTE_HOME=tmp_path, secret_key="aaaaaaaaaaaaaaaa")
    for host in ("127.0.0.1", "localhost", "::1", "127.0.0.2"):
        assert is_loopback(host)
        check_bind(host, weak)
    for host in ("0.0.0.0", "::", "192.168.1.10", "dashboard.example.com"):
        assert not is_loopback(host)
        with pytest.raises(WeakSecretKeyError, match="not loopback"):
            check_bind(host, weak)
    check_bind("0.0.0.0", Settings(_env_file=None, UNINOTE_HOME=tmp_path))  # unset: the strong installation key
    check_bind("0.0.0.0", Settings(_env_file=None, UNINOTE_HOME=tmp_path, secret_key=secrets.token_hex(32)))


def test_a_urlsafe_key_that_happens_to_hold_only_letters_is_strong():
    """secrets.token_urlsafe(32) with no digit, '-' or '_' (about 1 key in 7,500): still 32 random bytes."""
    key = "idXvCMtCQIEqyWGfJuKLxjvnsNOulMjlCDcXcIOSRVI"  # such a key, seen in CI
    assert is_strong(key), key_bits(key)
