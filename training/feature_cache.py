"""Frozen-tower feature caching: the core of CPU training.

The towers of the compact model (EfficientNet-Lite0, multilingual-e5-small) are frozen, so their outputs for an
image view (a photo, optionally through one seeded copy edit) or a text never change. They are computed once,
in shards of `shard_size` items, and stored as safetensors under `cache_dir` (default `~/.cache/uninote/features`,
outside the repo); a shard's file name hashes the tower settings and the shard's item keys, so an interrupted
extraction resumes where it stopped and a changed item list recomputes only the shards it changes.
Training then runs only the trainable heads and the fusion on the cached features.

Image features are stored as float16 (halves the disk; the heads L2-normalise their input first).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch
from safetensors.torch import load_file, save_file
from tqdm import tqdm

from encoder.compact import CompactUniNote
from encoder.images import load_image
from training.edits import apply_edit

DEFAULT_CACHE_DIR = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "uninote" / "features"


@dataclass(frozen=True)
class ImageView:
    """One image as the towers see it: the photo at `path`, through edit `edit` (training.edits) drawn with
    `seed`, or unedited when edit is None."""

    path: str
    edit: str | None = None
    seed: int = 0

    @property
    def key(self) -> str:
        return f"{self.path}|{self.edit or ''}|{self.seed if self.edit else ''}"

    def render(self):
        """The RGB PIL image of this view. Raises encoder.types.InputError for an unreadable photo."""
        image = load_image(self.path)
        return apply_edit(self.edit, image, self.seed) if self.edit else image


def _digest(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, default=str).encode("utf-8")).hexdigest()[:20]


def _image_signature(model: CompactUniNote) -> dict:
    c = model.config
    return {"tower": c.image_tower, "size": c.image_size, "gem_p": c.gem_p, "boxes": c.boxes}


def cached_region_features(model: CompactUniNote, views: Sequence[ImageView], cache_dir: Path | None = None,
                           shard_size: int = 256, chunk: int = 32, progress: bool = True) -> torch.Tensor:
    """views -> (V, R, 1280) float16 region GeM features (CompactUniNote.region_features), cached by shard.

    R = 1 + len(model.config.crop_boxes) (whole image first). Raises InputError for an unreadable photo.
    """
    cache = Path(cache_dir or DEFAULT_CACHE_DIR) / "images"
    cache.mkdir(parents=True, exist_ok=True)
    signature = _image_signature(model)
    out = []
    shards = range(0, len(views), shard_size)
    bar = tqdm(total=len(views), desc="image features", unit="view", disable=not progress, mininterval=5)
    for start in shards:
        part = views[start : start + shard_size]
        file = cache / f"{_digest(signature, [v.key for v in part])}.safetensors"
        if file.is_file():
            out.append(load_file(file)["features"])
        else:
            feats = []
            for s in range(0, len(part), chunk):
                images = [v.render() for v in part[s : s + chunk]]
                feats.append(model.region_features(images).to(torch.float16))  # (b, R, 1280)
                bar.update(len(images))
            tensor = torch.cat(feats)  # (n, R, 1280)
            tmp = file.with_suffix(".tmp")
            save_file({"features": tensor.contiguous()}, str(tmp))
            tmp.replace(file)
            out.append(tensor)
            continue
        bar.update(len(part))
    bar.close()
    if not out:
        return torch.zeros(0, len(model.boxes), 1280, dtype=torch.float16)
    return torch.cat(out)


def cached_text_features(model: CompactUniNote, texts: Sequence[str], cache_dir: Path | None = None,
                         shard_size: int = 1024, chunk: int = 64, progress: bool = True) -> torch.Tensor:
    """texts -> (N, 384) float32 e5 passage features (CompactUniNote.text_features), cached by shard."""
    cache = Path(cache_dir or DEFAULT_CACHE_DIR) / "texts"
    cache.mkdir(parents=True, exist_ok=True)
    signature = {"tower": model.config.text_tower}
    out = []
    bar = tqdm(total=len(texts), desc="text features", unit="text", disable=not progress, mininterval=5)
    for start in range(0, len(texts), shard_size):
        part = list(texts[start : start + shard_size])
        file = cache / f"{_digest(signature, part)}.safetensors"
        if file.is_file():
            out.append(load_file(file)["features"])
        else:
            tensor = torch.cat([model.text_features(part[s : s + chunk]) for s in range(0, len(part), chunk)])
            tmp = file.with_suffix(".tmp")
            save_file({"features": tensor.float().contiguous()}, str(tmp))
            tmp.replace(file)
            out.append(tensor.float())
        bar.update(len(part))
    bar.close()
    return torch.cat(out) if out else torch.zeros(0, 384)
