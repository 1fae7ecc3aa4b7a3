"""Helpers for the deployment tests: paths, Compose variable interpolation, the example environment.

No Docker engine runs here. The compose file is checked three ways: Debian's `docker-compose` (v1.29, a
Python program that validates and interpolates without an engine), the Compose Specification's JSON schema
(vendored by the `check-jsonschema` package), and structural checks in plain Python. Tools that are missing
skip their part naming what is missing, except with CI=true, where they must be there.
"""

from __future__ import annotations

import json
import os
import re
import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCKER = REPO / "docker"
COMPOSE_FILE = DOCKER / "compose.yaml"
ENV_EXAMPLE = DOCKER / ".env.example"
DOCKERFILE = DOCKER / "Dockerfile"
DOCKERIGNORE = DOCKER / "Dockerfile.dockerignore"
SCALING_DOC = REPO / "docs" / "scaling.md"
APP_DOCKERFILE = "docker/Dockerfile"  # build.dockerfile of the services that run the UniNote image


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def require(condition: bool, missing: str) -> None:
    """Skip naming what is missing; with CI=true, fail instead (CI must have every tool)."""
    if not condition:
        if in_ci():
            pytest.fail(f"{missing} (required when CI=true)")
        pytest.skip(missing)


# ---------------------------------------------------------------------------------------------------------
# Compose variable interpolation (Compose Specification, "Interpolation"): $$, $VAR, ${VAR}, ${VAR:-default},
# ${VAR-default}, ${VAR:?error}, ${VAR?error}, ${VAR:+alt}, ${VAR+alt}. Nested references are not
# supported by docker-compose v1, so they are an error here too.

_REFERENCE = re.compile(r"\$(?:(?P<escaped>\$)|\{(?P<braced>[^}]*)\}|(?P<named>[A-Za-z_][A-Za-z0-9_]*))")
_BRACED = re.compile(r"^(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:-|-|:\?|\?|:\+|\+)(?P<arg>.*))?$", re.S)


class MissingVariableError(ValueError):
    """A `${VAR:?message}` / `${VAR?message}` whose variable is unset (or empty, for `:?`)."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"{name}: {message or 'required variable is missing'}")
        self.name = name


def interpolate_string(text: str, env: Mapping[str, str]) -> str:
    """One string with every reference replaced; raises MissingVariableError or ValueError (bad syntax)."""

    def replace(m: re.Match[str]) -> str:
        if m.group("escaped"):
            return "$"
        if m.group("named"):
            return env.get(m.group("named"), "")
        braced = _BRACED.match(m.group("braced"))
        if braced is None or "$" in (braced.group("arg") or ""):
            raise ValueError(f"unsupported interpolation {m.group(0)!r} (nested or malformed)")
        name, op, arg = braced.group("name"), braced.group("op"), braced.group("arg") or ""
        value, is_set = env.get(name), name in env
        non_empty = bool(value)
        if op is None:
            return value or ""
        if op == ":-":
            return value if non_empty else arg
        if op == "-":
            return value if is_set else arg
        if op == ":?":
            if not non_empty:
                raise MissingVariableError(name, arg)
            return value
        if op == "?":
            if not is_set:
                raise MissingVariableError(name, arg)
            return value or ""
        if op == ":+":
            return arg if non_empty else ""
        return arg if is_set else ""  # "+"

    return _REFERENCE.sub(replace, text)


def interpolate(node: Any, env: Mapping[str, str]) -> Any:
    """The whole loaded compose document with every string value interpolated (keys are left as they are)."""
    if isinstance(node, dict):
        return {k: interpolate(v, env) for k, v in node.items()}
    if isinstance(node, list):
        return [interpolate(v, env) for v in node]
    if isinstance(node, str):
        return interpolate_string(node, env)
    return node


def referenced_variables(node: Any) -> dict[str, set[str]]:
    """Variable name -> the operators it is used with ('' for a plain reference), over every string value
    of a loaded (not yet interpolated) compose document; comments are not interpolated, so not counted."""
    found: dict[str, set[str]] = {}
    if isinstance(node, dict):
        node = list(node.values())
    if isinstance(node, list):
        for item in node:
            for name, ops in referenced_variables(item).items():
                found.setdefault(name, set()).update(ops)
        return found
    if not isinstance(node, str):
        return found
    for m in _REFERENCE.finditer(node):
        if m.group("escaped"):
            continue
        if m.group("named"):
            found.setdefault(m.group("named"), set()).add("")
            continue
        braced = _BRACED.match(m.group("braced"))
        if braced is not None:
            found.setdefault(braced.group("name"), set()).add(braced.group("op") or "")
    return found


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines, parsed by python-dotenv (the parser pydantic-settings uses)."""
    from dotenv import dotenv_values

    return {k: (v or "") for k, v in dotenv_values(path).items()}


def is_app_service(service: Mapping[str, Any]) -> bool:
    build = service.get("build")
    return isinstance(build, dict) and build.get("dockerfile") == APP_DOCKERFILE


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of docker/Dockerfile in order, line continuations joined, comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text(encoding="utf-8"))
    out = []
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            word, _, rest = line.strip().partition(" ")
            out.append((word.upper(), re.sub(r"\s+", " ", rest.strip())))
    return out


def dockerfile_final_stage() -> list[tuple[str, str]]:
    """The instructions of the last build stage (the image that ships)."""
    lines = dockerfile_instructions()
    last_from = max(i for i, (word, _) in enumerate(lines) if word == "FROM")
    return lines[last_from:]


def exec_form(args: str) -> list[str]:
    """A Dockerfile command's argv: the JSON (exec) form, or the shell form split like a shell."""
    return json.loads(args) if args.startswith("[") else shlex.split(args)
