"""Ship a trained stage-1 checkpoint as the default encoder: evaluate it on the held-out split and write the heads
plus MODEL_CARD.md into encoder/checkpoints/compact (encoder.checkpoint.save_checkpoint; heads only)."""

from __future__ import annotations

from pathlib import Path

from encoder.checkpoint import load_checkpoint, save_checkpoint
from training.evaluation import EvalTable, evaluate
from training.model_card import model_card
from training.sft_config import SFTConfig

SHIPPED = Path(__file__).resolve().parents[1] / "encoder" / "checkpoints" / "compact"


def ship_checkpoint(checkpoint: Path, *, config_path: Path, command: str, train_seconds: float,
                    notes: str = "", dest: Path = SHIPPED) -> tuple[str, EvalTable]:
    """Evaluate `checkpoint`, then save it with its model card into `dest`. Returns (model_version, table)."""
    table = evaluate(checkpoint, config_path=config_path)
    card = model_card(SFTConfig.load(config_path), table, command=command, train_seconds=train_seconds, notes=notes)
    return save_checkpoint(load_checkpoint(checkpoint), dest, card), table
