"""SFTTask: stage-1 contrastive SFT (paper §4.1) on any backbone, as one trainer task.

The task owns the objective; an `SFTBackbone` owns the model. The backbone turns the sampler's indices
(training.sft_batches: views, texts, NoteSpecs) into L2-normalised (n, D) embeddings with gradients, and
into a frozen teacher's vectors without: the compact backbone from cached frozen-tower features
(training.sft_compact_backbone), the Qwen3-VL backbone through the model itself
(training.sft_qwen3vl_backbone). The same batches and losses run on both.

training_forward(SFTBatch) embeds this rank's items, gathers them across ranks in one collective (so in-batch
negatives span the global batch and the loss equals the single-process loss), and returns one
Matryoshka-wrapped InfoNCE loss per task family (copy with band negatives, image↔note with the rule negative,
text→note, note↔note with a same-product hard negative) plus the JS soft-target loss against the teacher on the
copy and note↔note families and on random texts (text_geometry).
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import torch
from torch import Tensor, nn

from training.distributed import gather_dict_with_grad, gather_no_grad
from training.losses import InfoNCELoss, JSSoftTargetLoss, MatryoshkaLoss
from training.sft_batches import NoteSpec, SFTBatch
from training.sft_config import LossConfig


class SFTBackbone(Protocol):
    """What SFTTask needs of a model (an nn.Module whose trainable parameters are the model's).

    embed_*: (n, D) float32, L2-normalised, differentiable. teacher_*: (n, D_t) float32, L2-normalised, no
    gradient: the frozen teacher whose similarities are the soft targets (any D_t).
    """

    dims: tuple[int, ...]

    def embed_views(self, views: list[int]) -> Tensor: ...

    def embed_texts(self, texts: list[int]) -> Tensor: ...

    def embed_notes(self, notes: list[NoteSpec]) -> Tensor: ...

    def teacher_views(self, views: list[int]) -> Tensor: ...

    def teacher_texts(self, texts: list[int]) -> Tensor: ...

    def teacher_notes(self, notes: list[NoteSpec]) -> Tensor: ...

    def save(self, folder: Path) -> Path: ...


class SFTTask(nn.Module):
    """backbone: the model being trained; loss: the objective's knobs; original_view: Corpus.original_view
    (band negatives are photo indices, embedded through their unedited view).

    state_dict() holds the backbone's weights and the losses' learnable temperatures. Raises ValueError when
    loss.matryoshka_weights does not give one weight per backbone dim.
    """

    def __init__(self, backbone: SFTBackbone, loss: LossConfig, original_view: list[int]):
        super().__init__()
        self.backbone, self.cfg = backbone, loss
        self.original_view = list(original_view)
        dims = backbone.dims
        if len(loss.matryoshka_weights) != len(dims):
            raise ValueError(f"{len(loss.matryoshka_weights)} loss.matryoshka_weights for the model's dims {dims}")

        def infonce(symmetric: bool) -> MatryoshkaLoss:
            base = InfoNCELoss(loss.temperature, learnable=loss.learnable_temperature, symmetric=symmetric)
            return MatryoshkaLoss(base, dims, loss.matryoshka_weights)

        self.losses = nn.ModuleDict({"copy": infonce(True), "image_note": infonce(True),
                                     "text_note": infonce(False), "note_note": infonce(True)})
        self.soft = MatryoshkaLoss(JSSoftTargetLoss(loss.temperature, loss.teacher_temperature), dims,
                                   loss.matryoshka_weights)

    def _local_embeddings(self, batch: SFTBatch) -> dict[str, Tensor]:
        """This rank's embeddings of every family, name -> (b, D) or (b, K, D)."""
        m, w, out = self.backbone, self.cfg.family_weights, {}
        if batch.copy_query and w.get("copy", 0) > 0:
            out["copy_q"] = m.embed_views(batch.copy_query)  # (b, D)
            out["copy_p"] = m.embed_views(batch.copy_positive)  # (b, D)
            band = torch.as_tensor(batch.copy_band, dtype=torch.long).clamp(min=0)  # (b, K) photo indices
            hard = m.embed_views([self.original_view[int(x)] for x in band.flatten()])  # (b*K, D)
            out["copy_h"] = hard.reshape(band.shape[0], band.shape[1], -1)  # (b, K, D)
        if batch.image_query and w.get("image_note", 0) > 0:
            out["image_q"] = m.embed_views(batch.image_query)  # (b, D)
            out["image_p"] = m.embed_notes(batch.image_positive)  # (b, D)
            if self.cfg.rule_negatives:
                out["image_h"] = m.embed_notes(batch.image_rule).unsqueeze(1)  # (b, 1, D)
        if batch.text_query and w.get("text_note", 0) > 0:
            out["text_q"] = m.embed_texts(batch.text_query)  # (b, D)
            out["text_p"] = m.embed_notes(batch.text_positive)  # (b, D)
        if batch.note_query and w.get("note_note", 0) > 0:
            out["note_q"] = m.embed_notes(batch.note_query)  # (b, D)
            out["note_p"] = m.embed_notes(batch.note_positive)  # (b, D)
            hard_notes = [h if h is not None else s for h, s in zip(batch.note_hard, batch.note_query)]
            out["note_h"] = m.embed_notes(hard_notes).unsqueeze(1)  # (b, 1, D)
        if batch.text_pool and w.get("text_geometry", 0) > 0:
            out["pool_t"] = m.embed_texts(batch.text_pool)  # (b, D)
        return out

    def training_forward(self, batch: SFTBatch) -> tuple[dict[str, Tensor], dict[str, float]]:
        m, w, cfg = self.backbone, self.cfg.family_weights, self.cfg
        e = gather_dict_with_grad(self._local_embeddings(batch))
        device = next(iter(e.values())).device if e else torch.device("cpu")

        def gathered(x: Tensor) -> Tensor:  # this rank's masks / teacher vectors -> the global batch's
            return gather_no_grad(x.to(device))

        def teacher_similarity(queries: Tensor, candidates: Tensor) -> Tensor:  # (b, D_t) each -> (B, B)
            return gathered(queries) @ gathered(candidates).T

        soft = cfg.soft_target_weight > 0
        losses: dict[str, Tensor] = {}
        if "copy_q" in e:
            hard_mask = gathered(torch.as_tensor(batch.copy_band, dtype=torch.long) >= 0)  # (B, K)
            losses["copy"] = w["copy"] * self.losses["copy"](e["copy_q"], e["copy_p"], e["copy_h"], hard_mask=hard_mask)
            if soft:
                teacher = teacher_similarity(m.teacher_views(batch.copy_query), m.teacher_views(batch.copy_positive))
                losses["soft_copy"] = cfg.soft_target_weight * self.soft(e["copy_q"], e["copy_p"],
                                                                         teacher_similarity=teacher)
        if "image_q" in e:
            losses["image_note"] = w["image_note"] * self.losses["image_note"](e["image_q"], e["image_p"],
                                                                              e.get("image_h"))
        if "text_q" in e:
            losses["text_note"] = w["text_note"] * self.losses["text_note"](e["text_q"], e["text_p"])
        if "note_q" in e:
            has_hard = torch.tensor([h is not None for h in batch.note_hard]).unsqueeze(1)  # (b, 1)
            losses["note_note"] = w["note_note"] * self.losses["note_note"](
                e["note_q"], e["note_p"], e["note_h"], hard_mask=gathered(has_hard))
            if soft:
                teacher = teacher_similarity(m.teacher_notes(batch.note_query), m.teacher_notes(batch.note_positive))
                losses["soft_note"] = cfg.soft_target_weight * self.soft(e["note_q"], e["note_p"],
                                                                         teacher_similarity=teacher)
        if "pool_t" in e:
            t = m.teacher_texts(batch.text_pool)  # (b, D_t)
            teacher = teacher_similarity(t, t)  # (B, B)
            off_diagonal = ~torch.eye(teacher.shape[0], dtype=torch.bool, device=device)  # (B, B): self-similarity says nothing
            losses["text_geometry"] = w["text_geometry"] * self.soft(e["pool_t"], e["pool_t"],
                                                                     teacher_similarity=teacher, mask=off_diagonal)
        report = {"items": float(batch.items)}
        for name, mod in self.losses.items():
            report[f"temperature/{name}"] = float(1.0 / mod.base.scale.detach())
        return losses, report
