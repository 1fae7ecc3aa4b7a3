"""API keys and bank records on SQLite and PostgreSQL: hashed keys, scopes, revocation; banks, entries,
memberships, hit counts, the PDQ index version and the delivery log."""

from __future__ import annotations

import pytest

from app.records import api_keys, banks
from app.records.banks import BankExistsError, DeliveryStatus, EntryOrigin
from app.records.db import transaction
from app.records.errors import RecordNotFoundError


def test_keys_authenticate_only_with_their_secret_until_revoked(record_sessions):
    with transaction(record_sessions) as s:
        key, token = api_keys.create_key(s, "svc", "index,check")
    assert key.scopes == (api_keys.Scope.CHECK, api_keys.Scope.INDEX) and token.startswith(f"un_{key.key_id}_")
    with record_sessions() as s:
        assert api_keys.authenticate(s, token) == key
        assert api_keys.authenticate(s, token[:-1] + ("A" if token[-1] != "A" else "B")) is None
        assert api_keys.authenticate(s, "un_000000000000_" + token[len("un_000000000000_"):]) is None
        assert api_keys.authenticate(s, "") is None
    with transaction(record_sessions) as s:
        revoked = api_keys.revoke_key(s, key.key_id)
        assert api_keys.revoke_key(s, key.key_id).revoked_at == revoked.revoked_at  # idempotent
    with record_sessions() as s:
        assert api_keys.authenticate(s, token) is None
        assert [k.key_id for k in api_keys.list_keys(s, include_revoked=False)] == []
    with pytest.raises(ValueError, match="unknown scope"), transaction(record_sessions) as s:
        api_keys.create_key(s, "x", "check,everything")
    with pytest.raises(RecordNotFoundError), transaction(record_sessions) as s:
        api_keys.revoke_key(s, "000000000000")


def test_banks_entries_memberships_and_hits(record_sessions):
    with transaction(record_sessions) as s:
        banks.create_bank(s, "claims", "risk", "remove", infringement_threshold=0.7)
        banks.create_bank(s, "brand", "allow", "allow")
        e1, created = banks.add_entry(s, "claims", origin=EntryOrigin.LIBRARY, added_by="alice", note_id="n1")
        assert created
        _, again = banks.add_entry(s, "claims", origin=EntryOrigin.LIBRARY, added_by="bob", note_id="n1")
        assert not again
        banks.add_entry(s, "brand", origin=EntryOrigin.LIBRARY, added_by="alice", note_id="n1")
        p, _ = banks.add_entry(s, "claims", origin=EntryOrigin.PDQ, added_by="alice", pdq_hex="AB" * 32, pdq_quality=90)
        assert p.pdq_hex == "ab" * 32
    with pytest.raises(BankExistsError), transaction(record_sessions) as s:
        banks.create_bank(s, "claims")
    for bad in ({"name": "Bad Name"}, {"name": "ok", "kind": "maybe"}, {"name": "ok", "webhook_url": "ftp://x"},
                {"name": "ok", "webhook_url": "http://x.test/h"},
                {"name": "ok", "duplicate_threshold": 0.5, "infringement_threshold": 0.9}):
        with pytest.raises(ValueError), transaction(record_sessions) as s:
            name = bad.pop("name")
            banks.create_bank(s, name, **bad)
    with pytest.raises(ValueError, match="pdq"), transaction(record_sessions) as s:
        banks.add_entry(s, "claims", origin=EntryOrigin.PDQ, added_by="a", pdq_hex="xyz")
    with transaction(record_sessions) as s:
        members = banks.memberships(s, ["n1", "n2"])
        assert sorted(b.name for b, _ in members["n1"]) == ["brand", "claims"] and "n2" not in members
        before = banks.pdq_index_version(s)
        banks.record_hits(s, [e1.id, e1.id])
        assert banks.pdq_index_version(s) == before  # hits do not invalidate the PDQ index
        banks.update_bank(s, "claims", enabled=False)
        assert banks.pdq_index_version(s) != before and banks.pdq_entries(s) == []
    with record_sessions() as s:
        claims = banks.get_bank(s, "claims")
        assert (claims.entries, claims.hits, claims.enabled) == (2, 1, False)
        assert [b.name for b in banks.list_banks(s)] == ["brand", "claims"]


def test_delivery_log_counts_attempts(record_sessions):
    with transaction(record_sessions) as s:
        bank = banks.create_bank(s, "hooked", webhook_url="http://127.0.0.1:9/h", webhook_secret="s" * 16)
        delivery_id = banks.create_delivery(s, bank.id, "http://127.0.0.1:9/h", "bank.match", {"a": 1})
        banks.record_attempt(s, delivery_id, status=DeliveryStatus.PENDING, status_code=503, error="HTTP 503")
        banks.record_attempt(s, delivery_id, status=DeliveryStatus.DELIVERED, status_code=200)
    with record_sessions() as s:
        d = banks.get_delivery(s, delivery_id)
        assert (d.status, d.attempts, d.last_status_code, d.last_error) == (DeliveryStatus.DELIVERED, 2, 200, None)
        assert d.delivered_at is not None and banks.count_deliveries(s)["delivered"] == 1
        assert banks.webhook_target(s, bank.id) == ("http://127.0.0.1:9/h", "s" * 16)
    with transaction(record_sessions) as s:
        assert banks.delete_bank(s, "hooked") == []
    with record_sessions() as s:
        assert banks.get_delivery(s, delivery_id) is None
