"""Bank webhooks: the signed notification of a match, delivered (and logged) by one plain function that the
Celery task workers/webhook_tasks.py wraps.

A delivery POSTs the event's JSON (app.banks.match_event, plus `delivery_id`) as compact UTF-8 with headers
    X-UniNote-Event: bank.match
    X-UniNote-Delivery: <delivery id>           (the same on every retry of one delivery: receivers dedupe on it)
    X-UniNote-Signature-256: sha256=<hex HMAC-SHA256 of the raw body with the bank's webhook secret>
(GitHub's scheme). A receiver recomputes the HMAC over the bytes it received and compares in constant time
(`verify_signature`). 2xx = delivered; 408, 429, 5xx and connection errors are retried with exponential
backoff; any other status fails the delivery at once. Every attempt is counted in the delivery log
(app.records.banks.WebhookDeliveryRow).

Before every attempt the URL is checked again and resolved (app/webhook_targets.py, the SSRF guard): a
refused target fails the delivery without a request; otherwise the request connects to the address that
was checked (Host header and TLS SNI keep the URL's name), never follows a redirect and ignores proxy
environment variables.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from enum import StrEnum

import httpx
from sqlalchemy.orm import Session, sessionmaker

from app.records import banks as records
from app.records.banks import DeliveryStatus
from app.records.db import transaction
from app.records.errors import RecordNotFoundError
from app.webhook_targets import WebhookTarget, WebhookTargetError, resolve_target

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-UniNote-Signature-256"
EVENT_HEADER = "X-UniNote-Event"
DELIVERY_HEADER = "X-UniNote-Delivery"
RETRYABLE_STATUS = {408, 429}


class Outcome(StrEnum):
    DELIVERED = "delivered"
    RETRY = "retry"  # a transient failure: try again later
    FAILED = "failed"  # permanent (a 4xx, no secret, or the last try)


def sign(secret: str, body: bytes) -> str:
    """'sha256=<hex>': HMAC-SHA256 of `body` with `secret` (UTF-8)."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def verify_signature(secret: str, body: bytes, header: str | None) -> bool:
    """True when `header` (X-UniNote-Signature-256) is the signature of `body` (constant-time compare)."""
    return bool(header) and hmac.compare_digest(sign(secret, body), header)


def deliver(sessions: sessionmaker[Session], delivery_id: int, *, timeout_s: float, final: bool,
            allow_private: bool = False) -> Outcome:
    """Make one attempt at a delivery and log it. final: this is the last try (a transient failure then
    fails the delivery). allow_private: WEBHOOK_ALLOW_PRIVATE_ADDRESSES (module docstring). A delivery
    already delivered is not sent again (idempotent under redelivery).
    Raises RecordNotFoundError for an unknown delivery."""
    with sessions() as s:
        delivery = records.get_delivery(s, delivery_id)
        bank_id = records.delivery_bank_id(s, delivery_id)
        target = records.webhook_target(s, bank_id) if bank_id is not None else None
    if delivery is None:
        raise RecordNotFoundError("webhook delivery", delivery_id)
    if delivery.status == DeliveryStatus.DELIVERED:
        return Outcome.DELIVERED
    if target is None:
        _record(sessions, delivery_id, DeliveryStatus.FAILED, None, "the bank has no webhook (secret) any more")
        return Outcome.FAILED
    body = json.dumps(delivery.payload | {"delivery_id": delivery_id}, ensure_ascii=False, sort_keys=True,
                      separators=(",", ":")).encode("utf-8")
    headers = {"Content-Type": "application/json", EVENT_HEADER: delivery.event, DELIVERY_HEADER: str(delivery_id),
               SIGNATURE_HEADER: sign(target[1], body), "User-Agent": "UniNote-Webhook/1"}
    try:
        checked = resolve_target(delivery.url, allow_private)
    except WebhookTargetError as e:
        _record(sessions, delivery_id, DeliveryStatus.FAILED, None, f"not sent: {e}")
        return Outcome.FAILED
    try:
        response = _post(checked, body, headers, timeout_s)
    except httpx.HTTPError as e:
        return _transient(sessions, delivery_id, None, f"{type(e).__name__}: {e}", final)
    if 200 <= response.status_code < 300:
        _record(sessions, delivery_id, DeliveryStatus.DELIVERED, response.status_code, None)
        return Outcome.DELIVERED
    reason = f"HTTP {response.status_code} from the receiver"
    if response.status_code in RETRYABLE_STATUS or response.status_code >= 500:
        return _transient(sessions, delivery_id, response.status_code, reason, final)
    _record(sessions, delivery_id, DeliveryStatus.FAILED, response.status_code, reason)
    return Outcome.FAILED


def _post(target: WebhookTarget, body: bytes, headers: dict[str, str], timeout_s: float) -> httpx.Response:
    """POST to the checked address of `target` (the name kept in Host and, for https, in SNI and the
    certificate check)."""
    url = httpx.URL(target.url)
    extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
    with httpx.Client(timeout=timeout_s, follow_redirects=False, trust_env=False) as client:
        request = client.build_request("POST", url.copy_with(host=target.address), content=body,
                                       headers=headers | {"Host": url.netloc.decode("ascii")}, extensions=extensions)
        return client.send(request)


def _transient(sessions, delivery_id: int, code: int | None, reason: str, final: bool) -> Outcome:
    status = DeliveryStatus.FAILED if final else DeliveryStatus.PENDING
    _record(sessions, delivery_id, status, code, f"gave up: {reason}" if final else reason)
    return Outcome.FAILED if final else Outcome.RETRY


def _record(sessions, delivery_id: int, status: DeliveryStatus, code: int | None, error: str | None) -> None:
    with transaction(sessions) as s:
        records.record_attempt(s, delivery_id, status=status, status_code=code, error=error)
