"""Ranking rewards for stage 2 (GRPO ranking alignment, paper §3.3), as plain functions (trl style).

Every reward function takes one query's candidate group *in predicted order* and returns one float per
candidate, in the same order:

    grades: Sequence[int], len G. grades[p] is the true grade of the candidate the model ranked at
            position p (0 = top). 0 = irrelevant; higher = more relevant (a graded target built from more
            of the query note's own elements, see training/graded_pools.py).
    returns: list[float], len G, aligned with `grades`.

The ideal ranking sorts the group by grade, descending; candidates that share a grade share a block of
ideal positions, and any order inside the block is ideal. `combined_reward` mixes the four rewards with
the weights of `RewardWeights` (from `GRPOConfig`).

Why only the penalty touches irrelevant candidates: in stage 2 the policy is a softmax over the G
candidates and each candidate is an action (training/grpo_loss.py), so a candidate's reward decides
whether its similarity is pushed up (above the group mean) or down. A position or order reward paid to
an irrelevant candidate for sitting correctly at the bottom would push it *up*, towards the relevant
ones; on real and random features alike that collapses every similarity of a group onto one value. So
irrelevant candidates only ever get the (negative) penalty, and relevant ones a positive reward that
is larger for a higher grade and for a better-placed candidate: with non-negative weights every
relevant candidate outscores every irrelevant one, whatever the ranking.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

RewardFunc = Callable[[Sequence[int]], list[float]]


def _check(grades: Sequence[int]) -> list[int]:
    out = [int(g) for g in grades]
    if not out:
        raise ValueError("grades: empty candidate group")
    if any(g < 0 for g in out):
        raise ValueError(f"grades: negative grade in {out} (0 = irrelevant, higher = more relevant)")
    return out


def ideal_blocks(grades: Sequence[int]) -> list[tuple[int, int]]:
    """For each candidate, the [start, end) block of positions its grade occupies in the ideal ranking.

    Example: grades [0, 2, 1, 2] -> ideal order 2, 2, 1, 0 -> blocks [(3, 4), (0, 2), (2, 3), (0, 2)].
    """
    g = _check(grades)
    start: dict[int, int] = {}
    count: dict[int, int] = {}
    for value in g:
        count[value] = count.get(value, 0) + 1
    pos = 0
    for value in sorted(count, reverse=True):
        start[value] = pos
        pos += count[value]
    return [(start[v], start[v] + count[v]) for v in g]


def irrelevant_penalty(grades: Sequence[int]) -> list[float]:
    """-(G - p) / G for an irrelevant candidate at position p (-1 at the top, -1/G at the bottom); 0 otherwise.

    The penalty grows the higher an irrelevant candidate ranks.
    """
    g = _check(grades)
    n = len(g)
    return [-(n - p) / n if grade == 0 else 0.0 for p, grade in enumerate(g)]


def relevance_reward(grades: Sequence[int]) -> list[float]:
    """The base reward of relevant candidates: grade / max grade of the group (1.0 for the best target,
    down to 1/max for the lowest grade); 0.0 for irrelevant ones.

    Scaling by grade is what tells two swapped targets apart: position and order rewards are symmetric
    in a swap, the base reward is not.
    """
    g = _check(grades)
    top = max(g)
    return [grade / top if grade > 0 else 0.0 for grade in g]


def position_reward(grades: Sequence[int]) -> list[float]:
    """Relevant candidates: 1 - d / (G - 1), d = distance from the predicted position to the block of
    positions its grade holds in the ideal ranking (absolute-position reward); irrelevant ones: 0.0.

    1.0 when the candidate sits inside its grade's block, falling linearly to 0.0 at the far end of the
    list. A group of one candidate gets [1.0] if it is relevant.
    """
    g = _check(grades)
    n = len(g)
    out = []
    for p, ((lo, hi), grade) in enumerate(zip(ideal_blocks(g), g)):
        if grade == 0:
            out.append(0.0)
            continue
        d = lo - p if p < lo else (p - (hi - 1) if p >= hi else 0)
        out.append(1.0 - d / (n - 1) if n > 1 else 1.0)
    return out


def order_reward(grades: Sequence[int]) -> list[float]:
    """Relevant candidates: pairwise order agreement in [0, 1], the fraction of its pairs in the right
    order; irrelevant ones: 0.0.

    Candidate i is compared with every j of a different grade (irrelevant ones included); the pair agrees
    when the higher grade is ranked above the lower one. Nothing to compare with (all grades equal) gives
    1.0: no pair is out of order.
    """
    g = _check(grades)
    out = []
    for i, gi in enumerate(g):
        if gi == 0:
            out.append(0.0)
            continue
        agree, compared = 0, 0
        for j, gj in enumerate(g):
            if gj == gi:
                continue
            compared += 1
            agree += (i < j) == (gi > gj)
        out.append(agree / compared if compared else 1.0)
    return out


REWARD_FUNCS: dict[str, RewardFunc] = {
    "irrelevant_penalty": irrelevant_penalty,
    "relevance": relevance_reward,
    "position": position_reward,
    "order": order_reward,
}


@dataclass(frozen=True)
class RewardWeights:
    """Weights of the four rewards in `combined_reward` (keys of REWARD_FUNCS)."""

    irrelevant_penalty: float = 1.0
    relevance: float = 1.0
    position: float = 1.0
    order: float = 1.0

    def items(self) -> list[tuple[str, float]]:
        return [(name, float(getattr(self, name))) for name in REWARD_FUNCS]


def combined_reward(grades: Sequence[int], weights: RewardWeights = RewardWeights()) -> list[float]:
    """sum_k w_k * reward_k(grades), per candidate in predicted order (rewards with weight 0 are skipped)."""
    g = _check(grades)
    total = [0.0] * len(g)
    for name, w in weights.items():
        if w == 0.0:
            continue
        for p, r in enumerate(REWARD_FUNCS[name](g)):
            total[p] += w * r
    return total
