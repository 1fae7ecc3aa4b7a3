"""GRPOTask: stage 2 (GRPO ranking alignment, paper §3.3) as one trainer task.

The model is any backbone behind a training.pool_encoder.PoolEncoder (compact heads on cached features,
or Qwen3-VL on the notes' images and text).

Set-up (once): the stage-1 model π_ref (the policy as the task is built, or a given reference) embeds
every pool query and the library (whole notes + every pool's graded targets and noise,
training/graded_pools.py) and retrieves each query's top-G candidates; with `force_targets`, targets it
missed replace its lowest irrelevant candidates. The groups and π_ref's similarities at each Matryoshka
dim are fixed from then on, so π_ref is never run again (no second copy of a large model).

Step: `training_forward(batch)` with batch = (B,) int64 query indices. The trained model embeds the
queries and their candidates; at each dim d of config.matryoshka_dims the current ranking of each group
gives per-candidate rewards (training/rewards.py, in predicted order), and GRPOLoss turns them into
-mean(A · log π_θ) + β KL(π_θ ‖ π_ref). Loss = mean over dims, plus the text-only anchor: pool queries always
hold an image, so nothing else stops stage 2 from collapsing text-only notes (a text-only note is scored by its
global cosine in app.audit); the anchor keeps π_ref's cosines between the text-only parts of each query and of
its candidates. Trainer contract:
`training_forward(batch) -> (losses: dict[str, Tensor], report: dict[str, float])`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import torch
from torch import Tensor, nn

from encoder.types import ElementKind
from training.graded_pools import GradedPool, PoolNote, excluded_rows, pool_library
from training.grpo_config import GRPOConfig
from training.grpo_eval import ndcg_at_k
from training.grpo_features import prefix_sims
from training.grpo_loss import GRPOLoss
from training.pool_encoder import PoolEncoder, embed_all
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
    ref: PoolEncoder,
    pools: Sequence[GradedPool],
    library: Sequence[PoolNote],
    *,
    group_size: int,
    dims: Sequence[int],
    force_targets: bool = True,
) -> Groups:
    """Top-`group_size` library notes per pool query by `ref` at its full dim (see module doc).

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
    q = embed_all(ref, [p.query for p in pools]).cpu()  # (Q, D)
    lib = embed_all(ref, library).cpu()  # (L, D)
    sims = prefix_sims(q, lib, ref.dims[-1])  # (Q, L)
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
        rewards[b, ranked] = torch.tensor(r, dtype=torch.float32, device=sims.device)
        ndcg += ndcg_at_k(ranked_grades, ranked_grades, 10)
    return rewards, ndcg / max(sims.shape[0], 1)


class GRPOTask(nn.Module):
    """Stage 2 as a trainer task. `policy` is trained in place; only its `config.trainable` parts require
    grad; its parameters / state_dict are the task's.

    pools: the training pools; library: whole notes (grade 0 for every query) — the pools' targets and
    noise are mixed in here. reference: π_ref when it is not the policy as given (tests). Raises
    ValueError for a dim the model lacks, an unknown trainable part or a bad pool.
    """

    def __init__(
        self,
        policy: PoolEncoder,
        pools: Sequence[GradedPool],
        library: Sequence[PoolNote],
        config: GRPOConfig,
        reference: PoolEncoder | None = None,
    ):
        bad = [d for d in config.matryoshka_dims if d not in policy.dims]
        if bad:
            raise ValueError(f"matryoshka_dims {bad} are not dims of the model {policy.dims}")
        if not pools:
            raise ValueError("GRPOTask: no training pools")
        super().__init__()
        self.policy, self.config = policy, config
        self.trainable_parameters = policy.set_trainable(config.trainable)
        self.pools = list(pools)
        self.library = pool_library(self.pools, library)
        self.groups = retrieve_groups(reference or policy, self.pools, self.library, group_size=config.group_size,
                                      dims=config.matryoshka_dims, force_targets=config.force_targets)
        self.loss = GRPOLoss(config.temperature, config.beta, config.advantage_eps)
        self.text_queries = [text_only(p.query) for p in self.pools]  # None where the query half has no text
        self.text_library = [text_only(n) for n in self.library]
        self.query_has_text = torch.tensor([t is not None for t in self.text_queries], dtype=torch.bool)  # (P,)
        self.library_has_text = torch.tensor([t is not None for t in self.text_library], dtype=torch.bool)  # (L,)
        self.text_ref = self._reference_text_sims(reference or policy) if config.text_anchor_weight > 0 else None

    def __len__(self) -> int:
        return len(self.pools)

    def training_forward(self, batch: Tensor) -> tuple[dict[str, Tensor], dict[str, float]]:
        """batch: (B,) int64 pool indices -> ({"grpo": loss, "text_anchor": weighted anchor (when on)}, report).

        report (at the full dim d = max(matryoshka_dims)): reward (mean per candidate), kl, entropy,
        ndcg10 (of the current in-group ranking), reward_<d> / kl_<d> / ndcg10_<d> for every dim, and
        items (B, for the trainer's throughput).
        """
        batch = torch.as_tensor(batch, dtype=torch.long).reshape(-1).cpu()  # (B,)
        g = self.groups
        q = self.policy.embed([self.pools[i].query for i in batch.tolist()])  # (B, D)
        uniq, inverse = torch.unique(g.candidates[batch], return_inverse=True)  # (U,), (B, G)
        c = self.policy.embed([self.library[i] for i in uniq.tolist()])[inverse.to(q.device)]  # (B, G, D)
        grades, mask = g.grades[batch].to(q.device), g.mask[batch].to(q.device)  # (B, G) each
        losses, report = [], {"items": float(len(batch))}
        full = max(self.config.matryoshka_dims)
        for d in self.config.matryoshka_dims:
            sims = prefix_sims(q, c, d)  # (B, G)
            rewards, ndcg = rewards_for(sims, grades, mask, self.config)  # (B, G)
            loss, stats = self.loss(sims, g.ref_sims[d][batch].to(q.device), rewards, mask)
            losses.append(loss)
            report[f"reward_{d}"], report[f"kl_{d}"], report[f"ndcg10_{d}"] = (
                float(stats["reward"]), float(stats["kl"]), ndcg)
            if d == full:
                report.update(reward=float(stats["reward"]), kl=float(stats["kl"]),
                              entropy=float(stats["entropy"]), ndcg10=ndcg)
        out = {"grpo": torch.stack(losses).mean()}
        if self.text_ref is not None:
            out["text_anchor"] = self.config.text_anchor_weight * self._text_anchor(batch)
        return out, report

    def _text_sims(self, embed: Callable[[list[PoolNote]], Tensor], queries: Tensor
                   ) -> tuple[dict[int, Tensor], Tensor, Tensor] | None:
        """Cosines from the text-only part of each pool query in `queries` (b,) to its G candidates' text-only
        parts, for the queries with text: (dim -> (b', G) float32, valid (b', G) bool: both sides hold text and
        the slot is used, keep (b,) bool: the queries kept), or None when no query holds text."""
        cand = self.groups.candidates[queries]  # (b, G)
        valid = self.groups.mask[queries] & self.query_has_text[queries, None] & self.library_has_text[cand]  # (b, G)
        keep = valid.any(dim=1)  # (b,)
        if not keep.any():
            return None
        rows = cand[valid].unique()  # (U,) library rows whose text is compared
        slot = torch.zeros(len(self.library), dtype=torch.long)
        slot[rows] = torch.arange(len(rows))
        q = embed([self.text_queries[i] for i in queries[keep].tolist()])  # (b', D)
        c = embed([self.text_library[r] for r in rows.tolist()])[slot[cand[keep]].to(q.device)]  # (b', G, D)
        return {d: prefix_sims(q, c, d) for d in self.config.matryoshka_dims}, valid[keep].to(q.device), keep

    def _reference_text_sims(self, reference: PoolEncoder) -> dict[int, Tensor]:
        """π_ref's text-only cosines of every pool: dim -> (P, G) float32 (0 where not compared)."""
        P, G = self.groups.candidates.shape
        ref = {d: torch.zeros(P, G) for d in self.config.matryoshka_dims}
        found = self._text_sims(lambda notes: embed_all(reference, notes), torch.arange(P))
        if found is not None:
            sims, _, keep = found
            for d in ref:
                ref[d][keep] = sims[d].cpu()
        return ref

    def _text_anchor(self, batch: Tensor) -> Tensor:
        """The text-only anchor: the squared difference between the policy's and π_ref's cosines from each query's
        text-only part to its candidates' text-only parts, summed over the batch's queries and divided by the
        batch size (so DDP ranks add up to the one-process loss), mean over the Matryoshka dims. Squared cosines,
        not a softmax divergence: a softmax is blind to a shift of all cosines, which is what a collapse is."""
        found = self._text_sims(self.policy.embed, batch)
        if found is None:
            return torch.zeros(())
        sims, valid, keep = found
        per_dim = [((sims[d] - self.text_ref[d][batch[keep]].to(valid.device)) ** 2)[valid].sum()
                   for d in self.config.matryoshka_dims]
        return torch.stack(per_dim).mean() / len(batch)


def text_only(note: PoolNote) -> PoolNote | None:
    """The note's title and body pieces without its images (None when it has no text)."""
    texts = tuple(e for e in note.elements if e.kind != ElementKind.IMAGE)
    return PoolNote(f"{note.note_id}/text", note.source_id, texts) if texts else None
