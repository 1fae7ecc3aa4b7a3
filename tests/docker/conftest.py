"""Fixtures for the deployment tests: docker/compose.yaml read and interpolated as Compose would, the
example environment, the Settings variables, and the real `uninote` click group (see compose_support.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from compose_support import (
    COMPOSE_FILE,
    ENV_EXAMPLE,
    interpolate,
    is_app_service,
    read_env_file,
    require,
)


@pytest.fixture(scope="session")
def compose_text() -> str:
    return COMPOSE_FILE.read_text(encoding="utf-8")


@pytest.fixture(scope="session")
def env_example() -> dict[str, str]:
    return read_env_file(ENV_EXAMPLE)


@pytest.fixture(scope="session")
def compose_raw(compose_text: str) -> dict[str, Any]:
    """The compose document as YAML (merge keys `<<:` resolved), not yet interpolated."""
    try:
        import yaml
    except ModuleNotFoundError:
        require(False, "PyYAML is not installed (pip install pyyaml)")
        raise
    return yaml.safe_load(compose_text)


@pytest.fixture(scope="session")
def compose(compose_raw: dict[str, Any], env_example: dict[str, str]) -> dict[str, Any]:
    """The compose document interpolated with docker/.env.example, as `docker compose config` sees it."""
    return interpolate(compose_raw, env_example)


@pytest.fixture(scope="session")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


@pytest.fixture(scope="session")
def app_services(services: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The services that run the UniNote image (built from docker/Dockerfile)."""
    return {name: svc for name, svc in services.items() if is_app_service(svc)}


@pytest.fixture(scope="session")
def settings_env_names() -> dict[str, str]:
    """Environment variable -> Settings field, read from app.settings.Settings (never a copy of the list)."""
    from app.settings import Settings

    prefix = Settings.model_config.get("env_prefix") or ""
    names = {}
    for field, info in Settings.model_fields.items():
        alias = info.validation_alias
        names[alias.upper() if isinstance(alias, str) else (prefix + field).upper()] = field
    return names


@pytest.fixture(scope="session")
def uninote_cli() -> Callable[..., Any]:
    """The click group behind the `uninote` console script (the image's ENTRYPOINT), loaded like pip's shim."""
    from importlib.metadata import entry_points

    scripts = [ep for ep in entry_points(group="console_scripts") if ep.name == "uninote"]
    require(bool(scripts), "the `uninote` console script is not installed (pip install -e .)")
    try:
        group = scripts[0].load()
    except ModuleNotFoundError as err:
        require(False, f"{scripts[0].value} cannot be imported yet: {err}")
        raise
    return group
