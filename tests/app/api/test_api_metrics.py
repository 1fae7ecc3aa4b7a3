"""GET /metrics of the real server (issue 15): Prometheus text format with checks by verdict, check latency by
stage, queue depth per Celery queue (the server runs in broker mode) and error responses by kind; parsed with
prometheus-client's own parser."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

from api_support import multipart_note


def scrape(api_server) -> dict[str, list]:
    r = httpx.get(f"{api_server.url}/metrics", headers=api_server.headers("admin"), timeout=60)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    return {f.name: f.samples for f in text_string_to_metric_families(r.text)}


def value(samples, name: str, **labels) -> float:
    return sum(s.value for s in samples if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()))


def test_metrics_count_checks_stages_queues_and_errors(api_server):
    before = scrape(api_server)
    checks_before = value(before.get("uninote_checks", []), "uninote_checks_total")
    note = {"note_id": "q-metrics", "title": "Who I met today", "images": ["astronaut_copy.jpg"]}
    r = httpx.post(f"{api_server.url}/v1/check", params={"save": "false"}, headers=api_server.headers("check"),
                   timeout=300, **multipart_note(note, [api_server.photos / "astronaut_copy.jpg"]))
    assert r.status_code == 200, r.text
    verdict = r.json()["report"]["verdict"]
    missing = httpx.get(f"{api_server.url}/v1/banks/no-such-bank", headers=api_server.headers("check"), timeout=60)
    assert missing.status_code == 404

    after = scrape(api_server)
    assert value(after["uninote_checks"], "uninote_checks_total") == checks_before + 1
    assert value(after["uninote_checks"], "uninote_checks_total", verdict=verdict) >= 1
    stages = {s.labels["stage"] for s in after["uninote_check_stage_seconds"]
              if s.name == "uninote_check_stage_seconds_count" and s.value > 0}
    assert {"upload", "audit", "banks"} <= stages
    queues = {s.labels["queue"] for s in after["uninote_queue_depth"]}
    assert {"index", "backfill", "audit", "webhooks"} <= queues
    assert all(s.value >= 0 for s in after["uninote_queue_depth"])
    assert value(after["uninote_errors"], "uninote_errors_total", status="404") >= 1
    assert value(after["uninote_api_requests"], "uninote_api_requests_total", method="POST", status="200") >= 1
