"""docker/compose.yaml is a valid Compose file that starts the deployment the issue asks for.

Validated by `docker-compose config` (Debian's docker-compose 1.29 needs no engine for it) and by the
Compose Specification's JSON schema; then its structure: pinned images, health checks, persistent
volumes, the one-shot migration, scalable workers, the gpu and cluster profiles, and secrets that compose
refuses to do without.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from compose_support import (
    COMPOSE_FILE,
    ENV_EXAMPLE,
    REPO,
    MissingVariableError,
    interpolate,
    referenced_variables,
    require,
)

ALL_PROFILES = ("gpu", "cluster", "rabbitmq")
SECRETS = {"SECRET_KEY", "QDRANT_API_KEY", "POSTGRES_PASSWORD", "REDIS_PASSWORD", "DATABASE_URL",
           "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND", "RABBITMQ_PASSWORD"}
STATEFUL = {"qdrant": "/qdrant/storage", "postgres": "/var/lib/postgresql/data", "redis": "/data"}


def compose_command() -> list[str] | None:
    """`docker-compose` (v1, Debian) or the `docker compose` v2 plugin; None when neither is installed."""
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True)
        if probe.returncode == 0:
            return ["docker", "compose"]
    return None


def run_compose(env_file: Path, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = compose_command()
    require(cmd is not None, "docker-compose is not installed (apt-get install -y docker-compose)")
    profiles = [a for p in ALL_PROFILES for a in ("--profile", p)]
    # A clean environment: variables of the calling shell must not fill in for docker/.env.
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(env_file.parent)}
    return subprocess.run(
        [*cmd, "--env-file", str(env_file), "-f", str(COMPOSE_FILE), *profiles, *args],
        capture_output=True, text=True, env=env, cwd=REPO, timeout=120,
    )


def write_env(path: Path, values: dict[str, str]) -> Path:
    path.write_text("".join(f"{k}={v}\n" for k, v in values.items()), encoding="utf-8")
    return path


def image_tag(image: str) -> str:
    """`qdrant/qdrant:v1.20.0` -> `v1.20.0`; '' when the image has no tag."""
    last = image.split("/")[-1]
    return last.rpartition(":")[2] if ":" in last else ""


# ---------------------------------------------------------------------------------------------------------
# Validation by tools


def test_docker_compose_accepts_the_file_with_every_profile() -> None:
    result = run_compose(ENV_EXAMPLE, "config", "-q")
    assert result.returncode == 0, result.stderr


def test_docker_compose_lists_every_service() -> None:
    result = run_compose(ENV_EXAMPLE, "config", "--services")
    assert result.returncode == 0, result.stderr
    listed = set(result.stdout.split())
    assert {"qdrant", "redis", "postgres", "migrate", "worker", "dashboard", "encoder",
            "qdrant-node-2", "qdrant-node-3"} <= listed


@pytest.mark.parametrize("secret", sorted(SECRETS))
def test_docker_compose_refuses_to_start_without_each_secret(
    secret: str, env_example: dict[str, str], tmp_path: Path
) -> None:
    values = {k: v for k, v in env_example.items() if k != secret}
    result = run_compose(write_env(tmp_path / "env", values), "config", "-q")
    assert result.returncode != 0, f"compose accepted a deployment without {secret}"
    assert secret in result.stderr, result.stderr


def test_compose_file_matches_the_compose_specification_schema(compose: dict[str, Any]) -> None:
    try:
        from check_jsonschema.builtin_schemas import get_builtin_schema
        from jsonschema.validators import validator_for
    except ImportError as err:
        require(False, f"the Compose Specification schema needs check-jsonschema (pip): {err}")
        raise
    schema = get_builtin_schema("vendor.compose-spec")
    validator = validator_for(schema)(schema)
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(compose)]
    assert not errors, "\n".join(errors)


# ---------------------------------------------------------------------------------------------------------
# Secrets and variables


def test_every_secret_is_required_not_defaulted(compose_raw: dict[str, Any]) -> None:
    used = referenced_variables(compose_raw)
    for secret in SECRETS:
        assert secret in used, f"{secret} is not used by compose.yaml"
        assert used[secret] == {":?"}, f"{secret} must only appear as ${{{secret}:?...}}, found {used[secret]}"


def test_interpolation_refuses_each_missing_secret(
    compose_raw: dict[str, Any], env_example: dict[str, str]
) -> None:
    """The same refusal as docker-compose's, checked without the binary."""
    for secret in SECRETS:
        values = {k: v for k, v in env_example.items() if k != secret}
        with pytest.raises(MissingVariableError) as err:
            interpolate(compose_raw, values)
        assert err.value.name == secret


def test_no_literal_password_in_the_compose_file(compose_raw: dict[str, Any]) -> None:
    for name, svc in compose_raw["services"].items():
        env = svc.get("environment") or {}
        assert isinstance(env, dict), f"{name}: use the mapping form of environment"
        for key, value in env.items():
            if re.search(r"PASS|SECRET|API_KEY|_URL$|_BACKEND$", key) and value not in ("", None):
                assert "${" in str(value), f"{name}.{key} is a literal; it must come from the environment"


# ---------------------------------------------------------------------------------------------------------
# Structure


def test_images_are_pinned(services: dict[str, dict[str, Any]]) -> None:
    for name, svc in services.items():
        tag = image_tag(svc["image"])
        assert tag and tag != "latest" and re.search(r"\d", tag), f"{name}: image {svc['image']!r} is not pinned"
    assert re.fullmatch(r"v\d+\.\d+\.\d+", image_tag(services["qdrant"]["image"])), "pin Qdrant to a patch version"


def test_qdrant_server_matches_the_client_minor_version(services: dict[str, dict[str, Any]]) -> None:
    """qdrant-client accepts a server within one minor version (qdrant_client.common.version_check)."""
    from importlib.metadata import version

    client_major, client_minor = map(int, version("qdrant-client").split(".")[:2])
    for name, svc in services.items():
        if svc["image"].startswith("qdrant/qdrant:"):
            major, minor = map(int, image_tag(svc["image"]).lstrip("v").split(".")[:2])
            assert major == client_major and abs(minor - client_minor) <= 1, f"{name}: {svc['image']}"


def test_every_long_running_service_has_a_health_check(services: dict[str, dict[str, Any]]) -> None:
    for name, svc in services.items():
        check = svc.get("healthcheck")
        assert check and check.get("test") and not check.get("disable"), f"{name} has no health check"


def test_stateful_services_keep_their_data_in_named_volumes(compose: dict[str, Any]) -> None:
    declared = set(compose.get("volumes") or {})
    for name, target in STATEFUL.items():
        mounts = compose["services"][name].get("volumes", [])
        sources = [m.split(":")[0] for m in mounts if m.split(":")[1] == target]
        assert sources and sources[0] in declared, f"{name}: {target} is not on a named volume"


def test_migrate_is_one_shot_and_waits_for_the_database(services: dict[str, dict[str, Any]]) -> None:
    migrate = services["migrate"]
    assert migrate["command"] == ["migrate"]
    assert migrate.get("restart") == "no"
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["postgres"]["healthcheck"]["test"], "postgres needs a health check to be waited for"


def test_app_services_start_after_a_successful_migration(app_services: dict[str, dict[str, Any]]) -> None:
    assert {"migrate", "worker", "dashboard"} <= set(app_services)
    for name, svc in app_services.items():
        if name != "migrate":
            assert svc["depends_on"]["migrate"]["condition"] == "service_completed_successfully", name


def test_workers_scale_with_compose_scale(services: dict[str, dict[str, Any]]) -> None:
    workers = {n: s for n, s in services.items() if s.get("command", [None])[0] == "worker"}
    assert "worker" in workers
    for name, svc in workers.items():
        assert "container_name" not in svc, f"{name}: container_name prevents --scale"
        assert not svc.get("ports"), f"{name}: a published port prevents --scale"


def test_dependencies_exist_and_are_started_with_their_dependents(services: dict[str, dict[str, Any]]) -> None:
    """A service may only wait for services that run whenever it runs (no default service -> gpu-only one)."""
    for name, svc in services.items():
        profiles = set(svc.get("profiles") or [])
        for dep in svc.get("depends_on") or {}:
            assert dep in services, f"{name} depends on unknown service {dep}"
            dep_profiles = set(services[dep].get("profiles") or [])
            assert not dep_profiles or dep_profiles & profiles, f"{name} waits for {dep}, which is in {dep_profiles}"


def test_gpu_profile_serves_the_encoder_with_vllm(services: dict[str, dict[str, Any]], env_example: dict[str, str]) -> None:
    enc = services["encoder"]
    assert enc["profiles"] == ["gpu"]
    assert enc["image"].startswith("vllm/vllm-openai:")
    args = [*enc["entrypoint"], *enc["command"]]
    assert args[:2] == ["vllm", "serve"]
    assert args[args.index("--runner") + 1] == "pooling"
    assert args[args.index("--served-model-name") + 1] == env_example["ENCODER_MODEL"]
    assert '"LAST"' in args[args.index("--pooler-config") + 1]
    devices = enc["deploy"]["resources"]["reservations"]["devices"]
    assert any(d["driver"] == "nvidia" and "gpu" in d["capabilities"] for d in devices)


def test_cluster_profile_runs_three_qdrant_nodes(services: dict[str, dict[str, Any]]) -> None:
    first = services["qdrant"]
    assert "--uri http://qdrant:6335" in " ".join(first["command"])
    assert "QDRANT__CLUSTER__ENABLED" in first["environment"]
    peers = {n: s for n, s in services.items() if "cluster" in (s.get("profiles") or [])
             and s["image"].startswith("qdrant/qdrant:")}
    assert len(peers) == 2, "the cluster profile adds two nodes to `qdrant`"
    volumes = {first["volumes"][0].split(":")[0]}
    for name, svc in peers.items():
        cmd = svc["command"]
        assert cmd[cmd.index("--bootstrap") + 1] == "http://qdrant:6335"
        assert cmd[cmd.index("--uri") + 1] == f"http://{name}:6335"
        assert svc["environment"]["QDRANT__CLUSTER__ENABLED"] == "true"
        assert svc["environment"]["QDRANT__SERVICE__API_KEY"] == first["environment"]["QDRANT__SERVICE__API_KEY"]
        volumes.add(svc["volumes"][0].split(":")[0])
    assert len(volumes) == 3, "each node needs its own storage volume"


def test_collection_settings_come_from_the_environment(compose_raw: dict[str, Any]) -> None:
    """Shard number, replication factor, on-disk vectors and prefix quantization reach every app service
    as settings (not hard-coded), so the cluster profile is configured from docker/.env alone."""
    wanted = ["QDRANT_SHARD_NUMBER", "QDRANT_REPLICATION_FACTOR", "QDRANT_ON_DISK", "QDRANT_QUANTIZE_PREFIX"]
    for name, svc in compose_raw["services"].items():
        if (svc.get("build") or {}).get("dockerfile") != "docker/Dockerfile":
            continue
        for key in wanted:
            assert str(svc["environment"].get(key, "")).startswith(f"${{{key}"), f"{name}.{key}"


VLLM_PYTHON = REPO / ".venv-vllm" / "bin" / "python"
VLLM_PARSE = """
import json, sys
from vllm.entrypoints.launchers.cli_args import make_arg_parser
from vllm.utils.argparse_utils import FlexibleArgumentParser
args = json.loads(sys.argv[1])
ns = make_arg_parser(FlexibleArgumentParser()).parse_args(["--model", args[0], *args[1:]])
print(json.dumps({"runner": ns.runner, "pooling_type": ns.pooler_config.pooling_type,
                  "use_activation": ns.pooler_config.use_activation, "limit": ns.limit_mm_per_prompt,
                  "served": ns.served_model_name, "version": __import__("vllm").__version__}))
"""


@pytest.mark.slow
def test_encoder_command_parses_with_vllms_own_argument_parser(services: dict[str, dict[str, Any]]) -> None:
    """The encoder's flags, parsed by the vLLM release the CPU path was verified with (.venv-vllm, built by
    scripts/setup_vllm_venv.sh); keep the image tag and that release in step."""
    import json

    require(VLLM_PYTHON.is_file(), f"the vLLM environment is missing: {VLLM_PYTHON} (scripts/setup_vllm_venv.sh)")
    enc = services["encoder"]
    assert enc["entrypoint"] == ["vllm", "serve"]
    result = subprocess.run(
        [str(VLLM_PYTHON), "-c", VLLM_PARSE, json.dumps([str(a) for a in enc["command"]])],
        capture_output=True, text=True, timeout=300, env={**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    parsed = json.loads(result.stdout.strip().splitlines()[-1])
    version = parsed.pop("version")
    assert enc["image"] == f"vllm/vllm-openai:v{version.split('+')[0]}", f"the CPU path runs vLLM {version}"
    assert parsed == {"runner": "pooling", "pooling_type": "LAST", "use_activation": True,
                      "limit": {"image": 9, "video": 0}, "served": ["uninote"]}
