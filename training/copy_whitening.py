"""PCA whitening of copy descriptors learnt on a background set (SSCD §3.5; Jégou & Chum, ECCV 2012).

Fit on (N, 1280) GeM descriptors of unrelated photos: centre, eigen-decompose the covariance, keep the top d
directions and scale each by 1 / sqrt(eigenvalue + eps * largest eigenvalue). Applying it (encoder.copy_tower_weights
.Whitening) downweights the directions every photo shares, the ones that make unrelated photos look alike.
"""

from __future__ import annotations

import torch

from encoder.copy_tower_weights import Whitening


def fit_whitening(descriptors: torch.Tensor, dim: int, eps: float = 1e-3) -> Whitening:
    """descriptors (N, D) float -> Whitening with mean (D,) and matrix (dim, D) float32.
    Raises ValueError when dim > D or N < 2."""
    x = descriptors.double()
    N, D = x.shape
    if dim > D or N < 2:
        raise ValueError(f"cannot fit a {dim}-d whitening on {N} descriptors of dim {D}")
    mean = x.mean(dim=0)  # (D,)
    xc = x - mean
    cov = xc.T @ xc / (N - 1)  # (D, D)
    eigval, eigvec = torch.linalg.eigh(cov)  # ascending
    eigval, eigvec = eigval.flip(0)[:dim].clamp(min=0), eigvec.flip(1)[:, :dim]  # (dim,), (D, dim)
    scale = (eigval + eps * eigval[0]).rsqrt()  # (dim,)
    return Whitening(mean.float(), (eigvec * scale).T.float().contiguous())
