"""CompactSFTBackbone: the compact UniNote model as a stage-1 backbone (training.sft_task.SFTBackbone).

Its towers are frozen, so their outputs come from the corpus' cached features (training.sft_corpus) and a
training step runs only the heads and the fusion. The teacher (soft targets) is the frozen base towers:
whole-image GeM features for views, e5 features for texts, and [unit mean image GeM, unit mean e5] / sqrt(2)
for notes.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from encoder.checkpoint import save_checkpoint
from encoder.compact import CompactUniNote
from encoder.heads import KIND_IDS
from encoder.towers import IMAGE_FEATURE_DIM, TEXT_FEATURE_DIM
from encoder.types import ElementKind
from training.sft_batches import NoteSpec
from training.sft_corpus import CorpusFeatures


class CompactSFTBackbone(nn.Module):
    """model: the CompactUniNote whose heads train; features: the training corpus' cached tower outputs
    (a plain attribute: cached inputs, never trained or saved)."""

    def __init__(self, model: CompactUniNote, features: CorpusFeatures):
        super().__init__()
        self.model = model
        self.features = features

    @property
    def dims(self) -> tuple[int, ...]:
        return self.model.config.dims

    def _view_feats(self, views: list[int]) -> Tensor:
        return self.features.views[torch.as_tensor(views, dtype=torch.long), 0].float()  # (n, 1280)

    def _text_feats(self, texts: list[int]) -> Tensor:
        return self.features.texts[torch.as_tensor(texts, dtype=torch.long)].float()  # (n, 384)

    def embed_views(self, views: list[int]) -> Tensor:
        """view indices -> (n, D) whole-image vectors."""
        return self.model.embed_regions(self._view_feats(views))

    def embed_texts(self, texts: list[int]) -> Tensor:
        """text indices -> (n, D)."""
        return self.model.embed_texts(self._text_feats(texts))

    def embed_notes(self, notes: list[NoteSpec]) -> Tensor:
        """NoteSpecs -> (n, D) global vectors (fusion of IMAGE and text tokens, as encoder.inprocess).
        Raises ValueError for a note without tokens."""
        D = self.model.config.dim
        views = sorted({v for n in notes for v in n.views})
        texts = sorted({t for n in notes for _, t in n.texts})
        vrow, trow = {v: i for i, v in enumerate(views)}, {t: i for i, t in enumerate(texts)}
        img = self.embed_views(views) if views else torch.zeros(0, D)  # (V, D)
        txt = self.embed_texts(texts) if texts else torch.zeros(0, D)  # (N, D)
        bank = torch.cat([img, txt])  # (V+N, D)
        T = max(len(n.views) + len(n.texts) for n in notes)
        rows = torch.zeros(len(notes), T, dtype=torch.long)  # (n, T)
        kinds = torch.zeros(len(notes), T, dtype=torch.long)  # (n, T)
        mask = torch.zeros(len(notes), T, dtype=torch.bool)  # (n, T)
        for i, n in enumerate(notes):
            toks = [(vrow[v], KIND_IDS[ElementKind.IMAGE]) for v in n.views]
            toks += [(len(views) + trow[t], KIND_IDS[k]) for k, t in n.texts]
            if not toks:
                raise ValueError(f"note {i} of the batch has no tokens")
            for j, (r, k) in enumerate(toks):
                rows[i, j], kinds[i, j], mask[i, j] = r, k, True
        return self.model.fuse(bank[rows], kinds, mask)  # (n, D)

    @torch.no_grad()
    def teacher_views(self, views: list[int]) -> Tensor:
        """(n, 1280) unit base-tower GeM features."""
        return F.normalize(self._view_feats(views), dim=-1)

    @torch.no_grad()
    def teacher_texts(self, texts: list[int]) -> Tensor:
        """(n, 384) unit e5 features."""
        return F.normalize(self._text_feats(texts), dim=-1)

    @torch.no_grad()
    def teacher_notes(self, notes: list[NoteSpec]) -> Tensor:
        """(n, 1664) base-tower note vectors: [unit mean image GeM, unit mean e5] / sqrt(2), zeros where absent."""
        out = []
        for n in notes:
            img = self.teacher_views(n.views).mean(0) if n.views else torch.zeros(IMAGE_FEATURE_DIM)
            txt = self.teacher_texts([t for _, t in n.texts]).mean(0) if n.texts else torch.zeros(TEXT_FEATURE_DIM)
            out.append(torch.cat([F.normalize(img, dim=0), F.normalize(txt, dim=0)]) / 2 ** 0.5)
        return torch.stack(out)  # (n, 1664)

    def save(self, folder: Path) -> Path:
        """Write the heads as a compact checkpoint folder (encoder.checkpoint); returns the folder."""
        self.model.eval()
        save_checkpoint(self.model, folder)
        return Path(folder)
