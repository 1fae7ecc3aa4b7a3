"""The `api` role of docker/compose.yaml as `docker-compose config` resolves it (issue 15, Deployment).

`docker-compose config` (the real tool: Debian's docker-compose 1.29 needs no engine for it) resolves the
file with docker/.env.example; its output is read back as YAML and the `api` service checked: the
`uninote serve` command the real click group parses, bound inside the container, the `api` health check,
started after a successful migration with Qdrant and Redis healthy, the servers (not the embedded
default), per-key rate-limit counters in Redis (shared by every replica), nothing that pins one replica
(no container_name, no state volume). Without API_RATE_LIMIT_STORAGE compose refuses the deployment.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click
import pytest

from compose_support import ENV_EXAMPLE
from test_compose_commands import parse_uninote
from test_compose_file import run_compose, write_env


@pytest.fixture(scope="module")
def resolved() -> dict[str, Any]:
    """`docker-compose config` of the file with every profile and docker/.env.example, as YAML."""
    import yaml

    result = run_compose(ENV_EXAMPLE, "config")
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


@pytest.fixture(scope="module")
def api(resolved: dict[str, Any]) -> dict[str, Any]:
    assert "api" in resolved["services"], sorted(resolved["services"])
    return resolved["services"]["api"]


def test_docker_compose_lists_the_api_service() -> None:
    result = run_compose(ENV_EXAMPLE, "config", "--services")
    assert result.returncode == 0, result.stderr
    assert "api" in result.stdout.split()


def test_api_runs_uninote_serve_inside_the_container(api: dict[str, Any], uninote_cli: click.Group) -> None:
    command = [str(a) for a in api["command"]]
    assert parse_uninote(uninote_cli, command).name == "serve"
    assert command[command.index("--host") + 1] == "0.0.0.0" and command[command.index("--port") + 1] == "8080"
    assert api["healthcheck"]["test"] == ["CMD", "uninote", "healthcheck", "--role", "api"]
    parse_uninote(uninote_cli, api["healthcheck"]["test"][2:])
    assert "build" in api and api["build"]["dockerfile"] == "docker/Dockerfile"  # the one UniNote image


def test_api_starts_after_the_migration_with_its_servers_healthy(api: dict[str, Any]) -> None:
    depends = api["depends_on"]
    assert depends["migrate"]["condition"] == "service_completed_successfully"
    assert depends["qdrant"]["condition"] == "service_healthy"
    assert depends["redis"]["condition"] == "service_healthy"


def test_api_reads_the_servers_and_shares_its_rate_limit_in_redis(api: dict[str, Any]) -> None:
    env = {k: str(v) for k, v in api["environment"].items()}
    assert env["QDRANT_URL"] == "http://qdrant:6333" and env["DATABASE_URL"].startswith("postgresql+psycopg://")
    assert env["ENVIRONMENT"] == "production" and env["SECRET_KEY"]
    storage, broker = urlsplit(env["API_RATE_LIMIT_STORAGE"]), urlsplit(env["CELERY_BROKER_URL"])
    assert storage.scheme == "redis" and storage.hostname == broker.hostname == "redis"
    assert storage.path != broker.path  # its own Redis db, not the broker's queue
    from limits import parse

    parse(env["API_RATE_LIMIT"])  # the limit is in `limits` notation
    assert "WEBHOOK_ALLOW_PRIVATE_ADDRESSES" not in env  # the SSRF guard is on in the deployment


def test_api_replicas_hold_no_state_of_their_own(api: dict[str, Any]) -> None:
    assert "container_name" not in api  # --scale api=N needs distinct names
    for volume in api.get("volumes") or []:
        source, _, rest = str(volume).partition(":")
        assert rest.endswith(":ro"), f"api mounts {volume!r} writable"
        assert "qdrant" not in source and "uninote.db" not in source


def test_api_publishes_on_loopback_by_default(api: dict[str, Any]) -> None:
    ports = [str(p) for p in api.get("ports") or []]
    assert ports and all(p.startswith("127.0.0.1:") for p in ports), ports


def test_docker_compose_refuses_the_api_without_shared_rate_limit_storage(
    env_example: dict[str, str], tmp_path: Path
) -> None:
    values = {k: v for k, v in env_example.items() if k != "API_RATE_LIMIT_STORAGE"}
    result = run_compose(write_env(tmp_path / "env", values), "config", "-q")
    assert result.returncode != 0 and "API_RATE_LIMIT_STORAGE" in result.stderr, result.stderr
