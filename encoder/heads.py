"""The trainable parts of the compact UniNote: projection heads into the shared space and note fusion.

Both are built so that the *untrained* model is a sane baseline:
- ProjectionHead = orthogonal linear + zero-initialised residual MLP, so at init it is a random
  orthogonal projection of the (L2-normalised) pretrained features: cosine structure approximately
  preserved (Johnson-Lindenstrauss), and every Matryoshka prefix is itself a random projection.
- NoteFusion = kind embeddings + single-query attention pooling with a zero-initialised query and
  value update, so at init the global vector is the normalised mean of the element vectors.
Paper §3 (global/local elements); MRL (Kusupati et al. 2022) for the nested dims.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from encoder.types import ElementKind

KINDS: tuple[ElementKind, ...] = tuple(ElementKind)  # kind id = position in this tuple
KIND_IDS: dict[ElementKind, int] = {k: i for i, k in enumerate(KINDS)}


def random_orthogonal(rows: int, cols: int) -> torch.Tensor:
    """(rows, cols) float32 Haar-random matrix with orthonormal rows (rows <= cols) or columns (rows > cols).

    Same distribution as nn.init.orthogonal_, computed by a float64 QR (several times faster than the
    float32 LAPACK path on a busy CPU). Draws from the global torch RNG.
    """
    a = torch.randn(max(rows, cols), min(rows, cols), dtype=torch.float64)  # (M, m)
    q, r = torch.linalg.qr(a)  # (M, m) orthonormal columns
    q = q * torch.sign(torch.diagonal(r))  # sign fix: Haar-distributed
    return (q if rows >= cols else q.T).to(torch.float32)


class ProjectionHead(nn.Module):
    """(N, in_dim) features -> (N, out_dim) float32, L2-normalised.

    y = W x + b + MLP(LayerNorm(x)), x = L2-normalised input; W has orthonormal rows, b and the MLP's
    last layer start at zero.
    """

    def __init__(self, in_dim: int, out_dim: int, hidden: int, init_weights: bool = True):
        super().__init__()
        self.proj = nn.Linear(in_dim, out_dim)
        self.mlp = nn.Sequential(nn.LayerNorm(in_dim), nn.Linear(in_dim, hidden), nn.GELU(), nn.Linear(hidden, out_dim))
        if init_weights:  # skipped when a checkpoint's weights will overwrite them anyway (QR is slow)
            with torch.no_grad():
                self.proj.weight.copy_(random_orthogonal(out_dim, in_dim))
        nn.init.zeros_(self.proj.bias)
        nn.init.zeros_(self.mlp[-1].weight)
        nn.init.zeros_(self.mlp[-1].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.normalize(x, dim=-1)  # (..., in_dim)
        y = self.proj(x) + self.mlp(x)  # (..., out_dim)
        return F.normalize(y, dim=-1)


class NoteFusion(nn.Module):
    """Element tokens of a note -> one global vector, by attention pooling.

    tokens (B, T, D) L2-normalised element vectors, kinds (B, T) int64 ids from KIND_IDS, mask (B, T)
    bool (True = real token) -> (B, D) float32, L2-normalised. Every row needs >= 1 real token.
    """

    def __init__(self, dim: int):
        super().__init__()
        self.kind_embedding = nn.Embedding(len(KINDS), dim)  # added to keys: lets training weight kinds
        self.query = nn.Parameter(torch.zeros(dim))  # zero = uniform attention = mean pooling
        self.value = nn.Linear(dim, dim)  # residual value update, zero = values are the tokens
        nn.init.zeros_(self.kind_embedding.weight)
        nn.init.zeros_(self.value.weight)
        nn.init.zeros_(self.value.bias)
        self.scale = 1.0 / math.sqrt(dim)

    def forward(self, tokens: torch.Tensor, kinds: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if tokens.ndim != 3 or kinds.shape != tokens.shape[:2] or mask.shape != tokens.shape[:2]:
            raise ValueError(
                f"fuse expects tokens (B, T, D), kinds (B, T), mask (B, T); got {tuple(tokens.shape)}, "
                f"{tuple(kinds.shape)}, {tuple(mask.shape)}"
            )
        if not bool(mask.any(dim=1).all()):
            raise ValueError("fuse: every note needs at least one element token (a mask row is all False)")
        keys = tokens + self.kind_embedding(kinds)  # (B, T, D)
        logits = (keys @ self.query) * self.scale  # (B, T)
        logits = logits.masked_fill(~mask, float("-inf"))
        attn = logits.softmax(dim=1)  # (B, T)
        values = tokens + self.value(keys)  # (B, T, D)
        pooled = (attn.unsqueeze(-1) * values).sum(dim=1)  # (B, D)
        return F.normalize(pooled, dim=-1)
