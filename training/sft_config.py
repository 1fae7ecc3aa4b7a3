"""SFTConfig: every knob of stage 1 (contrastive SFT with Matryoshka), loadable from TOML or JSON.

Paper §4.1 (Zhao et al., KDD 2026): contrastive SFT over task families (image→note, note→image, copy
image↔image, text→note, note↔note) with in-batch, rule and band negatives, a soft-target (JS divergence)
term against a teacher, and MRL over the nested dims. Field comments are the help texts.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

TORCH_DTYPES = ("float32", "bfloat16", "float16")  # names of torch dtypes a Qwen3-VL model may train in


@dataclass
class DataConfig:
    data_root: str | None = None  # ../shared/data when None
    cache_dir: str | None = None  # frozen-feature cache; ~/.cache/uninote/features when None
    max_photos_per_product: int = 30  # grocery photos per product (seeded shuffle)
    max_clothing: int = 600  # clothing items per side (train/ for training, test/ for evaluation)
    max_distractors: int = 200  # held-out distractor queries (clothing validation/ photos)
    train_edits_per_photo: int = 1  # seeded copy edits per training photo (feature extraction cost!)
    eval_edits_per_photo: int = 1  # seeded copy edits per held-out photo (the copy queries)
    max_reviews: int = 870  # Chinese reviews used as note bodies, per side (e5 runs ~4-10 texts/s here)
    images_per_note: tuple[int, int] = (1, 4)  # images in a sampled note (inclusive range)
    seed: int = 0  # split shuffles and edit seeds


@dataclass
class LossConfig:
    temperature: float = 0.05  # InfoNCE temperature (initial value when learnable)
    learnable_temperature: bool = True  # CLIP-style learnable logit scale, clamped to [1, 100]
    soft_target_weight: float = 0.2  # weight of the JS soft-target loss (teacher = frozen base towers)
    teacher_temperature: float = 0.05  # temperature of the teacher's similarity distribution
    matryoshka_weights: tuple[float, ...] = (1.0, 1.0, 1.0, 1.0)  # one per Matryoshka dim, smallest first
    family_weights: dict[str, float] = field(default_factory=lambda: {
        "copy": 2.0, "image_note": 1.0, "text_note": 0.5, "note_note": 1.0, "text_geometry": 1.0})  # task family -> weight
    band: tuple[float, float] = (0.5, 0.7)  # band negatives: untrained-model similarity in this range
    band_negatives: int = 2  # band negatives per copy query
    rule_negatives: bool = True  # image→note: the positive note minus the query image is a negative


@dataclass
class TrainConfig:
    steps: int = 400  # optimizer steps
    batch_size: int = 64  # global batch per task family (split across DDP ranks)
    grad_accum: int = 1  # micro-batches per optimizer step
    lr: float = 1e-4  # AdamW peak learning rate (2e-3 over-fits the heads: held-out copy µAP falls below untrained)
    weight_decay: float = 0.01
    warmup_steps: int = 20  # linear warm-up, then cosine decay to 0
    max_grad_norm: float = 1.0  # gradient clipping (0 = off)
    checkpoint_every: int = 100  # trainer state written every N steps (resume point)
    log_every: int = 20  # steps between log lines
    seed: int = 0  # torch RNG and batch sampling
    num_threads: int = 2  # torch CPU threads
    trainable: tuple[str, ...] = ("image_head", "text_head", "fusion")  # compact heads that train (the rest stay as --init has them)


@dataclass
class Qwen3VLTrainConfig:
    """Used only when training starts from a Qwen3-VL folder (`--init`, the paper's backbone)."""

    lora_rank: int = 0  # 0 = full fine-tuning; r > 0 = a new peft LoRA adapter of rank r (the 'lora' extra)
    dtype: str = "float32"  # weight dtype: float32 (CPU), bfloat16 (GPU)
    gradient_checkpointing: bool = False  # recompute activations in backward: less memory, ~30 % slower
    image_cache: int = 2048  # rendered, resized training images kept in memory per process (LRU)


@dataclass
class SFTConfig:
    data: DataConfig = field(default_factory=DataConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    qwen3vl: Qwen3VLTrainConfig = field(default_factory=Qwen3VLTrainConfig)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "SFTConfig":
        """From a nested dict ({"data": {...}, "loss": {...}, "train": {...}, "qwen3vl": {...}}). Raises
        ValueError naming an unknown section or key."""
        sections = {"data": DataConfig, "loss": LossConfig, "train": TrainConfig, "qwen3vl": Qwen3VLTrainConfig}
        unknown = sorted(set(d) - set(sections))
        if unknown:
            raise ValueError(f"unknown SFT config sections {unknown}; expected {sorted(sections)}")
        built = {}
        for name, klass in sections.items():
            raw = dict(d.get(name, {}))
            known = {f.name: f for f in fields(klass)}
            bad = sorted(set(raw) - set(known))
            if bad:
                raise ValueError(f"unknown keys in [{name}]: {bad}; known: {sorted(known)}")
            for key, value in raw.items():
                if isinstance(value, list):
                    raw[key] = tuple(value)
            built[name] = klass(**raw)
        cfg = cls(**built)
        cfg.validate()
        return cfg

    @classmethod
    def load(cls, path: Path | None) -> "SFTConfig":
        """From a .toml or .json file; defaults when path is None. Raises FileNotFoundError, ValueError."""
        if path is None:
            return cls()
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"SFT config not found: {path}")
        text = path.read_text(encoding="utf-8")
        try:
            d = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
        except (tomllib.TOMLDecodeError, json.JSONDecodeError) as e:
            raise ValueError(f"{path}: {e}") from e
        return cls.from_dict(d)

    def validate(self) -> None:
        """Raises ValueError naming the first bad field."""
        t, lo, da = self.train, self.loss, self.data
        if t.steps < 1 or t.batch_size < 2 or t.grad_accum < 1:
            raise ValueError(f"train.steps >= 1, batch_size >= 2, grad_accum >= 1 required, got {t}")
        if not lo.temperature > 0:
            raise ValueError(f"loss.temperature must be > 0, got {lo.temperature}")
        if not 0 <= lo.band[0] < lo.band[1] <= 1:
            raise ValueError(f"loss.band must be 0 <= lo < hi <= 1, got {lo.band}")
        known = {"copy", "image_note", "text_note", "note_note", "text_geometry"}
        if set(lo.family_weights) - known:
            raise ValueError(f"unknown task families {sorted(set(lo.family_weights) - known)}; known {sorted(known)}")
        if da.images_per_note[0] < 1 or da.images_per_note[1] < da.images_per_note[0]:
            raise ValueError(f"data.images_per_note must be (lo>=1, hi>=lo), got {da.images_per_note}")
        q = self.qwen3vl
        if q.lora_rank < 0 or q.image_cache < 0 or q.dtype not in TORCH_DTYPES:
            raise ValueError(f"qwen3vl: lora_rank >= 0, image_cache >= 0, dtype in {sorted(TORCH_DTYPES)} required, got {q}")
