"""The stage-2 learning check both backbones' tests share."""

from __future__ import annotations

from typing import Sequence

import torch

from training.grpo_eval import evaluate_ranking
from training.grpo_task import GRPOTask


def assert_grpo_improves(task: GRPOTask, dims: Sequence[int], *, steps: int, lr: float, batch: int = 6) -> None:
    """`steps` AdamW steps on random batches of the training pools: the mean reward of the last 5 steps beats
    the first 5, NDCG@10 on the pools rises at every dim in `dims`, and the policy has left π_ref (KL > 0)."""
    before = {m.dim: m for m in evaluate_ranking(task.policy, task.pools, task.library, dims=dims)}
    opt = torch.optim.AdamW(task.trainable_parameters, lr=lr)
    rng = torch.Generator().manual_seed(0)
    rewards = []
    for _ in range(steps):
        losses, report = task.training_forward(torch.randperm(len(task), generator=rng)[:batch])
        opt.zero_grad()
        losses["grpo"].backward()
        opt.step()
        rewards.append(report["reward"])
    after = {m.dim: m for m in evaluate_ranking(task.policy, task.pools, task.library, dims=dims)}
    assert sum(rewards[-5:]) / 5 > sum(rewards[:5]) / 5, rewards
    for d in dims:
        assert after[d].ndcg_at_10 > before[d].ndcg_at_10, (d, before[d], after[d])
    assert report["kl"] > 0
