"""The settings each service reads are documented, real, and safe.

The list of settings is read from app.settings.Settings (never copied here): every one must be documented
in docker/.env.example, every variable compose.yaml uses must be documented there too, the app services
may only set variables that are Settings fields (a typo would be silently ignored by pydantic-settings),
and the values compose hands them must build a valid Settings object.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from pydantic import ValidationError

from app.settings import Settings
from compose_support import ENV_EXAMPLE, SCALING_DOC, referenced_variables

# Variables the app services set that are not UniNote settings: read by libraries, not by app/settings.py.
LIBRARY_VARIABLES = {"OMP_NUM_THREADS"}
STRONG = "4f1c9a7e2b8d06c35e9a1f7b3d2c8e60a5b4f9d1c7e3a2b8f06d5c4e9a1b7f3d"  # stands for a real secret (32 random bytes)


def documented_variables() -> dict[str, str]:
    """Variable -> its documentation: the comment lines of its paragraph in docker/.env.example.

    A variable may be set (`KEY=value`) or shown commented out (`# KEY=default`); its paragraph is the run of
    non-blank lines around it."""
    docs: dict[str, str] = {}
    for paragraph in re.split(r"\n\s*\n", ENV_EXAMPLE.read_text(encoding="utf-8")):
        lines = paragraph.splitlines()
        comments = " ".join(
            line.lstrip("# ").strip() for line in lines
            if line.startswith("#") and not re.match(r"#\s*[A-Z][A-Z0-9_]*=", line)
        )
        for line in lines:
            m = re.match(r"#?\s*([A-Z][A-Z0-9_]*)=", line)
            if m:
                docs[m.group(1)] = comments
    return docs


def app_environment(app_services: dict[str, dict[str, Any]]) -> dict[str, dict[str, str]]:
    return {name: {k: "" if v is None else str(v) for k, v in svc["environment"].items()}
            for name, svc in app_services.items()}


def settings_from(env: dict[str, str], monkeypatch: pytest.MonkeyPatch, **overrides: str) -> Settings:
    """Settings exactly as a container with this environment would read them (no .env file)."""
    for field, info in Settings.model_fields.items():  # nothing from the calling shell
        alias = info.validation_alias
        monkeypatch.delenv(alias if isinstance(alias, str) else field.upper(), raising=False)
    for key, value in {**env, **overrides}.items():
        monkeypatch.setenv(key, value)
    return Settings(_env_file=None)


def with_real_secrets(env: dict[str, str]) -> dict[str, str]:
    """The environment with docker/.env.example's `change-me` placeholders replaced by a real-looking secret."""
    return {k: v.replace("change-me", STRONG) for k, v in env.items()}


def test_env_example_documents_every_setting(settings_env_names: dict[str, str]) -> None:
    docs = documented_variables()
    missing = sorted(set(settings_env_names) - set(docs))
    assert not missing, f"add to docker/.env.example, with a comment: {missing}"
    undocumented = sorted(k for k in settings_env_names if not docs[k])
    assert not undocumented, f"give these a comment in docker/.env.example: {undocumented}"


def test_env_example_documents_every_compose_variable(compose_raw: dict[str, Any]) -> None:
    docs = documented_variables()
    missing = sorted(set(referenced_variables(compose_raw)) - set(docs))
    assert not missing, f"compose.yaml uses variables docker/.env.example does not document: {missing}"
    undocumented = sorted(k for k in referenced_variables(compose_raw) if not docs[k])
    assert not undocumented, f"give these a comment in docker/.env.example: {undocumented}"


def test_app_services_only_set_real_settings(
    app_services: dict[str, dict[str, Any]], settings_env_names: dict[str, str]
) -> None:
    for name, env in app_environment(app_services).items():
        unknown = sorted(set(env) - set(settings_env_names) - LIBRARY_VARIABLES)
        assert not unknown, f"{name} sets variables that are not UniNote settings: {unknown}"


def test_app_services_read_the_servers_not_the_embedded_default(app_services: dict[str, dict[str, Any]]) -> None:
    for name, env in app_environment(app_services).items():
        for key in ("QDRANT_URL", "DATABASE_URL", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND", "SECRET_KEY"):
            assert env.get(key), f"{name} does not get {key}: it would fall back to the embedded default"
        assert env["ENVIRONMENT"] == "production"


def test_compose_values_build_valid_settings(
    app_services: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Types and ranges: what compose passes (from docker/.env.example) parses, secrets made real."""
    for name, env in app_environment(app_services).items():
        settings = settings_from(with_real_secrets(env), monkeypatch, SECRET_KEY=STRONG)
        assert settings.qdrant_url == "http://qdrant:6333", name
        assert settings.database_url.startswith("postgresql+psycopg://"), name
        assert settings.qdrant_shard_number >= 1 and settings.qdrant_replication_factor >= 1


@pytest.mark.xfail(
    condition=not Settings.model_config.get("env_ignore_empty"),
    reason="Settings needs model_config env_ignore_empty=True so that compose's empty ENCODER_URL/CHECKPOINT "
           "mean unset (see the docker report)",
    strict=True,
)
def test_empty_values_mean_unset(app_services: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch) -> None:
    env = app_environment(app_services)["worker"]
    assert env["ENCODER_URL"] == "" and env["CHECKPOINT"] == ""
    settings = settings_from(with_real_secrets(env), monkeypatch, SECRET_KEY=STRONG)
    assert settings.encoder_url is None, "an empty ENCODER_URL must select the in-process encoder"
    assert settings.checkpoint is None, "an empty CHECKPOINT must select the shipped checkpoint, not Path('.')"


def test_production_refuses_the_example_secret_key(
    app_services: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    env = app_environment(app_services)["dashboard"]
    with pytest.raises(ValidationError, match="SECRET_KEY"):
        settings_from(env, monkeypatch)


def refuses_placeholder_passwords() -> bool:
    """Whether app.settings already refuses a placeholder password inside a URL in production."""
    try:
        Settings(_env_file=None, environment="production", secret_key=STRONG,
                 database_url="postgresql+psycopg://uninote:change-me@postgres:5432/uninote")
    except ValidationError:
        return True
    return False


@pytest.mark.xfail(
    condition=not refuses_placeholder_passwords(),
    reason="Settings does not yet refuse placeholder passwords inside URLs / QDRANT_API_KEY in production "
           "(see the docker report for the validator)",
    strict=True,
)
@pytest.mark.parametrize("key", ["DATABASE_URL", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND", "QDRANT_API_KEY"])
def test_production_refuses_each_example_password(
    key: str, app_services: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only `key` keeps its docker/.env.example placeholder; the others are made real."""
    env = app_environment(app_services)["worker"]
    real = {k: v for k, v in with_real_secrets(env).items() if k != key}
    real["SECRET_KEY"] = STRONG
    with pytest.raises(ValidationError, match=key):
        settings_from({**env, **real}, monkeypatch)


def test_development_accepts_the_example(
    app_services: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    env = app_environment(app_services)["worker"]
    settings_from(env, monkeypatch, ENVIRONMENT="development")


def test_scaling_doc_describes_every_service(services: dict[str, dict[str, Any]]) -> None:
    text = SCALING_DOC.read_text(encoding="utf-8")
    missing = [name for name in services if f"`{name}`" not in text]
    assert not missing, f"docs/scaling.md does not describe: {missing}"
