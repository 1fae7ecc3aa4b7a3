"""SFTTask: stage-1 contrastive SFT of the compact UniNote heads on cached frozen-tower features (paper §4.1).

training_forward(SFTBatch) embeds this rank's items (heads + fusion only; tower outputs come from the
CorpusFeatures), gathers them across ranks (so in-batch negatives span the global batch and the loss equals the
single-process loss), and returns one Matryoshka-wrapped InfoNCE loss per task family plus the JS soft-target
loss against the frozen base towers (teacher) on the copy and note↔note families and on random texts
(text_geometry).
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
    def _local_embeddings(self, batch: SFTBatch) -> dict[str, Tensor]:
        """This rank's embeddings of every family, name -> (b, D) or (b, K, D)."""
        w, out = self.cfg.family_weights, {}
        if batch.copy_query and w.get("copy", 0) > 0:
            out["copy_q"] = self.embed_views(batch.copy_query)  # (b, D)
            out["copy_p"] = self.embed_views(batch.copy_positive)  # (b, D)
            band = torch.as_tensor(batch.copy_band, dtype=torch.long).clamp(min=0)  # (b, K) photo indices
            hard = self.embed_views([self._band_view(int(x)) for x in band.flatten()])
            out["copy_h"] = hard.reshape(band.shape[0], band.shape[1], -1)  # (b, K, D)
        if batch.image_query and w.get("image_note", 0) > 0:
            out["image_q"] = self.embed_views(batch.image_query)  # (b, D)
            out["image_p"] = self.embed_notes(batch.image_positive)  # (b, D)
            if self.cfg.rule_negatives:
                out["image_h"] = self.embed_notes(batch.image_rule).unsqueeze(1)  # (b, 1, D)
        if batch.text_query and w.get("text_note", 0) > 0:
            feats = self.features.texts[torch.as_tensor(batch.text_query, dtype=torch.long)]  # (b, 384)
            out["text_q"] = self.model.embed_texts(feats)  # (b, D)
            out["text_p"] = self.embed_notes(batch.text_positive)  # (b, D)
        if batch.note_query and w.get("note_note", 0) > 0:
            out["note_q"] = self.embed_notes(batch.note_query)  # (b, D)
            out["note_p"] = self.embed_notes(batch.note_positive)  # (b, D)
            hard_notes = [h if h is not None else s for h, s in zip(batch.note_hard, batch.note_query)]
            out["note_h"] = self.embed_notes(hard_notes).unsqueeze(1)  # (b, 1, D)
        if batch.text_pool and w.get("text_geometry", 0) > 0:
            feats = self.features.texts[torch.as_tensor(batch.text_pool, dtype=torch.long)]  # (b, 384)
            out["pool_t"] = self.model.embed_texts(feats)  # (b, D)
        return out

    @staticmethod
    def _gather_all(local: dict[str, Tensor]) -> dict[str, Tensor]:
        """Gather every embedding across ranks in ONE differentiable collective (several autograd collectives
        could run their backward in a different order on different ranks). name -> (W*b, ...) in rank order."""
        if not local:
            return {}
        names = list(local)
        D = local[names[0]].shape[-1]
        flat = [local[n].reshape(-1, D) for n in names]
        sizes = [f.shape[0] for f in flat]
        gathered = gather_with_grad(torch.cat(flat))  # (W * rows, D)
        world = gathered.shape[0] // sum(sizes)
        per_rank = gathered.reshape(world, sum(sizes), D)  # (W, rows, D)
        out, offset = {}, 0
        for n, size in zip(names, sizes):
            part = per_rank[:, offset : offset + size]  # (W, size, D)
            out[n] = part.reshape(world * local[n].shape[0], *local[n].shape[1:])
            offset += size
        return out

    def training_forward(self, batch: SFTBatch) -> tuple[dict[str, Tensor], dict[str, float]]:
        w, cfg = self.cfg.family_weights, self.cfg
        e = self._gather_all(self._local_embeddings(batch))
        losses: dict[str, Tensor] = {}
        if "copy_q" in e:
            hard_mask = gather_no_grad(torch.as_tensor(batch.copy_band, dtype=torch.long) >= 0)  # (B, K)
            losses["copy"] = w["copy"] * self.losses["copy"](e["copy_q"], e["copy_p"], e["copy_h"], hard_mask=hard_mask)
            if cfg.soft_target_weight > 0:
                tq = gather_no_grad(F.normalize(self._view_feats(batch.copy_query), dim=-1))  # (B, 1280)
                tp = gather_no_grad(F.normalize(self._view_feats(batch.copy_positive), dim=-1))  # (B, 1280)
                losses["soft_copy"] = cfg.soft_target_weight * self.soft(e["copy_q"], e["copy_p"],
                                                                         teacher_similarity=tq @ tp.T)
        if "image_q" in e:
            losses["image_note"] = w["image_note"] * self.losses["image_note"](e["image_q"], e["image_p"],
                                                                              e.get("image_h"))
        if "text_q" in e:
            losses["text_note"] = w["text_note"] * self.losses["text_note"](e["text_q"], e["text_p"])
        if "note_q" in e:
            has_hard = torch.tensor([h is not None for h in batch.note_hard]).unsqueeze(1)  # (b, 1)
            losses["note_note"] = w["note_note"] * self.losses["note_note"](
                e["note_q"], e["note_p"], e["note_h"], hard_mask=gather_no_grad(has_hard))
            if cfg.soft_target_weight > 0:
                tq = gather_no_grad(self._teacher_notes(batch.note_query))
                tp = gather_no_grad(self._teacher_notes(batch.note_positive))
                losses["soft_note"] = cfg.soft_target_weight * self.soft(e["note_q"], e["note_p"],
                                                                         teacher_similarity=tq @ tp.T)
        if "pool_t" in e:
            teacher = gather_no_grad(F.normalize(self.features.texts[torch.as_tensor(batch.text_pool)], dim=-1))
            off_diagonal = ~torch.eye(teacher.shape[0], dtype=torch.bool)  # (B, B): self-similarity says nothing
            losses["text_geometry"] = w["text_geometry"] * self.soft(e["pool_t"], e["pool_t"],
                                                                     teacher_similarity=teacher @ teacher.T,
                                                                     mask=off_diagonal)
        report = {"items": float(batch.items)}
        for name, mod in self.losses.items():
            report[f"temperature/{name}"] = float(1.0 / mod.base.scale.detach())
        return losses, report

    def _band_view(self, photo: int) -> int:
        return self.original_view[photo]
