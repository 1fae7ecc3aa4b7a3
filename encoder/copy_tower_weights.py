"""The copy-detection image tower's weights file: EfficientNet-Lite0 trunk + PCA whitening, fp16 safetensors.

Layout of `tower.safetensors`: every `extract_features` parameter/buffer of the EfficientNet-Lite0 trunk under
`net.<name>` (the ImageNet classifier `_fc` is left out), `whitening.mean` (1280,) and `whitening.matrix`
(d, 1280); metadata: "format" = "uninote-copy-tower-1" plus the training config (JSON) under "config".
Stored as float16 (about 7 MB); loaded as float32. Written by training.copy_train, read by encoder.towers.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

FORMAT = "uninote-copy-tower-1"
COPY_TOWER_FILE = Path(__file__).resolve().parent / "checkpoints" / "copy_tower" / "tower.safetensors"


@dataclass(frozen=True)
class Whitening:
    """PCA whitening learnt on a background set: y = L2(matrix @ (x - mean)). mean (1280,), matrix (d, 1280)."""

    mean: torch.Tensor
    matrix: torch.Tensor

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """(..., 1280) float -> (..., d) float32, L2-normalised."""
        y = (x.float() - self.mean) @ self.matrix.T  # (..., d)
        return torch.nn.functional.normalize(y, dim=-1)


def save_copy_tower(net: nn.Module, whitening: Whitening, path: Path, config: dict) -> None:
    """Write the trunk (minus `_fc`) and the whitening as fp16 safetensors at path (parent folders created)."""
    tensors = {f"net.{k}": v.detach().to(torch.float16).contiguous() for k, v in net.state_dict().items()
               if not k.startswith("_fc.") and v.is_floating_point()}
    tensors["whitening.mean"] = whitening.mean.to(torch.float16).contiguous()
    tensors["whitening.matrix"] = whitening.matrix.to(torch.float16).contiguous()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    save_file(tensors, str(tmp), metadata={"format": FORMAT, "config": json.dumps(config, sort_keys=True)})
    tmp.replace(path)


def load_copy_tower(net: nn.Module, path: Path = COPY_TOWER_FILE) -> tuple[Whitening, dict]:
    """Load the trunk weights into `net` (an EfficientNet-Lite0, in place, float32) and return (whitening, config).

    Raises FileNotFoundError for a missing file and ValueError for another format or missing/unexpected trunk keys.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"copy tower weights not found: {path}")
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
        if meta.get("format") != FORMAT:
            raise ValueError(f"{path} is not a copy tower file (format {meta.get('format')!r}, expected {FORMAT!r})")
        tensors = {k: f.get_tensor(k).float() for k in f.keys()}
    state = {k[4:]: v for k, v in tensors.items() if k.startswith("net.")}
    expected = {k for k, v in net.state_dict().items() if not k.startswith("_fc.") and v.is_floating_point()}
    if set(state) != expected:
        missing, extra = sorted(expected - set(state)), sorted(set(state) - expected)
        raise ValueError(f"{path}: trunk keys differ (missing {missing[:3]}, unexpected {extra[:3]})")
    net.load_state_dict(state, strict=False)
    return Whitening(tensors["whitening.mean"], tensors["whitening.matrix"]), json.loads(meta.get("config", "{}"))
