"""Qwen3VLEncoderConfig: the UniNote choices on top of a Qwen3-VL checkpoint, saved as `uninote.json`.

The paper's backbone (Zhao et al., KDD 2026, §3): Qwen3-VL, embedding = the L2-normalised hidden state of
the last token, one instruction prompt per element kind, Matryoshka dims (64, 512, 1024, 4096) for the 8B
model. A Qwen3-VL checkpoint folder (training's output, or `uninote export`'s) is a plain Hugging Face
folder (config.json, *.safetensors, tokenizer, processor configs) plus this `uninote.json`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from encoder.config import DEFAULT_CROP_BOXES
from encoder.config_fields import checked_boxes, checked_dims, config_from_dict, config_to_dict
from encoder.types import Box

BACKBONE = "qwen3vl"  # the "backbone" value written to uninote.json
CONFIG_FILE = "uninote.json"
PAPER_DIMS = (64, 512, 1024, 4096)  # the paper's Matryoshka dims (Qwen3-VL-8B, hidden size 4096)
IMAGE_FACTOR = 32  # Qwen3-VL: patch 16 x spatial merge 2; image sides are made multiples of it

# One instruction per element kind (paper §3: "an instruction prompt per element kind"); the system
# turn of every conversation. "note" is the global element (the whole note).
DEFAULT_INSTRUCTIONS: dict[str, str] = {
    "image": "Represent this image for retrieving near-duplicate and infringing copies of it.",
    "crop": "Represent this region of an image for retrieving images that copy it.",
    "ocr": "Represent this text found in an image for retrieving notes that show the same text.",
    "title": "Represent this note title for retrieving notes about the same thing.",
    "body": "Represent this passage of a note for retrieving notes that copy or rephrase it.",
    "note": "Represent this note, its images and text, for retrieving near-duplicate and infringing notes.",
}


def default_dims(hidden_size: int) -> tuple[int, ...]:
    """The paper's dims below the model's hidden size, then the hidden size (4096 -> (64, 512, 1024, 4096);
    2048 (Qwen3-VL-2B) -> (64, 512, 1024, 2048); 128 (the tiny test model) -> (64, 128))."""
    if hidden_size < 1:
        raise ValueError(f"hidden_size must be >= 1, got {hidden_size}")
    return tuple(d for d in PAPER_DIMS if d < hidden_size) + (hidden_size,)


@dataclass(frozen=True)
class Qwen3VLEncoderConfig:
    dims: tuple[int, ...] = PAPER_DIMS  # Matryoshka dims, ascending; the last = the text hidden size D
    instructions: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_INSTRUCTIONS))  # per kind
    min_pixels: int = 256 * 256  # images are resized (aspect kept) to >= this many pixels ...
    max_pixels: int = 512 * 512  # ... and <= this many, sides multiples of IMAGE_FACTOR (256 tokens max)
    crop_boxes: tuple[Box, ...] = DEFAULT_CROP_BOXES  # fixed crop regions, as the compact encoder's
    max_body_pieces: int = 16  # body pieces kept per note
    piece_chars: int = 160  # max characters per body piece / OCR string / title
    max_ocr_texts: int = 16  # OCR strings kept per note
    max_note_chars: int = 2000  # text of the global (whole-note) element, title + body + OCR, truncated
    batch_size: int = 8  # conversations per forward pass (in-process) or per HTTP request (vLLM)
    lora: bool = False  # the checkpoint holds a peft LoRA adapter over base weights (merged on export)

    def __post_init__(self) -> None:
        object.__setattr__(self, "dims", checked_dims(self.dims))
        missing = sorted(set(DEFAULT_INSTRUCTIONS) - set(self.instructions))
        if missing:
            raise ValueError(f"instructions missing for element kinds {missing}")
        if not 0 < self.min_pixels <= self.max_pixels:
            raise ValueError(f"need 0 < min_pixels <= max_pixels, got {self.min_pixels}, {self.max_pixels}")
        if self.max_pixels < IMAGE_FACTOR * IMAGE_FACTOR:
            raise ValueError(f"max_pixels must be >= {IMAGE_FACTOR}^2, got {self.max_pixels}")
        object.__setattr__(self, "crop_boxes", checked_boxes(self.crop_boxes))
        for name in ("max_body_pieces", "piece_chars", "max_ocr_texts", "max_note_chars", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")

    @property
    def dim(self) -> int:
        """The full embedding dim D (the last Matryoshka dim)."""
        return self.dims[-1]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict, with "backbone": "qwen3vl"."""
        return config_to_dict(self, BACKBONE)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Qwen3VLEncoderConfig":
        """Inverse of to_dict (model_version, written by export, is not a field). Raises ValueError for
        another backbone or unknown keys."""
        return config_from_dict(cls, d, BACKBONE, ignore=("model_version",))

    def save(self, folder: Path, **extra: Any) -> Path:
        """Write folder/uninote.json (plus `extra` keys such as model_version). Returns the path."""
        path = Path(folder) / CONFIG_FILE
        path.write_text(json.dumps(self.to_dict() | extra, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        return path

    @classmethod
    def load(cls, folder: Path) -> "Qwen3VLEncoderConfig":
        """Read folder/uninote.json. Raises FileNotFoundError if absent, ValueError if malformed."""
        path = Path(folder) / CONFIG_FILE
        if not path.is_file():
            raise FileNotFoundError(f"no {CONFIG_FILE} in {folder}: not a UniNote Qwen3-VL checkpoint")
        try:
            d = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise ValueError(f"{path} is not valid JSON: {e.msg} (line {e.lineno})") from e
        if not isinstance(d, dict):
            raise ValueError(f"{path} must hold a JSON object")
        return cls.from_dict(d)


def is_qwen3vl_checkpoint(folder: Path) -> bool:
    """True when `folder` holds a uninote.json with "backbone": "qwen3vl" (for encoder/loading.py)."""
    path = Path(folder) / CONFIG_FILE
    try:
        return json.loads(path.read_text(encoding="utf-8")).get("backbone") == BACKBONE
    except (OSError, ValueError, AttributeError):
        return False


def is_qwen3vl_folder(folder: Path) -> bool:
    """True for a UniNote Qwen3-VL checkpoint (is_qwen3vl_checkpoint) or base weights: a Hugging Face folder
    whose config.json has model_type "qwen3_vl" (Qwen3-VL-*-Instruct). Training starts from either."""
    if is_qwen3vl_checkpoint(folder):
        return True
    try:
        return json.loads((Path(folder) / "config.json").read_text(encoding="utf-8")).get("model_type") == "qwen3_vl"
    except (OSError, ValueError, AttributeError):
        return False
