"""The EfficientNet-Lite0 trunk split for copy training: a frozen, cached prefix and a trainable tail.

prefix: stem + blocks[:frozen_blocks] (eval mode, no grad) -> early features (B, C_k, S/16 or S/8 ..., ...);
tail:   blocks[frozen_blocks:] + head conv -> (B, 1280, S/32, S/32) (ReLU6, >= 0), the map encoder.towers returns;
embed:  GeM (p) over the tail's map, L2 -> (B, 1280). Same drop-connect schedule as `extract_features`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from encoder.pooling import gem


class CopyTrunk(nn.Module):
    """Wraps an `efficientnet_lite_pytorch.EfficientNet`; only the tail's parameters require grad."""

    def __init__(self, net: nn.Module, frozen_blocks: int, gem_p: float = 3.0):
        super().__init__()
        self.net, self.frozen_blocks, self.gem_p = net, frozen_blocks, gem_p
        net.requires_grad_(False)
        for module in self.tail_modules():
            module.requires_grad_(True)

    def tail_modules(self) -> list[nn.Module]:
        n = self.net
        return [*n._blocks[self.frozen_blocks:], n._conv_head, n._bn1]

    def train(self, mode: bool = True) -> "CopyTrunk":
        """Only the tail trains (BatchNorm included); the frozen prefix stays in eval mode."""
        super().train(False)
        for module in self.tail_modules():
            module.train(mode)
        return self

    @torch.no_grad()
    def prefix(self, pixels: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) float32 (scaled as ImageTower.preprocess) -> (B, C_k, h_k, w_k) frozen early features."""
        n = self.net
        x = n._swish(n._bn0(n._conv_stem(pixels)))  # (B, 32, S/2, S/2)
        for block in n._blocks[: self.frozen_blocks]:
            x = block(x)
        return x

    def tail(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C_k, h_k, w_k) -> (B, 1280, S/32, S/32) feature map."""
        n = self.net
        rate, total = n._global_params.drop_connect_rate, len(n._blocks)
        for idx in range(self.frozen_blocks, total):
            x = n._blocks[idx](x, drop_connect_rate=rate * idx / total if rate else None)
        return n._swish(n._bn1(n._conv_head(x)))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C_k, h_k, w_k) early features -> (B, 1280) GeM + L2 descriptors."""
        return F.normalize(gem(self.tail(x), p=self.gem_p), dim=-1)
