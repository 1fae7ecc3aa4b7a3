"""GRPOTask: stage 2 (GRPO ranking alignment, paper §3.3) as one trainer task.

Set-up (once): the frozen stage-1 model π_ref embeds every pool query and the library (whole notes +
every pool's graded targets and noise, training/graded_pools.py) and retrieves each query's top-G
candidates; with `force_targets`, targets it missed replace its lowest irrelevant candidates. The
groups and π_ref's similarities at each Matryoshka dim are fixed from then on.

Step: `training_forward(batch)` with batch = (B,) int64 query indices. The trained model embeds the
queries and their candidates; at each dim d of config.matryoshka_dims the current ranking of each group
gives per-candidate rewards (training/rewards.py, in predicted order), and GRPOLoss turns them into
-mean(A · log π_θ) + β KL(π_θ ‖ π_ref). Loss = mean over dims. Trainer contract:
`training_forward(batch) -> (losses: dict[str, Tensor], report: dict[str, float])`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from torch import Tensor, nn

from encoder.compact import CompactUniNote
from training.graded_pools import GradedPool, PoolNote, excluded_rows, pool_library
from training.grpo_config import GRPOConfig
from training.grpo_eval import ndcg_at_k
from training.grpo_features import FeatureBank, embed_all, embed_notes, note_tokens, prefix_sims
from training.grpo_loss import GRPOLoss
from training.rewards import combined_reward


@dataclass
class Groups:
    """Each query's G candidates. candidates: (Q, G) int64 library rows; grades: (Q, G) int64;
    mask: (Q, G) bool (False where the library had fewer than G notes); ref_sims: dim -> (Q, G) float32;
    retrieved_targets: fraction of graded targets the reference model retrieved in its top G."""

    candidates: Tensor
    grades: Tensor
    mask: Tensor
    ref_sims: dict[int, Tensor]
    retrieved_targets: float


@torch.no_grad()
def retrieve_groups(
    ref_model: CompactUniNote,
    bank: FeatureBank,
    pools: Sequence[GradedPool],
    library: Sequence[PoolNote],
    *,
    group_size: int,
    dims: Sequence[int],
    force_targets: bool = True,
) -> Groups:
    """Top-`group_size` library notes per pool query by `ref_model` at its full dim (see module doc).

    Raises ValueError when group_size does not exceed a pool's number of targets, or a target is not
    in the library.
    """
    lib_pos = {n.content: i for i, n in enumerate(library)}
    for p in pools:
        if len(p.targets) >= group_size:
            raise ValueError(f"group_size {group_size} must exceed the {len(p.targets)} graded targets of "
                             f"pool {p.query.note_id!r}")
        if any(t.content not in lib_pos for t in p.targets):
            raise ValueError(f"pool {p.query.note_id!r}: a graded target is not in the library")
    q = embed_all(ref_model, bank, note_tokens([p.query for p in pools], bank))  # (Q, D)
    lib = embed_all(ref_model, bank, note_tokens(list(library), bank))  # (L, D)
    sims = prefix_sims(q, lib, ref_model.config.dim)  # (Q, L)
    excluded = excluded_rows(pools, library)
    for i, rows in enumerate(excluded):
        sims[i, rows] = float("-inf")  # the query's own note cut by another pool: not graded, not ranked
    n_excl = max((len(r) for r in excluded), default=0)
    G = min(group_size, len(library) - n_excl)
    top = sims.topk(G, dim=1).indices  # (Q, G), best first
    candidates = torch.full((len(pools), group_size), 0, dtype=torch.long)  # (Q, G)
    grades = torch.zeros(len(pools), group_size, dtype=torch.long)  # (Q, G)
    mask = torch.zeros(len(pools), group_size, dtype=torch.bool)  # (Q, G)
    found = total = 0
    for i, p in enumerate(pools):
        grade = {lib_pos[t.content]: g for t, g in zip(p.targets, p.grades)}
        rows = top[i].tolist()
        hit = [r for r in rows if r in grade]
        found, total = found + len(hit), total + len(grade)
        if force_targets:
            missing = [r for r in grade if r not in set(rows)]
            keep_irrelevant = G - len(hit) - len(missing)
            irrelevant = [r for r in rows if r not in grade][:keep_irrelevant]
            rows = [r for r in rows if r in grade or r in set(irrelevant)] + missing
        candidates[i, :G] = torch.tensor(rows)
        grades[i, :G] = torch.tensor([grade.get(r, 0) for r in rows])
        mask[i, :G] = True
    c = lib[candidates]  # (Q, G, D)
    ref_sims = {d: prefix_sims(q, c, d).masked_fill(~mask, 0.0) for d in dims}  # (Q, G) each
    return Groups(candidates, grades, mask, ref_sims, found / max(total, 1))


def rewards_for(sims: Tensor, grades: Tensor, mask: Tensor, config: GRPOConfig) -> tuple[Tensor, float]:
    """Per-candidate rewards of the ranking that `sims` induces.

    sims (B, G) float, grades (B, G) int64, mask (B, G) bool -> (rewards (B, G) float32 in candidate
    order, mean NDCG@10 of the groups' current rankings).
    """
    order = sims.detach().masked_fill(~mask, float("-inf")).argsort(dim=1, descending=True)  # (B, G)
    rewards = torch.zeros_like(sims, dtype=torch.float32)  # (B, G)
    weights = config.reward_weights
    ndcg = 0.0
    for b in range(sims.shape[0]):
        n = int(mask[b].sum())
        ranked = order[b, :n]  # (n,) candidate slots, best first
        ranked_grades = grades[b, ranked].tolist()
        r = combined_reward(ranked_grades, weights)
        rewards[b, ranked] = torch.tensor(r, dtype=torch.float32)
        ndcg += ndcg_at_k(ranked_grades, ranked_grades, 10)
    return rewards, ndcg / max(sims.shape[0], 1)


def set_trainable(model: CompactUniNote, parts: Sequence[str]) -> list[nn.Parameter]:
    """Freeze every parameter except those of the named sub-modules; returns the trainable ones.

    Raises ValueError naming a part the model does not have."""
    children = dict(model.named_children())
    unknown = [p for p in parts if p not in children]
    if unknown:
        raise ValueError(f"trainable: unknown model parts {unknown}; the model has {sorted(children)}")
    model.requires_grad_(False)
    for p in parts:
        children[p].requires_grad_(True)
    return [p for p in model.parameters() if p.requires_grad]


class GRPOTask(nn.Module):
    """Stage 2 on cached features. `model` is trained in place; `ref_model` stays frozen (π_ref).

    An nn.Module for training.trainer.Trainer: its parameters / state_dict are the model's (π_ref is
    kept out of both); only the `config.trainable` parts require grad.

    pools: the training pools; library: whole notes (grade 0 for every query) — the pools' targets and
    noise are mixed in here. Raises ValueError for a dim the model lacks or a bad pool.
    """

    def __init__(
        self,
        model: CompactUniNote,
        ref_model: CompactUniNote,
        bank: FeatureBank,
        pools: Sequence[GradedPool],
        library: Sequence[PoolNote],
        config: GRPOConfig,
    ):
        bad = [d for d in config.matryoshka_dims if d not in model.config.dims]
        if bad:
            raise ValueError(f"matryoshka_dims {bad} are not dims of the model {model.config.dims}")
        if not pools:
            raise ValueError("GRPOTask: no training pools")
        super().__init__()
        self.model = model
        self._ref = (ref_model.eval().requires_grad_(False),)  # a tuple: not a registered submodule
        self.bank, self.config = bank, config
        self.trainable_parameters = set_trainable(model, config.trainable)
        self.pools = list(pools)
        self.library = pool_library(self.pools, library)
        self.query_tokens = note_tokens([p.query for p in self.pools], bank)
        self.library_tokens = note_tokens(self.library, bank)
        self.groups = retrieve_groups(ref_model, bank, self.pools, self.library, group_size=config.group_size,
                                      dims=config.matryoshka_dims, force_targets=config.force_targets)
        self.loss = GRPOLoss(config.temperature, config.beta, config.advantage_eps)

    @property
    def ref_model(self) -> CompactUniNote:
        return self._ref[0]

    def __len__(self) -> int:
        return len(self.pools)

    def training_forward(self, batch: Tensor) -> tuple[dict[str, Tensor], dict[str, float]]:
        """batch: (B,) int64 pool indices -> ({"grpo": loss}, report).

        report (at the full dim d = max(matryoshka_dims)): reward (mean per candidate), kl, entropy,
        ndcg10 (of the current in-group ranking), reward_<d> / kl_<d> / ndcg10_<d> for every dim, and
        items (B, for the trainer's throughput).
        """
        batch = torch.as_tensor(batch, dtype=torch.long).reshape(-1)  # (B,)
        g = self.groups
        cand, grades, mask = g.candidates[batch], g.grades[batch], g.mask[batch]  # (B, G) each
        q = embed_notes(self.model, self.bank, self.query_tokens, batch)  # (B, D)
        uniq, inverse = torch.unique(cand, return_inverse=True)  # (U,), (B, G)
        c = embed_notes(self.model, self.bank, self.library_tokens, uniq)[inverse]  # (B, G, D)
        losses, report = [], {"items": float(len(batch))}
        full = max(self.config.matryoshka_dims)
        for d in self.config.matryoshka_dims:
            sims = prefix_sims(q, c, d)  # (B, G)
            rewards, ndcg = rewards_for(sims, grades, mask, self.config)  # (B, G)
            loss, stats = self.loss(sims, g.ref_sims[d][batch], rewards, mask)
            losses.append(loss)
            report[f"reward_{d}"], report[f"kl_{d}"], report[f"ndcg10_{d}"] = (
                float(stats["reward"]), float(stats["kl"]), ndcg)
            if d == full:
                report.update(reward=float(stats["reward"]), kl=float(stats["kl"]),
                              entropy=float(stats["entropy"]), ndcg10=ndcg)
        return {"grpo": torch.stack(losses).mean()}, report
