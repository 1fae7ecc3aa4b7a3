"""GeM and region GeM pooling of a CNN feature map.

GeM (generalized mean, Radenović et al. 2018; the sscd-copy-detection descriptor pooling):
    gem(x) = (mean_{h,w} clamp(x, eps)^p)^(1/p)
Region GeM pools each box of the feature map with area weights (a cell partly inside a box counts by
the fraction of its area inside), so every crop vector comes from the one forward pass of the whole
image; the whole-image box (0, 0, 1, 1) gives plain GeM exactly.
"""

from __future__ import annotations

from typing import Sequence

import torch

from encoder.types import Box


def gem(x: torch.Tensor, p: float = 3.0, eps: float = 1e-6) -> torch.Tensor:
    """(B, C, H, W) float -> (B, C): GeM over the spatial positions."""
    return x.clamp(min=eps).pow(p).mean(dim=(-2, -1)).pow(1.0 / p)  # (B, C)


def box_weights(boxes: Sequence[Box], height: int, width: int) -> torch.Tensor:
    """(R, H*W) float32: for each box, the fraction of each cell's area inside it, normalised to sum 1.

    boxes: (x0, y0, x1, y1) as fractions of the width/height. Raises ValueError for an empty box.
    """
    b = torch.tensor(boxes, dtype=torch.float64).reshape(-1, 4)  # (R, 4)
    if ((b[:, 2] <= b[:, 0]) | (b[:, 3] <= b[:, 1])).any():
        raise ValueError(f"empty box in {boxes!r}")
    x_edges = torch.arange(width + 1, dtype=torch.float64) / width  # (W+1,)
    y_edges = torch.arange(height + 1, dtype=torch.float64) / height  # (H+1,)
    wx = _overlap(x_edges, b[:, 0], b[:, 2]) * width  # (R, W): fraction of each column inside
    wy = _overlap(y_edges, b[:, 1], b[:, 3]) * height  # (R, H)
    w = wy[:, :, None] * wx[:, None, :]  # (R, H, W)
    w = w.reshape(len(b), -1)  # (R, H*W)
    return (w / w.sum(dim=1, keepdim=True)).to(torch.float32)


def _overlap(edges: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """(K+1,) cell edges, (R,) intervals -> (R, K): length of [lo, hi] inside each cell."""
    left = torch.maximum(edges[None, :-1], lo[:, None])  # (R, K)
    right = torch.minimum(edges[None, 1:], hi[:, None])  # (R, K)
    return (right - left).clamp(min=0.0)


def region_gem(fmap: torch.Tensor, boxes: Sequence[Box], p: float = 3.0, eps: float = 1e-6) -> torch.Tensor:
    """(B, C, H, W) -> (B, R, C): area-weighted GeM of each box (R = len(boxes)) in one pass."""
    B, C, H, W = fmap.shape
    weights = box_weights(boxes, H, W).to(fmap.device, fmap.dtype)  # (R, H*W)
    powered = fmap.clamp(min=eps).pow(p).reshape(B, C, H * W)  # (B, C, H*W)
    pooled = torch.einsum("bcn,rn->brc", powered, weights)  # (B, R, C)
    return pooled.pow(1.0 / p)
