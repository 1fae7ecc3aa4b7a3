"""CopyTrainConfig: every knob of the SSCD-style copy-detection training of the image tower (TOML-loadable).

Recipe: Pizzi et al., "A Self-Supervised Descriptor for Image Copy Detection" (SSCD, CVPR 2022): repeated
augmentation of one photo into views, InfoNCE over views (T = 0.05) + KoLeo (weight 30), mixup/cutmix across
views, GeM (p = 3), L2, PCA whitening learnt on a background set. Starts from the ImageNet EfficientNet-Lite0
weights (encoder.towers). Field comments are the help texts.

The CPU recipe freezes the stem and the first `frozen_blocks` MBConv blocks and caches their output for a fixed
set of views (rendering edits and the early blocks are the slow part on 2 cores); a GPU run sets
frozen_blocks = 0 (the cache then holds pixels), more photos/views/steps and device = "cuda".
"""

from __future__ import annotations

import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

LITE0_BLOCKS = 16  # MBConv blocks in EfficientNet-Lite0 (stages of 1, 2, 2, 3, 3, 4, 1)


@dataclass
class CopyTrainConfig:
    data_root: str | None = None  # ../shared/data when None
    cache_dir: str = "/tmp/uninote_copy_train"  # cached early-block features of the views (outside the repo)
    max_photos: int = 1200  # training photos (half grocery train.txt of training products, half clothing train/)
    views_per_photo: int = 6  # view 0 = the clean photo, the rest one copy family each (training.copy_edits)
    family_weights: dict[str, float] = field(default_factory=dict)  # relative draw weight per family (absent = 1)
    background_photos: int = 200  # unrelated training photos used by paste / collage views
    image_size: int = 192  # square input side (EfficientNet-Lite0 is native at 224)
    frozen_blocks: int = 11  # stem + this many MBConv blocks frozen and cached (0 = train everything)
    gem_p: float = 3.0  # GeM exponent
    temperature: float = 0.05  # InfoNCE temperature (SSCD)
    koleo_weight: float = 30.0  # KoLeo regulariser weight (SSCD uses 30)
    mix_fraction: float = 0.125  # extra mixup/cutmix queries per batch, as a fraction of the views
    batch_photos: int = 48  # photos per batch
    batch_views: int = 2  # views drawn per photo per batch (distinct)
    steps: int = 600  # optimiser steps
    lr: float = 2e-4  # AdamW peak learning rate
    weight_decay: float = 1e-4
    warmup_steps: int = 30  # linear warm-up, then cosine decay to 0
    max_minutes: float = 40.0  # wall-clock cap on the optimisation loop (the model is saved when it trips)
    whitening_dim: int = 512  # PCA-whitened output dims (<= 1280)
    whitening_photos: int = 1000  # background set for the whitening: clean training photos
    whitening_eps: float = 1e-3  # added to the eigenvalues (relative to the largest) before 1/sqrt
    device: str = "cpu"  # "cpu" | "cuda"
    num_threads: int = 1  # torch CPU threads (the 2-core box is shared: 1)
    log_every: int = 20
    checkpoint_minutes: float = 0.0  # also write <out>/checkpoints/step_<n>/tower.safetensors this often (0 = off)
    val_photos: int = 0  # the last this-many training photos are held out of the batches and scored at checkpoints
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.frozen_blocks < LITE0_BLOCKS:
            raise ValueError(f"frozen_blocks must be in [0, {LITE0_BLOCKS}), got {self.frozen_blocks}")
        if self.views_per_photo < 2 or not 2 <= self.batch_views <= self.views_per_photo:
            raise ValueError(f"need 2 <= batch_views ({self.batch_views}) <= views_per_photo ({self.views_per_photo})")
        if self.image_size < 64 or self.image_size % 32:
            raise ValueError(f"image_size must be a multiple of 32 and >= 64, got {self.image_size}")
        if not 0 < self.whitening_dim <= 1280:
            raise ValueError(f"whitening_dim must be in (0, 1280], got {self.whitening_dim}")
        from training.copy_edits import COPY_FAMILIES

        unknown = sorted(set(self.family_weights) - set(COPY_FAMILIES))
        if unknown:
            raise ValueError(f"unknown copy families in family_weights: {', '.join(unknown)}")
        if any(w < 0 for w in self.family_weights.values()):
            raise ValueError("family_weights must be >= 0")
        if not 0 <= self.val_photos < self.max_photos:
            raise ValueError(f"val_photos must be in [0, max_photos), got {self.val_photos}")
        for name in ("max_photos", "steps", "batch_photos", "whitening_photos"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "CopyTrainConfig":
        """Raises ValueError naming unknown keys."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown copy training config keys: {', '.join(unknown)}")
        return cls(**d)

    @classmethod
    def from_toml(cls, path: Path) -> "CopyTrainConfig":
        with Path(path).open("rb") as f:
            return cls.from_dict(tomllib.load(f))
