"""encoder/pooling.py: region GeM of a box equals GeM of that part of the map (two routes, one answer)."""

from __future__ import annotations

import pytest
import torch

from encoder.pooling import box_weights, gem, region_gem


@pytest.fixture
def fmap() -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.rand(3, 16, 8, 8, generator=g) * 6  # (B, C, H, W), ReLU6-like range


def test_whole_box_is_plain_gem(fmap):
    pooled = region_gem(fmap, [(0.0, 0.0, 1.0, 1.0)], p=3.0)  # (B, 1, C)
    assert torch.allclose(pooled[:, 0], gem(fmap, p=3.0), atol=1e-5)


def test_cell_aligned_boxes_equal_gem_of_the_slice(fmap):
    boxes = [(0.0, 0.0, 0.5, 0.5), (0.25, 0.5, 1.0, 1.0)]
    pooled = region_gem(fmap, boxes, p=3.0)  # (B, 2, C)
    assert torch.allclose(pooled[:, 0], gem(fmap[:, :, :4, :4]), atol=1e-5)
    assert torch.allclose(pooled[:, 1], gem(fmap[:, :, 4:, 2:]), atol=1e-5)


def test_fractional_box_weights_cells_by_area():
    w = box_weights([(0.0, 0.0, 0.75, 1.0)], height=1, width=2)  # half of the 2nd column
    assert torch.allclose(w, torch.tensor([[2 / 3, 1 / 3]]))
    assert torch.allclose(box_weights([(0.1, 0.2, 0.9, 0.7)], 7, 7).sum(), torch.tensor(1.0))


def test_p1_is_the_area_weighted_mean(fmap):
    pooled = region_gem(fmap, [(0.0, 0.0, 0.5, 1.0)], p=1.0, eps=0.0)
    assert torch.allclose(pooled[:, 0], fmap[:, :, :, :4].mean(dim=(-2, -1)), atol=1e-5)


def test_empty_box_is_refused():
    with pytest.raises(ValueError, match="empty box"):
        box_weights([(0.5, 0.5, 0.5, 0.9)], 7, 7)
