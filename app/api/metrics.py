"""Prometheus metrics of the API (prometheus-client), in one registry per app, served at GET /metrics.

    uninote_api_requests_total{method, route, status}     requests answered
    uninote_api_request_seconds{route}                     latency per route (histogram)
    uninote_checks_total{verdict}                          checks by report verdict
    uninote_check_stage_seconds{stage}                     check latency by stage: upload (receive and
                                                           validate images), audit (encode + search +
                                                           score), banks (bank grouping, PDQ lists), save
    uninote_bank_hits_total{bank}                          checks that hit a bank
    uninote_errors_total{kind, status}                     error responses by kind (app/api/errors.py)
    uninote_queue_depth{queue}                             messages waiting per Celery queue (broker mode)
    uninote_webhook_deliveries{status}                     the delivery log by status
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily

log = logging.getLogger(__name__)
STAGES = ("upload", "audit", "banks", "save")


class ApiMetrics:
    def __init__(self, queue_depths: Callable[[], dict[str, int]], deliveries: Callable[[], dict[str, int]]):
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("uninote_api_requests", "Requests answered.", ["method", "route", "status"], registry=r)
        self.latency = Histogram("uninote_api_request_seconds", "Request latency.", ["route"], registry=r,
                                 buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60))
        self.checks = Counter("uninote_checks", "Checks by report verdict.", ["verdict"], registry=r)
        self.stage = Histogram("uninote_check_stage_seconds", "Check latency by stage.", ["stage"], registry=r,
                               buckets=(0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
        self.bank_hits = Counter("uninote_bank_hits", "Checks that hit a bank.", ["bank"], registry=r)
        self.errors = Counter("uninote_errors", "Error responses.", ["kind", "status"], registry=r)
        r.register(_Gauges(queue_depths, deliveries))

    def error(self, kind: str, status: int) -> None:
        self.errors.labels(kind, str(status)).inc()


class _Gauges:
    """Read at scrape time: queue depths from the broker, delivery counts from the records."""

    def __init__(self, queue_depths, deliveries):
        self.queue_depths, self.deliveries = queue_depths, deliveries

    def collect(self):
        queues = GaugeMetricFamily("uninote_queue_depth", "Messages waiting per Celery queue.", labels=["queue"])
        try:
            for name, n in self.queue_depths().items():
                queues.add_metric([name], n)
        except Exception as e:  # a scrape must not fail because the broker is down
            log.warning("queue depth unavailable: %s", e)
        yield queues
        deliveries = GaugeMetricFamily("uninote_webhook_deliveries", "Webhook deliveries by status.",
                                       labels=["status"])
        try:
            for status, n in self.deliveries().items():
                deliveries.add_metric([status], n)
        except Exception as e:
            log.warning("delivery counts unavailable: %s", e)
        yield deliveries
