"""docker/Dockerfile builds the one UniNote image: non-root, health-checked, CPU torch at the project's pin,
every package and the compact checkpoint inside, a build context without local state.

No Docker engine runs here, so the image is not built: these checks read the Dockerfile against
pyproject.toml (the build itself is the maintainers' `docker build -f docker/Dockerfile .`).
"""

from __future__ import annotations

import re
import tomllib

from compose_support import (
    DOCKERFILE,
    DOCKERIGNORE,
    REPO,
    dockerfile_final_stage,
    dockerfile_instructions,
    exec_form,
    require,
)

PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
TEXT = DOCKERFILE.read_text(encoding="utf-8")


def stage_values(word: str) -> list[str]:
    return [args for w, args in dockerfile_final_stage() if w == word]


def test_final_stage_runs_as_a_non_root_user() -> None:
    users = stage_values("USER")
    assert users, "the runtime stage must switch to a non-root USER"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0"), users[-1]
    assert re.search(rf"useradd\b.*\b{re.escape(user)}\b", TEXT), f"user {user} is never created"


def test_image_has_a_health_check() -> None:
    checks = stage_values("HEALTHCHECK")
    assert checks and "CMD" in checks[-1] and "NONE" not in checks[-1]


def test_entrypoint_forwards_signals_to_uninote() -> None:
    entry = exec_form(stage_values("ENTRYPOINT")[-1])
    assert entry[0] == "tini" and entry[-1] == "uninote", entry


def test_torch_is_the_cpu_build_at_the_project_pin() -> None:
    pin = next(d for d in PYPROJECT["project"]["dependencies"] if re.match(r"torch\s*==", d))
    version = pin.split("==")[1].strip()
    assert re.search(rf"ARG TORCH_VERSION={re.escape(version)}\s", TEXT), f"TORCH_VERSION must equal {version}"
    assert "ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu" in TEXT
    assert re.search(r'pip install --index-url "\$\{TORCH_INDEX_URL\}" "torch==\$\{TORCH_VERSION\}"', TEXT)
    runs = [args for word, args in dockerfile_instructions() if word == "RUN"]
    torch_step = next(i for i, r in enumerate(runs) if "torch==${TORCH_VERSION}" in r)
    project_step = next(i for i, r in enumerate(runs) if r.startswith("pip install ."))
    assert torch_step < project_step, "torch must be installed before the project, or pip takes PyPI's CUDA build"


def test_python_version_matches_requires_python() -> None:
    required = PYPROJECT["project"]["requires-python"]  # e.g. ">=3.11,<3.12"
    minor = re.search(r">=\s*3\.(\d+)", required).group(1)
    base = re.search(r"ARG PYTHON_IMAGE=python:(\d+)\.(\d+)", TEXT)
    assert base and base.groups() == ("3", minor), f"base image must be Python 3.{minor} ({required})"


def test_every_package_and_its_data_is_copied() -> None:
    includes = PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = sorted({p.rstrip("*").rstrip(".") for p in includes})
    for package in packages:
        assert re.search(rf"^COPY {package} \./{package}$", TEXT, re.M), f"COPY {package} is missing"
    assert re.search(r"^COPY pyproject\.toml README\.md \./$", TEXT, re.M)
    assert "checkpoints/**/*" in PYPROJECT["tool"]["setuptools"]["package-data"]["encoder"]
    assert "pip install ." in TEXT and "pip install -e" not in TEXT, "a regular install carries the package data"


def test_build_fails_without_the_compact_checkpoint() -> None:
    assert "'checkpoints' / 'compact'" in TEXT and "config.json" in TEXT
    shipped = REPO / "encoder" / "checkpoints" / "compact" / "config.json"
    require(shipped.is_file(), f"the shipped checkpoint is not there yet: {shipped}")


def test_build_context_keeps_local_state_out() -> None:
    rules = [line.strip() for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
             if line.strip() and not line.startswith("#")]
    assert rules[0] == "**", "exclude everything, then re-include what the image needs"
    included = {r[1:].rstrip("/") for r in rules if r.startswith("!")}
    copied = set()
    for _, args in (line for line in dockerfile_instructions() if line[0] == "COPY" and "--from" not in line[1]):
        copied |= set(args.split()[:-1])
    assert copied <= included, f"COPY sources excluded by the dockerignore: {copied - included}"
    for private in (".venv", ".venv-vllm", ".git", ".uninote", ".env", "docker/.env"):
        assert private not in included

