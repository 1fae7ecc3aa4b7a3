"""Stage-1 contrastive SFT on the Qwen3-VL backbone, as a task with the trainer's one-step contract
`task.training_forward(batch) -> (losses, report)` (paper §3.2; open_clip's task/loss split).

A batch is B (query, positive) conversation pairs; every other row's positive is an in-batch negative.
Loss: symmetric InfoNCE (query->positive and positive->query, e.g. image->note and note->image) applied
at every Matryoshka dim on the L2-renormalised prefix (MRL, Kusupati et al. 2022), averaged over dims.
Pairs come from notes with `stage1_pairs`: image->note, crop->image, OCR->image, title->note.
The soft JS-divergence teacher targets and band/rule negatives of the compact trainer (training/) apply
unchanged once its losses take (B, D) embeddings; this adapter keeps its own few lines of InfoNCE so the
Qwen3-VL path does not depend on the compact training code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F

from encoder.qwen3vl import Qwen3VLEmbedder
from encoder.qwen3vl_elements import note_elements
from encoder.qwen3vl_inputs import Conversation
from encoder.types import ElementKind, NoteInput


@dataclass
class PairBatch:
    """queries[i] and positives[i] are the same content seen two ways; B = len(queries) >= 2."""

    queries: list[Conversation]
    positives: list[Conversation]

    def __post_init__(self) -> None:
        if len(self.queries) != len(self.positives) or len(self.queries) < 2:
            raise ValueError(f"need >= 2 (query, positive) pairs, got {len(self.queries)}/{len(self.positives)}")


def stage1_pairs(notes: Sequence[NoteInput], embedder: Qwen3VLEmbedder) -> list[tuple[Conversation, Conversation]]:
    """(query, positive) pairs of the stage-1 task families from notes: image->whole note, crop->its image,
    OCR->its note's first image, title->whole note. Raises InputError for an empty note."""
    pairs = []
    for note in notes:
        global_conv, elements = note_elements(note, embedder.config)
        images = {e.index: e.conversation for e in elements if e.kind == ElementKind.IMAGE}
        for e in elements:
            if e.kind == ElementKind.IMAGE:
                pairs.append((e.conversation, global_conv))
            elif e.kind == ElementKind.CROP and e.image_index in images:
                pairs.append((e.conversation, images[e.image_index]))
            elif e.kind == ElementKind.OCR and 0 in images:
                pairs.append((e.conversation, images[0]))
            elif e.kind == ElementKind.TITLE:
                pairs.append((e.conversation, global_conv))
    return pairs


class Qwen3VLContrastiveTask:
    """Symmetric in-batch InfoNCE with MRL over the embedder's dims.

    temperature: softmax temperature of the cosine logits (0.05 as in the compact trainer).
    training_forward(batch) -> ({"infonce": scalar loss}, {"loss", "accuracy", "loss@<d>"...} floats).
    """

    def __init__(self, embedder: Qwen3VLEmbedder, temperature: float = 0.05):
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.embedder = embedder
        self.temperature = temperature

    def parameters(self) -> list[torch.nn.Parameter]:
        """The trainable parameters (LoRA adapters only when the embedder carries peft)."""
        return [p for p in self.embedder.parameters() if p.requires_grad]

    def training_forward(self, batch: PairBatch) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
        b = len(batch.queries)
        inputs = self.embedder.inputs(list(batch.queries) + list(batch.positives))
        emb = self.embedder(inputs)  # (2B, D), L2-normalised
        q, p = emb[:b], emb[b:]  # (B, D), (B, D)
        target = torch.arange(b, device=emb.device)  # (B,)
        per_dim, report = [], {}
        for d in self.embedder.config.dims:
            qd, pd = F.normalize(q[:, :d], dim=-1), F.normalize(p[:, :d], dim=-1)  # (B, d)
            logits = qd @ pd.T / self.temperature  # (B, B)
            loss_d = 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))
            per_dim.append(loss_d)
            report[f"loss@{d}"] = float(loss_d.detach())
        loss = torch.stack(per_dim).mean()
        with torch.no_grad():
            report["accuracy"] = float((q @ p.T).argmax(dim=1).eq(target).float().mean())
        report["loss"] = float(loss.detach())
        return {"infonce": loss}, report


def train_steps(task: Qwen3VLContrastiveTask, batches: Sequence[PairBatch], lr: float = 1e-3) -> list[float]:
    """A few AdamW steps (one per batch) in train mode; returns the loss of each step. For smoke runs and
    tests: real training goes through the trainer (gradient accumulation, checkpoints, DDP)."""
    params = task.parameters()
    if not params:
        raise ValueError("the embedder has no trainable parameters")
    optimiser = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    task.embedder.train()
    losses = []
    try:
        for batch in batches:
            loss_terms, report = task.training_forward(batch)
            total = sum(loss_terms.values())
            optimiser.zero_grad(set_to_none=True)
            total.backward()
            optimiser.step()
            losses.append(report["loss"])
    finally:
        task.embedder.eval()
    return losses
