"""Shared helpers of the Qwen3-VL / vLLM tests: the tiny random Qwen3-VL checkpoint (built once per test
process, offline), real photos (skimage.data) and the vLLM venv check."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import threading
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from encoder.types import NoteInput

REPO_ROOT = Path(__file__).resolve().parents[2]
VLLM_PYTHON = REPO_ROOT / ".venv-vllm" / "bin" / "python"
_lock = threading.Lock()
_built: dict[str, Path] = {}


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def tiny_checkpoint() -> Path:
    """The tiny Qwen3-VL UniNote checkpoint (encoder.qwen3vl_tiny), built once per process. Read-only:
    copy it (copy_checkpoint) before changing it."""
    with _lock:
        if "base" not in _built:
            from encoder.qwen3vl_tiny import build_tiny_qwen3vl

            root = Path(tempfile.mkdtemp(prefix="uninote-tiny-qwen3vl-"))
            atexit.register(shutil.rmtree, root, True)
            _built["base"] = build_tiny_qwen3vl(root / "base")
        return _built["base"]


def copy_checkpoint(dst: Path) -> Path:
    shutil.copytree(tiny_checkpoint(), dst)
    return dst


def photos(*names: str) -> list[Image.Image]:
    """Real RGB photos from skimage.data (shipped in the wheel, no download)."""
    import skimage.data

    out = []
    for name in names:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            array = getattr(skimage.data, name)()
        if array.ndim == 2:
            array = np.stack([array] * 3, axis=-1)
        out.append(Image.fromarray(array[..., :3]).convert("RGB"))
    return out


def sample_notes() -> list[NoteInput]:
    """Three notes: one image + text + OCR, two images + Chinese text, text only."""
    astronaut, coffee, chelsea = photos("astronaut", "coffee", "chelsea")
    return [
        NoteInput("n-astronaut", title="Astronaut portrait", body="An official portrait. Shot in 1984.",
                  images=[astronaut], ocr_texts=["NASA"]),
        NoteInput("n-cafe", title="咖啡和猫", body="今天的咖啡很好喝。猫在窗边睡觉！", images=[coffee, chelsea]),
        NoteInput("n-text", title="Fresh bananas", body="Two for one, this week only."),
    ]


def require_vllm_venv() -> Path:
    """The vLLM venv's python; skips (outside CI) or fails (CI=true) when it is missing."""
    if VLLM_PYTHON.exists():
        return VLLM_PYTHON
    message = f"vLLM venv missing at {VLLM_PYTHON.parent.parent}: run `bash scripts/setup_vllm_venv.sh`"
    if in_ci():
        pytest.fail(f"{message} (CI=true requires it)", pytrace=False)
    pytest.skip(message)
