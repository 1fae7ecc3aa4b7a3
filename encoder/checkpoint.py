"""Compact UniNote checkpoints: the folder format training writes and the encoder loads.

    <folder>/config.json        CompactConfig.to_dict(): {"backbone": "compact", "dims": [...], ...}
    <folder>/heads.safetensors  the trainable weights only (never the pretrained towers)
    <folder>/MODEL_CARD.md      optional: what the weights are, how they were trained

model_version = the first 12 hex chars of sha256(heads.safetensors bytes): it changes exactly when the
weights change, and an unsaved model gets the same version it would have once saved (weights_version).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from encoder.compact import CompactUniNote
from encoder.config import CompactConfig

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "heads.safetensors"
CARD_FILE = "MODEL_CARD.md"
VERSION_CHARS = 12


class CheckpointError(ValueError):
    """A checkpoint folder exists but cannot be loaded (corrupt, wrong backbone, mismatched weights)."""


def heads_bytes(model: CompactUniNote) -> bytes:
    """The exact bytes of heads.safetensors for `model` (deterministic for given weights)."""
    state = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in model.state_dict().items()}
    return save_safetensors(state)


def weights_version(model: CompactUniNote) -> str:
    """model_version of `model`: sha256(heads_bytes(model)) hex, first 12 chars."""
    return _version(heads_bytes(model))


def _version(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:VERSION_CHARS]


def save_checkpoint(model: CompactUniNote, folder: Path, card: str | None = None) -> str:
    """Write config.json + heads.safetensors (+ MODEL_CARD.md if `card`) into `folder` (created).

    Returns the model_version. Existing files of the same names are replaced; the weights file is
    written to a temporary name first and renamed, so a crash never leaves a half-written checkpoint.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    data = heads_bytes(model)
    tmp = folder / (WEIGHTS_FILE + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(folder / WEIGHTS_FILE)
    model.config.to_json(folder / CONFIG_FILE)
    if card is not None:
        (folder / CARD_FILE).write_text(card if card.endswith("\n") else card + "\n", encoding="utf-8")
    return _version(data)


def read_checkpoint_config(folder: Path) -> dict:
    """The raw config.json of a checkpoint folder (any backbone). Raises FileNotFoundError, CheckpointError."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"checkpoint folder not found: {folder}")
    path = folder / CONFIG_FILE
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {folder} has no {CONFIG_FILE}")
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path} is not valid JSON: {e}") from e
    if not isinstance(d, dict):
        raise CheckpointError(f"{path} must hold a JSON object")
    return d


def load_checkpoint(folder: Path) -> CompactUniNote:
    """Load a compact checkpoint folder -> CompactUniNote in eval mode, `model_version` attribute set.

    Raises FileNotFoundError (folder or a file missing) or CheckpointError (bad config.json, another
    backbone, corrupt safetensors, weights that do not match the config).
    """
    folder = Path(folder)
    raw = read_checkpoint_config(folder)
    if raw.get("backbone") != "compact":
        raise CheckpointError(
            f"checkpoint {folder} is for backbone {raw.get('backbone')!r}, not 'compact' "
            "(serve a Qwen3-VL checkpoint with vLLM and set ENCODER_URL)"
        )
    try:
        config = CompactConfig.from_dict(raw)
    except (ValueError, TypeError) as e:
        raise CheckpointError(f"{folder / CONFIG_FILE}: {e}") from e
    weights = folder / WEIGHTS_FILE
    if not weights.is_file():
        raise FileNotFoundError(f"checkpoint {folder} has no {WEIGHTS_FILE}")
    data = weights.read_bytes()
    try:
        state = load_safetensors(data)
    except (SafetensorError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"{weights} is not a readable safetensors file: {e}") from e
    model = CompactUniNote(config, init_weights=False)  # every weight comes from the file
    expected = model.state_dict()
    missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    if missing or unexpected:
        raise CheckpointError(f"{weights} does not match config: missing {missing}, unexpected {unexpected}")
    for name, tensor in state.items():
        if tensor.shape != expected[name].shape:
            raise CheckpointError(
                f"{weights}: {name} has shape {tuple(tensor.shape)}, config expects {tuple(expected[name].shape)}"
            )
    model.load_state_dict(state)
    model.eval()
    model.model_version = _version(data)
    return model
