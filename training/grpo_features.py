"""Embedding (pseudo-)notes from cached frozen-tower features, for stage 2 (GRPO).

`FeatureBank` holds the frozen towers' outputs of every element once: the whole-image GeM feature of
each image (region 0 of CompactUniNote.region_features; crops do not enter the note fusion) and the e5
feature of each text. `NoteTokens` is the fixed token layout of a list of `PoolNote`s (rows into the
bank), so a training step only runs the trainable heads and the fusion on the elements it needs.
`CompactPoolEncoder` wraps both as stage 2's PoolEncoder (training.pool_encoder).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor, nn

from encoder.checkpoint import save_checkpoint
from encoder.compact import CompactUniNote
from encoder.heads import KIND_IDS
from encoder.types import ElementKind
from training.graded_pools import PoolNote


@dataclass
class FeatureBank:
    """Cached frozen features. image_feats: (I, 1280) float32; text_feats: (N, 384) float32.

    image_rows / text_rows: element key -> row. Raises ValueError when sizes disagree.
    """

    image_rows: dict[str, int]
    image_feats: Tensor
    text_rows: dict[str, int]
    text_feats: Tensor

    def __post_init__(self) -> None:
        if self.image_feats.dim() != 2 or self.text_feats.dim() != 2:
            raise ValueError(
                f"FeatureBank: image_feats (I, C) and text_feats (N, C) expected, got "
                f"{tuple(self.image_feats.shape)} and {tuple(self.text_feats.shape)}"
            )
        if len(self.image_rows) != self.image_feats.shape[0] or len(self.text_rows) != self.text_feats.shape[0]:
            raise ValueError("FeatureBank: key maps and feature rows differ in length")

    @property
    def n_images(self) -> int:
        return self.image_feats.shape[0]


@dataclass
class NoteTokens:
    """Token layout of N notes. rows: (N, T) int64 into [images; texts] of a bank (texts offset by I);
    kinds: (N, T) int64 encoder.heads.KIND_IDS; mask: (N, T) bool, True = real token."""

    rows: Tensor
    kinds: Tensor
    mask: Tensor

    def __len__(self) -> int:
        return self.rows.shape[0]


def note_tokens(notes: Sequence[PoolNote], bank: FeatureBank) -> NoteTokens:
    """The token layout of `notes`. Raises KeyError naming a note whose element is not in the bank,
    ValueError for a note without elements."""
    T = max((len(n.elements) for n in notes), default=1)
    rows = torch.zeros(len(notes), T, dtype=torch.long)  # (N, T)
    kinds = torch.zeros(len(notes), T, dtype=torch.long)  # (N, T)
    mask = torch.zeros(len(notes), T, dtype=torch.bool)  # (N, T)
    for i, note in enumerate(notes):
        if not note.elements:
            raise ValueError(f"note {note.note_id!r} has no elements")
        for t, e in enumerate(note.elements):
            try:
                if e.kind == ElementKind.IMAGE:
                    rows[i, t] = bank.image_rows[e.key]
                else:
                    rows[i, t] = bank.n_images + bank.text_rows[e.key]
            except KeyError:
                raise KeyError(f"note {note.note_id!r}: element {e.kind.value} {e.key!r} has no cached feature") from None
            kinds[i, t] = KIND_IDS[e.kind]
            mask[i, t] = True
    return NoteTokens(rows, kinds, mask)


def embed_notes(model: CompactUniNote, bank: FeatureBank, tokens: NoteTokens) -> Tensor:
    """Global vectors of the M notes of `tokens` -> (M, D) float32, L2-normalised.

    Each distinct element goes through its head once; gradients reach the heads and the fusion.
    """
    rows, kinds, mask = tokens.rows, tokens.kinds, tokens.mask  # (M, T) each
    used = torch.unique(rows[mask])  # (U,) sorted: image rows first, then text rows
    n_img = bank.n_images
    img_used, txt_used = used[used < n_img], used[used >= n_img] - n_img
    parts = []
    if len(img_used):
        parts.append(model.embed_regions(bank.image_feats[img_used]))  # (Ui, D)
    if len(txt_used):
        parts.append(model.embed_texts(bank.text_feats[txt_used]))  # (Ut, D)
    table = torch.cat(parts)  # (U, D), row order = `used`
    local = torch.searchsorted(used, rows).clamp(max=len(used) - 1)  # (M, T)
    tok = table[local] * mask.unsqueeze(-1)  # (M, T, D)
    return model.fuse(tok, kinds, mask)  # (M, D)


class CompactPoolEncoder(nn.Module):
    """The compact model as a training.pool_encoder.PoolEncoder over a FeatureBank: a step runs only the
    heads and the fusion. model: trained in place; bank: cached inputs, never trained or saved."""

    def __init__(self, model: CompactUniNote, bank: FeatureBank):
        super().__init__()
        self.model, self.bank = model, bank

    @property
    def dims(self) -> tuple[int, ...]:
        return self.model.config.dims

    def embed(self, notes: Sequence[PoolNote]) -> Tensor:
        """notes -> (M, D); see note_tokens for the errors."""
        return embed_notes(self.model, self.bank, note_tokens(notes, self.bank))

    def set_trainable(self, parts: Sequence[str]) -> list[nn.Parameter]:
        """parts: names of CompactUniNote sub-modules (image_head, text_head, fusion)."""
        return self.model.set_trainable(parts)

    def save(self, folder: Path, card: str) -> str:
        """A compact checkpoint (encoder.checkpoint): config.json, heads.safetensors, MODEL_CARD.md."""
        return save_checkpoint(self.model, folder, card)


def prefix_sims(queries: Tensor, candidates: Tensor, dim: int) -> Tensor:
    """Cosine similarity at Matryoshka dim `dim` (MRL prefix, L2-renormalised).

    queries (B, D), candidates (B, G, D) -> (B, G); or candidates (N, D) -> (B, N).
    """
    q = F.normalize(queries[..., :dim], dim=-1)  # (B, d)
    c = F.normalize(candidates[..., :dim], dim=-1)  # (B, G, d) or (N, d)
    if c.dim() == 3:
        return torch.einsum("bd,bgd->bg", q, c)  # (B, G)
    return q @ c.T  # (B, N)


@torch.no_grad()
def build_feature_bank(
    model: CompactUniNote, images: dict[str, Image.Image], texts: dict[str, str], chunk: int = 16
) -> FeatureBank:
    """Run the frozen towers once over `images` (key -> RGB PIL image) and `texts` (key -> string).

    Keeps the whole-image region (region 0) of each image. Prefer the stage-1 feature cache for large
    sets; this is the direct route (tests, small runs).
    """
    img_keys, txt_keys = list(images), list(texts)
    feats = [model.region_features([images[k] for k in img_keys[s : s + chunk]])[:, 0]  # (b, 1280)
             for s in range(0, len(img_keys), chunk)]
    tfeats = [model.text_features([texts[k] for k in txt_keys[s : s + 4 * chunk]])  # (b, 384)
              for s in range(0, len(txt_keys), 4 * chunk)]
    return FeatureBank(
        {k: i for i, k in enumerate(img_keys)},
        torch.cat(feats) if feats else torch.zeros(0, 1280),
        {k: i for i, k in enumerate(txt_keys)},
        torch.cat(tfeats) if tfeats else torch.zeros(0, 384),
    )
