"""CopyTask: one SSCD training step on a batch of cached views -> (loss, report).

Batch: feats (N, C, h, w) early features of N = photos x views, instance (N,) photo ids. Queries = the N views
plus the mixup/cutmix views (training.copy_mix); keys = the N views; a view's positives are the other views of its
photo. loss = InfoNCE (training.losses.MultiPositiveInfoNCELoss) + koleo_weight * KoLeo over one view per photo.
"""

from __future__ import annotations

import numpy as np
import torch

from training.copy_config import CopyTrainConfig
from training.copy_mix import mix_views
from training.copy_model import CopyTrunk
from training.losses import KoLeoLoss, MultiPositiveInfoNCELoss


class CopyTask:
    def __init__(self, trunk: CopyTrunk, config: CopyTrainConfig):
        self.trunk, self.config = trunk, config
        self.infonce = MultiPositiveInfoNCELoss(config.temperature)
        self.koleo = KoLeoLoss()

    def training_forward(self, feats: torch.Tensor, instance: torch.Tensor,
                         rng: np.random.Generator) -> tuple[torch.Tensor, dict[str, float]]:
        """feats (N, C, h, w) float32, instance (N,) int64 -> (scalar loss, {"infonce", "koleo", "pos_sim",
        "neg_sim"} floats for the log)."""
        N = feats.shape[0]
        n_mix = int(round(self.config.mix_fraction * N))
        mixed, mix_w = mix_views(feats, instance, n_mix, rng)  # (M, C, h, w), (M, N)
        emb = self.trunk.embed(torch.cat([feats, mixed]))  # (N + M, 1280)
        keys = emb[:N]  # (N, 1280)
        same = instance[:, None] == instance[None, :]  # (N, N)
        eye = torch.eye(N, dtype=torch.bool, device=feats.device)
        weights = torch.cat([(same & ~eye).float(), mix_w.to(feats.device)])  # (N + M, N)
        mask = torch.cat([eye, torch.zeros(len(mixed), N, dtype=torch.bool, device=feats.device)])  # (N + M, N)
        infonce = self.infonce(emb, keys, weights, mask=mask)
        first = torch.ones(N, dtype=torch.bool, device=feats.device)
        first[1:] = instance[1:] != instance[:-1]  # one view per photo (views of a photo are adjacent)
        koleo = self.koleo(keys[first])
        loss = infonce + self.config.koleo_weight * koleo
        with torch.no_grad():
            sim = keys @ keys.T  # (N, N)
            pos, neg = sim[same & ~eye].mean().item(), sim[~same].mean().item()
        return loss, {"infonce": infonce.item(), "koleo": koleo.item(), "pos_sim": pos, "neg_sim": neg}
