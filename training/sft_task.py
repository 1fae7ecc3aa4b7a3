"""SFTTask: stage-1 contrastive SFT of the compact UniNote heads on cached frozen-tower features (paper §4.1).

training_forward(SFTBatch) embeds this rank's items (heads + fusion only; tower outputs come from the
CorpusFeatures), gathers them across ranks (so in-batch negatives span the global batch and the loss equals the
single-process loss), and returns one Matryoshka-wrapped InfoNCE loss per task family plus the JS soft-target
loss against the frozen base towers (teacher) on the copy and note↔note families.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from encoder.compact import CompactUniNote
from encoder.heads import KIND_IDS
from encoder.types import ElementKind
from training.distributed import gather_no_grad, gather_with_grad
from training.losses import InfoNCELoss, JSSoftTargetLoss, MatryoshkaLoss
from training.sft_batches import NoteSpec, SFTBatch
from training.sft_config import LossConfig
from training.sft_corpus import CorpusFeatures


class SFTTask(nn.Module):
    """model: the CompactUniNote whose heads train; features: the training corpus' cached tower outputs;
    original_view: Corpus.original_view (band negatives are photo indices).

    state_dict() holds the model heads and the losses' learnable temperatures.
    """

    def __init__(self, model: CompactUniNote, features: CorpusFeatures, loss: LossConfig, original_view: list[int]):
        super().__init__()
        self.model, self.cfg = model, loss
        self.features = features  # plain attribute: cached inputs, never trained or saved
        self.original_view = list(original_view)  # photo -> view row of the unedited photo (band negatives)
        dims = model.config.dims
        if len(loss.matryoshka_weights) != len(dims):
            raise ValueError(f"{len(loss.matryoshka_weights)} matryoshka_weights for dims {dims}")

        def infonce(symmetric: bool) -> MatryoshkaLoss:
            base = InfoNCELoss(loss.temperature, learnable=loss.learnable_temperature, symmetric=symmetric)
            return MatryoshkaLoss(base, dims, loss.matryoshka_weights)

        self.losses = nn.ModuleDict({"copy": infonce(True), "image_note": infonce(True),
                                     "text_note": infonce(False), "note_note": infonce(True)})
        self.soft = MatryoshkaLoss(JSSoftTargetLoss(loss.temperature, loss.teacher_temperature), dims,
                                   loss.matryoshka_weights)

    # -- embedding from cached features ----------------------------------------------------------------
    def _view_feats(self, views: list[int]) -> Tensor:
        return self.features.views[torch.as_tensor(views, dtype=torch.long), 0].float()  # (n, 1280)

    def embed_views(self, views: list[int]) -> Tensor:
        """view indices -> (n, D) whole-image vectors."""
        return self.model.embed_regions(self._view_feats(views))

    def embed_notes(self, notes: list[NoteSpec]) -> Tensor:
        """NoteSpecs -> (n, D) global vectors (fusion of IMAGE and text tokens, as encoder.inprocess)."""
        D = self.model.config.dim
        views = sorted({v for n in notes for v in n.views})
        texts = sorted({t for n in notes for _, t in n.texts})
        vrow, trow = {v: i for i, v in enumerate(views)}, {t: i for i, t in enumerate(texts)}
        img = self.embed_views(views) if views else torch.zeros(0, D)  # (V, D)
        txt = (self.model.embed_texts(self.features.texts[torch.as_tensor(texts, dtype=torch.long)])
               if texts else torch.zeros(0, D))  # (N, D)
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
    def _teacher_notes(self, notes: list[NoteSpec]) -> Tensor:
        """(n, 1664) base-tower note vectors: [unit mean image GeM, unit mean e5] / sqrt(2), zeros where absent."""
        out = []
        for n in notes:
            img = (F.normalize(self._view_feats(n.views), dim=-1).mean(0) if n.views else torch.zeros(1280))
            txt = (F.normalize(self.features.texts[[t for _, t in n.texts]], dim=-1).mean(0) if n.texts
                   else torch.zeros(384))
            out.append(torch.cat([F.normalize(img, dim=0), F.normalize(txt, dim=0)]) / 2 ** 0.5)
        return torch.stack(out)

    # -- the training step contract --------------------------------------------------------------------
    def training_forward(self, batch: SFTBatch) -> tuple[dict[str, Tensor], dict[str, float]]:
        w, cfg = self.cfg.family_weights, self.cfg
        losses: dict[str, Tensor] = {}
        if batch.copy_query and w.get("copy", 0) > 0:
            q = gather_with_grad(self.embed_views(batch.copy_query))  # (B, D)
            p = gather_with_grad(self.embed_views(batch.copy_positive))  # (B, D)
            band = torch.as_tensor(batch.copy_band, dtype=torch.long)  # (b, K) photo indices
            hard_mask = band >= 0
            hard_views = [self._band_view(int(x)) for x in band.clamp(min=0).flatten()]
            hard = self.embed_views(hard_views).reshape(band.shape[0], band.shape[1], -1)  # (b, K, D)
            hard = gather_with_grad(hard)  # (B, K, D)
            hard_mask = gather_no_grad(hard_mask)
            losses["copy"] = w["copy"] * self.losses["copy"](q, p, hard, hard_mask=hard_mask)
            if cfg.soft_target_weight > 0:
                tq = gather_no_grad(F.normalize(self._view_feats(batch.copy_query), dim=-1))  # (B, 1280)
                tp = gather_no_grad(F.normalize(self._view_feats(batch.copy_positive), dim=-1))  # (B, 1280)
                losses["soft_copy"] = cfg.soft_target_weight * self.soft(q, p, teacher_similarity=tq @ tp.T)
        if batch.image_query and w.get("image_note", 0) > 0:
            q = gather_with_grad(self.embed_views(batch.image_query))  # (B, D)
            p = gather_with_grad(self.embed_notes(batch.image_positive))  # (B, D)
            rule = None
            if cfg.rule_negatives:
                rule = gather_with_grad(self.embed_notes(batch.image_rule)).unsqueeze(1)  # (B, 1, D)
            losses["image_note"] = w["image_note"] * self.losses["image_note"](q, p, rule)
        if batch.text_query and w.get("text_note", 0) > 0:
            feats = self.features.texts[torch.as_tensor(batch.text_query, dtype=torch.long)]
            q = gather_with_grad(self.model.embed_texts(feats))  # (B, D)
            p = gather_with_grad(self.embed_notes(batch.text_positive))  # (B, D)
            losses["text_note"] = w["text_note"] * self.losses["text_note"](q, p)
        if batch.note_query and w.get("note_note", 0) > 0:
            q = gather_with_grad(self.embed_notes(batch.note_query))  # (B, D)
            p = gather_with_grad(self.embed_notes(batch.note_positive))  # (B, D)
            has_hard = torch.tensor([h is not None for h in batch.note_hard])  # (b,)
            hard_notes = [h if h is not None else s for h, s in zip(batch.note_hard, batch.note_query)]
            hard = gather_with_grad(self.embed_notes(hard_notes).unsqueeze(1))  # (B, 1, D)
            hard_mask = gather_no_grad(has_hard.unsqueeze(1))  # (B, 1)
            losses["note_note"] = w["note_note"] * self.losses["note_note"](q, p, hard, hard_mask=hard_mask)
            if cfg.soft_target_weight > 0:
                tq = gather_no_grad(self._teacher_notes(batch.note_query))
                tp = gather_no_grad(self._teacher_notes(batch.note_positive))
                losses["soft_note"] = cfg.soft_target_weight * self.soft(q, p, teacher_similarity=tq @ tp.T)
        report = {"items": float(batch.items)}
        for name, mod in self.losses.items():
            report[f"temperature/{name}"] = float(1.0 / mod.base.scale.detach())
        return losses, report

    def _band_view(self, photo: int) -> int:
        return self.original_view[photo]
