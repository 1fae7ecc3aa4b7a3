"""`make test` prepares a fresh machine itself (issue 12, "A fresh machine"): scripts/test_setup.sh runs
before pytest, installs what is missing as root and otherwise says exactly what to run."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SETUP = REPO / "scripts" / "test_setup.sh"


def test_make_test_prepares_the_machine_before_running_pytest():
    plan = subprocess.run(["make", "-n", "test"], cwd=REPO, capture_output=True, text=True, timeout=60).stdout
    lines = plan.splitlines()
    setup = next(i for i, line in enumerate(lines) if "scripts/test_setup.sh" in line)
    pytest_run = next(i for i, line in enumerate(lines) if "bin/pytest" in line)
    assert setup < pytest_run
    ci = (REPO / ".ci" / "run").read_text()
    assert "export CI=true" in ci and "make test" in ci and "apt-get" not in ci  # CI only calls it


def test_without_root_a_missing_package_is_named_with_the_command_to_run(tmp_path):
    """A machine without chromium, as a normal user: exit 1 and the exact apt-get line, nothing installed."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("bash", "timeout", "python3", "ls", "sort", "tail", "seq", "sleep", "docker-compose"):
        found = shutil.which(tool)
        if found:
            (bin_dir / tool).symlink_to(found)
    (bin_dir / "id").write_text("#!/bin/sh\necho 1000\n")  # not root
    (bin_dir / "id").chmod(0o755)
    (bin_dir / "apt-get").write_text(f"#!/bin/sh\ntouch {tmp_path}/apt-get-ran\n")
    (bin_dir / "apt-get").chmod(0o755)
    env = {"PATH": str(bin_dir), "HOME": str(tmp_path)}
    out = subprocess.run([str(bin_dir / "bash"), str(SETUP)], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "sudo apt-get update && sudo apt-get install -y chromium" in out.stderr
    assert not (tmp_path / "apt-get-ran").exists()


def test_on_this_machine_it_is_ready_and_idempotent():
    """Run as the tests' own user: as root it installs/starts what is missing, then only checks."""
    env = dict(os.environ)
    first = subprocess.run(["bash", str(SETUP)], env=env, capture_output=True, text=True, timeout=900)
    assert first.returncode == 0, first.stdout + first.stderr
    again = subprocess.run(["bash", str(SETUP)], env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and again.stdout.strip() == (
        "test machine ready: chromium, docker-compose, PostgreSQL and Redis on 127.0.0.1")
