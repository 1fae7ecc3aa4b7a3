"""The paper's soft-target loss: Jensen–Shannon divergence between the model's similarity distribution over a
query's candidates and a teacher's (paper §4.1; the teacher here is the frozen base towers or a larger model).

JS(P, Q) = ½ KL(P ‖ M) + ½ KL(Q ‖ M), M = ½ (P + Q); symmetric, bounded by log 2, and finite when the teacher
puts zero mass on a candidate (unlike KL), so a confident teacher never blows the loss up.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class JSSoftTargetLoss(nn.Module):
    """forward(queries (B, D), candidates (C, D), teacher_similarity (B, C), *, mask (B, C) bool | None)
    -> scalar mean JS divergence (nats) over the B queries.

    Student distribution: softmax(queries @ candidates.T / temperature); teacher distribution:
    softmax(teacher_similarity / teacher_temperature). mask=False drops a candidate from both. Inputs are
    L2-normalised; teacher_similarity is cosine-scale and carries no gradient.
    """

    def __init__(self, temperature: float = 0.05, teacher_temperature: float = 0.05):
        super().__init__()
        if not (temperature > 0 and teacher_temperature > 0):
            raise ValueError(f"temperatures must be > 0, got {temperature}, {teacher_temperature}")
        self.temperature, self.teacher_temperature = temperature, teacher_temperature

    def forward(self, queries: Tensor, candidates: Tensor, teacher_similarity: Tensor, *,
                mask: Tensor | None = None) -> Tensor:
        B, C = queries.shape[0], candidates.shape[0]
        if teacher_similarity.shape != (B, C):
            raise ValueError(f"teacher_similarity must be (B, C) = ({B}, {C}), got {tuple(teacher_similarity.shape)}")
        student = queries @ candidates.T / self.temperature  # (B, C)
        teacher = teacher_similarity.detach() / self.teacher_temperature  # (B, C)
        if mask is not None:
            student = student.masked_fill(~mask, float("-inf"))
            teacher = teacher.masked_fill(~mask, float("-inf"))
        valid = torch.ones_like(student, dtype=torch.bool) if mask is None else mask  # (B, C)
        log_p = student.log_softmax(dim=1)  # (B, C)
        log_q = teacher.log_softmax(dim=1)  # (B, C)
        p, q = log_p.exp(), log_q.exp()
        log_m = (0.5 * (p + q)).clamp_min(1e-30).log()  # (B, C)
        # masked entries: p = q = 0; zero their logs so 0 * (-inf) never reaches the backward pass
        log_p, log_q, log_m = (t.masked_fill(~valid, 0.0) for t in (log_p, log_q, log_m))
        kl_pm = (p * (log_p - log_m)).sum(dim=1)  # (B,)
        kl_qm = (q * (log_q - log_m)).sum(dim=1)  # (B,)
        return (0.5 * (kl_pm + kl_qm)).mean()
