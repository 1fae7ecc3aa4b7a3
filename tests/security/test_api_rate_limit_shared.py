"""Two API replicas enforce one per-key rate limit when they share API_RATE_LIMIT_STORAGE=redis://... (issue 15).

Two real `uninote serve` processes (uvicorn, each on its own free loopback port) behind one records database
(the same HOME's SQLite file) with their own embedded Qdrant folders (QDRANT_PATH: the embedded store
admits one process), both counting in the test Redis db. A key's requests alternate between them: the
limit (5 per hour, so no window can slide during the test) is spent across both, and then both answer 429
with Retry-After, although neither served 5 requests itself. A second key still passes on both: the limit
is per key.
"""

from __future__ import annotations

import httpx

import api_support as support

LIMIT = 5


def test_two_replicas_share_one_rate_limit_through_redis(tmp_path, redis_url):
    home = tmp_path / "home"
    home.mkdir()
    _, token = support.add_key(home, "check", "replica-shared")
    _, other = support.add_key(home, "check", "replica-other")
    servers = []
    try:
        for name in ("a", "b"):  # one after the other: the second starts on a migrated database
            port = support.free_port()
            log = tmp_path / f"server-{name}.log"
            env = support.server_env(home, None, API_RATE_LIMIT=f"{LIMIT}/hour", API_RATE_LIMIT_STORAGE=redis_url,
                                     QDRANT_PATH=str(tmp_path / f"qdrant-{name}"))
            proc = support.start_server(home, port, log, env)
            servers.append((proc, f"http://127.0.0.1:{port}"))
            support.wait_until_up(servers[-1][1], proc, log)
        (_, a), (_, b) = servers
        headers = {"Authorization": f"Bearer {token}"}
        codes = [httpx.get(f"{url}/v1/banks", headers=headers, timeout=60).status_code
                 for url in (a, b, a, b, a)]
        assert codes == [200] * LIMIT  # b served two of them, a three
        for url in (b, a):
            r = httpx.get(f"{url}/v1/banks", headers=headers, timeout=60)
            assert r.status_code == 429, (url, r.text)
            assert int(r.headers["Retry-After"]) >= 1 and "rate limit" in r.json()["error"]
        for url in (a, b):
            assert httpx.get(f"{url}/v1/banks", headers={"Authorization": f"Bearer {other}"},
                             timeout=60).status_code == 200
    finally:
        for proc, _ in servers:
            support.stop(proc)
