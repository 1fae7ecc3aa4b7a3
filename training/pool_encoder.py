"""PoolEncoder: what stage 2 (GRPO, paper §3.3) needs of a model, whatever its backbone.

GRPO only ever compares global note vectors: a pool query against its G candidates. An encoder turns
(pseudo-)notes of training.graded_pools into L2-normalised (M, D) vectors with gradients, names the parts
it trains, and saves itself. The compact model does it from cached tower features
(training.grpo_features.CompactPoolEncoder), Qwen3-VL from the notes' images and texts
(training.grpo_qwen3vl_encoder.Qwen3VLPoolEncoder).
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, Sequence

import torch
from torch import Tensor, nn

from training.graded_pools import PoolNote


class PoolEncoder(Protocol):
    """An nn.Module. dims: its Matryoshka dims, ascending; the last is the full dim D."""

    dims: tuple[int, ...]
    training: bool

    def embed(self, notes: Sequence[PoolNote]) -> Tensor:
        """notes -> (M, D) float32, L2-normalised, differentiable. Raises KeyError / ValueError for a note
        whose elements the encoder cannot find, or a note without elements."""
        ...

    def set_trainable(self, parts: Sequence[str]) -> list[nn.Parameter]:
        """Freeze all but the named parts; returns the trainable parameters. Raises ValueError naming an
        unknown part."""
        ...

    def save(self, folder: Path, card: str) -> str:
        """Write a checkpoint (+ MODEL_CARD.md = card) into folder; returns its model_version."""
        ...

    def eval(self) -> "PoolEncoder": ...

    def train(self, mode: bool = True) -> "PoolEncoder": ...


@torch.no_grad()
def embed_all(encoder: PoolEncoder, notes: Sequence[PoolNote], chunk: int = 256) -> Tensor:
    """Every note's vector without gradients, in eval mode: (N, D) float32, `chunk` notes at a time."""
    was_training = encoder.training
    encoder.eval()
    try:
        out = [encoder.embed(list(notes[s : s + chunk])) for s in range(0, len(notes), chunk)]
    finally:
        encoder.train(was_training)
    return torch.cat(out) if out else torch.zeros(0, encoder.dims[-1])
