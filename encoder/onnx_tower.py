"""The image tower through ONNX Runtime: the ImageTower module exported to ONNX once, run by onnxruntime.

`onnx_image_tower(tower, cache_dir)` exports whatever weights the given ImageTower holds (its `net`'s
`extract_features`, traced by torch.onnx's TorchScript exporter, opset 17, dynamic batch) into
`cache_dir/image_tower-<sha256 of the weights and input size>.onnx` (written to a temporary file, then
renamed: a crash never leaves a half-written model), or loads that file when it exists. Nothing is
downloaded. New tower weights give a new file name, so a stale export is never used. A cache folder that
cannot be written is not fatal: the model is then exported into memory for this process. Runners are
shared per process, keyed by the weights: the first cache folder asked for in a process holds the file.

Measured (benchmarks/bench_encode.py): the same (B, 1280, h, w) feature map as torch, cosine >= 0.9999 per
region vector, at about a third of torch's CPU time. Threads: encoder.threads.session_options().
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import os
import tempfile
import threading
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from encoder.threads import session_options
from encoder.towers import ImageTower

log = logging.getLogger(__name__)

OPSET = 17
_sessions: dict[str, "OnnxImageTower"] = {}  # weights key -> runner, one per process
_lock = threading.Lock()


class _FeatureMap(nn.Module):
    """The exported graph: (B, 3, S, S) float32 pixels -> (B, 1280, S/32, S/32) float32 feature map."""

    def __init__(self, tower: ImageTower):
        super().__init__()
        self.net = tower.net

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.net.extract_features(pixels)  # (B, 1280, h, w)


class OnnxImageTower:
    """Callable like ImageTower.forward: (B, 3, S, S) float32 tensor -> (B, 1280, S/32, S/32) float32 tensor.

    path: the cached .onnx file, or None when the model lives in memory only.
    """

    def __init__(self, model: str | bytes, image_size: int, path: Path | None = None):
        import onnxruntime as ort

        self.session = ort.InferenceSession(model, sess_options=session_options(), providers=["CPUExecutionProvider"])
        self.image_size = image_size
        self.path = path
        self._input = self.session.get_inputs()[0].name

    def __call__(self, pixels: torch.Tensor) -> torch.Tensor:
        x = np.ascontiguousarray(pixels.detach().to(torch.float32).numpy())  # (B, 3, S, S)
        if x.shape[0] == 0:
            return torch.zeros(0, 1280, self.image_size // 32, self.image_size // 32)
        (fmap,) = self.session.run(None, {self._input: x})  # (B, 1280, h, w)
        return torch.from_numpy(fmap)


def weights_key(tower: ImageTower) -> str:
    """sha256 hex (first 16) of the tower's parameters and buffers, in state_dict order, and its input size."""
    h = hashlib.sha256(f"efficientnet-lite0:{tower.image_size}:opset{OPSET}".encode())
    for name, value in tower.net.state_dict().items():
        h.update(name.encode())
        h.update(value.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def export_bytes(tower: ImageTower) -> bytes:
    """The tower's feature-map graph as ONNX bytes (batch axis dynamic). Source: torch.onnx.export."""
    S = tower.image_size
    example = torch.zeros(1, 3, S, S)
    buf = io.BytesIO()
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(_FeatureMap(tower).eval(), (example,), buf, input_names=["pixels"], output_names=["fmap"],
                          dynamic_axes={"pixels": {0: "B"}, "fmap": {0: "B"}}, opset_version=OPSET, dynamo=False)
    return buf.getvalue()


def onnx_image_tower(tower: ImageTower, cache_dir: Path) -> OnnxImageTower:
    """The ONNX Runtime runner of `tower`'s current weights, exported into cache_dir once (see the module
    docstring); shared per process. Raises RuntimeError naming the file when a cached model cannot be
    loaded and re-exporting fails too."""
    key = weights_key(tower)
    with _lock:
        runner = _sessions.get(key)
        if runner is None:
            runner = _sessions[key] = _load_or_export(tower, Path(cache_dir), key)
        return runner


def _load_or_export(tower: ImageTower, cache_dir: Path, key: str) -> OnnxImageTower:
    path = cache_dir / f"image_tower-{key}.onnx"
    if path.is_file():
        try:
            return OnnxImageTower(str(path), tower.image_size, path)
        except Exception as e:  # a damaged cache file: export again over it
            log.warning("cached ONNX image tower %s unreadable (%s); exporting it again", path, e)
    model = export_bytes(tower)
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".image_tower-", suffix=".onnx.tmp", dir=cache_dir)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(model)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as e:
        log.warning("cannot cache the ONNX image tower in %s (%s); keeping it in memory", cache_dir, e)
        return OnnxImageTower(model, tower.image_size, None)
    return OnnxImageTower(str(path), tower.image_size, path)
