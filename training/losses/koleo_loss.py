"""KoLeo regulariser (Sablayrolles et al., "Spreading vectors for similarity search", ICLR 2019), as SSCD uses it.

The Kozachenko–Leonenko differential-entropy estimator, up to constants: -mean_i log(min_{j != i} ||x_i - x_j||).
Minimising it pushes each embedding away from its nearest neighbour in the batch, spreading descriptors over the
sphere so a single similarity threshold separates copies from non-copies (Pizzi et al., CVPR 2022, §3.3).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class KoLeoLoss(nn.Module):
    """forward(x (N, D) float, L2-normalised) -> scalar = -mean_i log(d_i + eps), d_i the distance to x_i's nearest
    other row. Raises ValueError for fewer than 2 rows or a non-2-d input."""

    def __init__(self, eps: float = 1e-8):
        super().__init__()
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 2 or x.shape[0] < 2:
            raise ValueError(f"KoLeo needs (N >= 2, D) embeddings, got {tuple(x.shape)}")
        with torch.no_grad():  # nearest neighbour by cosine (inputs are unit vectors)
            sim = x @ x.T  # (N, N)
            sim.fill_diagonal_(-2.0)
            nn_index = sim.argmax(dim=1)  # (N,)
        dist = (x - x[nn_index]).norm(dim=1)  # (N,)
        return -(dist + self.eps).log().mean()
