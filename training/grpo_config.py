"""`GRPOConfig`: every knob of stage 2 (GRPO ranking alignment), trl's GRPOConfig style.

Each field is a dataclass field with a help text (`GRPOConfig.help()` prints them). Load from TOML with
`GRPOConfig.from_toml(path)`; unknown keys and wrong types raise ValueError naming the key. The shipped
config is training/configs/grpo_compact.toml.
"""

from __future__ import annotations

import tomllib
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from training.rewards import RewardWeights
from training.sft_config import TORCH_DTYPES


@dataclass
class GRPOConfig:
    # --- group and policy -------------------------------------------------------------------------------
    group_size: int = field(default=24, metadata={"help": (
        "G: candidates retrieved per query by the stage-1 model; must exceed the largest number of graded "
        "targets of a pool (|A images| + 1).")})
    temperature: float = field(default=0.05, metadata={"help": (
        "τ: temperature of the policy softmax over the G candidate cosine similarities.")})
    beta: float = field(default=0.1, metadata={"help": (
        "β: weight of KL(π_θ ‖ π_ref), π_ref being the frozen stage-1 model; 0 disables the reference.")})
    advantage_eps: float = field(default=1e-4, metadata={"help": (
        "ε in A_i = (r_i - mean) / (std + ε), the group-relative advantage.")})
    matryoshka_dims: tuple[int, ...] = field(default=(64, 512), metadata={"help": (
        "Matryoshka (MRL) dims at which the policy is built and the loss applied (mean over dims); each "
        "must be a dim of the model. Including the prefetch dim keeps the coarse stage aligned too.")})
    force_targets: bool = field(default=True, metadata={"help": (
        "Put graded targets the stage-1 model missed into the group (replacing its lowest irrelevant "
        "candidates) so the policy can learn to pull them up.")})

    # --- rewards (training/rewards.py) ------------------------------------------------------------------
    w_irrelevant: float = field(default=1.0, metadata={"help": (
        "Weight of the irrelevant-candidate penalty (grows the higher an irrelevant candidate ranks).")})
    w_relevance: float = field(default=1.0, metadata={"help": "Weight of the base reward of relevant candidates."})
    w_position: float = field(default=1.0, metadata={"help": (
        "Weight of the absolute-position reward (predicted rank near its true grade rank).")})
    w_order: float = field(default=1.0, metadata={"help": "Weight of the pairwise order-agreement reward."})

    # --- graded pools (training/graded_pools.py) --------------------------------------------------------
    noise_per_pool: int = field(default=4, metadata={"help": (
        "Unrelated partial notes (other products) added to each pool as grade-0 noise.")})
    query_fraction: float = field(default=0.5, metadata={"help": (
        "Fraction of a note's elements (images and texts separately) that goes to the query half A.")})
    min_images: int = field(default=2, metadata={"help": (
        "Notes with fewer images are not made into pools (they still serve as library / noise).")})

    text_anchor_weight: float = field(default=1.0, metadata={"help": (
        "Weight of the text-only anchor: squared difference between the policy's and π_ref's cosines from "
        "each query's text-only part to its candidates' (every Matryoshka dim). Pool queries always hold an "
        "image, so without it nothing keeps text-only notes apart, and app.audit scores a text-only note by "
        "its global cosine (0 = off).")})

    # --- optimisation -----------------------------------------------------------------------------------
    steps: int = field(default=150, metadata={"help": "Optimizer steps."})
    batch_size: int = field(default=16, metadata={"help": "Queries (groups) per step, over all DDP ranks."})
    grad_accum: int = field(default=1, metadata={"help": "Micro-batches accumulated per optimizer step."})
    learning_rate: float = field(default=5e-5, metadata={"help": "AdamW learning rate (after warm-up)."})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay."})
    warmup_steps: int = field(default=20, metadata={"help": (
        "Linear learning-rate warm-up steps (then cosine decay to 0, training.trainer).")})
    max_grad_norm: float = field(default=1.0, metadata={"help": "Clip the global gradient norm (0 = off)."})
    trainable: tuple[str, ...] = field(default=("fusion", "text_head"), metadata={"help": (
        "Model parts GRPO updates; the rest stays frozen. Compact: CompactUniNote sub-modules; leaving "
        "image_head frozen keeps image vectors, and so copy-detection µAP, exactly as after stage 1 "
        "(training it too cost up to 1.7 µAP points for about 1 point of P@5). Qwen3-VL: 'visual' and/or "
        "'language_model' (their LoRA adapters when the checkpoint has them).")})
    seed: int = field(default=0, metadata={"help": "Seed of the pools, the split and the batch order."})

    # --- Qwen3-VL backbone only (ignored for the compact model) --------------------------------------------
    lora_rank: int = field(default=0, metadata={"help": (
        "A new peft LoRA adapter of this rank over full stage-1 weights (0 = train the weights themselves; "
        "a LoRA stage-1 checkpoint trains its own adapter).")})
    dtype: str = field(default="float32", metadata={"help": "Weight dtype: float32 (CPU), bfloat16 (GPU)."})
    gradient_checkpointing: bool = field(default=False, metadata={"help": (
        "Recompute activations in the backward pass: G candidates x batch notes per step need it on GPUs.")})

    # --- bookkeeping ------------------------------------------------------------------------------------
    log_every: int = field(default=10, metadata={"help": "Steps between reward-curve log lines."})
    checkpoint_every: int = field(default=100, metadata={"help": "Steps between resumable trainer checkpoints."})
    max_notes: int = field(default=0, metadata={"help": (
        "Cap on training notes (0 = all); for quick runs and tests.")})

    def __post_init__(self) -> None:
        self.matryoshka_dims = tuple(int(d) for d in self.matryoshka_dims)
        self.trainable = tuple(str(t) for t in self.trainable)
        checks = [
            (self.group_size >= 2, "group_size must be >= 2"),
            (self.temperature > 0, "temperature must be > 0"),
            (self.beta >= 0, "beta must be >= 0"),
            (self.advantage_eps > 0, "advantage_eps must be > 0"),
            (len(self.matryoshka_dims) > 0 and all(d > 0 for d in self.matryoshka_dims),
             "matryoshka_dims must be non-empty positive ints"),
            (self.noise_per_pool >= 0, "noise_per_pool must be >= 0"),
            (0.0 < self.query_fraction < 1.0, "query_fraction must be in (0, 1)"),
            (self.min_images >= 1, "min_images must be >= 1"),
            (self.text_anchor_weight >= 0, "text_anchor_weight must be >= 0"),
            (self.steps >= 1, "steps must be >= 1"),
            (self.batch_size >= 1, "batch_size must be >= 1"),
            (self.grad_accum >= 1, "grad_accum must be >= 1"),
            (self.batch_size % self.grad_accum == 0, "batch_size must be a multiple of grad_accum"),
            (self.learning_rate > 0, "learning_rate must be > 0"),
            (self.warmup_steps >= 0, "warmup_steps must be >= 0"),
            (self.max_grad_norm >= 0, "max_grad_norm must be >= 0"),
            (len(self.trainable) > 0, "trainable must name at least one module"),
            (self.log_every >= 1 and self.checkpoint_every >= 1, "log_every and checkpoint_every must be >= 1"),
            (self.max_notes >= 0, "max_notes must be >= 0"),
            (self.lora_rank >= 0, "lora_rank must be >= 0"),
            (self.dtype in TORCH_DTYPES, f"dtype must be one of {TORCH_DTYPES}"),
        ]
        for ok, msg in checks:
            if not ok:
                raise ValueError(f"GRPOConfig: {msg}")

    @property
    def reward_weights(self) -> RewardWeights:
        return RewardWeights(self.w_irrelevant, self.w_relevance, self.w_position, self.w_order)

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "GRPOConfig":
        """Build from a flat dict (as in TOML); raises ValueError naming unknown keys or bad types."""
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise ValueError(f"GRPOConfig: unknown keys {unknown}; known: {sorted(known)}")
        kwargs: dict[str, Any] = {}
        for key, value in data.items():
            default = known[key].default
            want = type(default) if default is not MISSING else None
            if want is tuple:
                if not isinstance(value, (list, tuple)):
                    raise ValueError(f"GRPOConfig: {key} must be a list, got {value!r}")
                value = tuple(value)
            elif want is float and isinstance(value, int) and not isinstance(value, bool):
                value = float(value)
            elif want is not None and not isinstance(value, want) or (want is int and isinstance(value, bool)):
                raise ValueError(f"GRPOConfig: {key} must be {want.__name__}, got {value!r}")
            kwargs[key] = value
        return cls(**kwargs)

    @classmethod
    def from_toml(cls, path: Path) -> "GRPOConfig":
        """Read a TOML file (flat keys, or a [grpo] table). Raises FileNotFoundError / ValueError."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no GRPO config at {path}")
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as e:
            raise ValueError(f"{path}: not valid TOML: {e}") from e
        return cls.from_dict(data.get("grpo", data))

    @classmethod
    def help(cls) -> str:
        """One line per field: name (type, default): help text."""
        return "\n".join(
            f"{f.name} ({f.type}, default {f.default!r}): {f.metadata['help']}" for f in fields(cls)
        )
