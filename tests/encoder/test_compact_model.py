"""encoder/compact.py + heads.py: shapes, norms, one-pass crops, the untrained baseline, trainable heads only."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from encoder.compact import CompactUniNote
from encoder.config import CompactConfig
from encoder.heads import KIND_IDS
from encoder.pooling import gem, region_gem
from encoder.types import ElementKind


def test_region_features_and_embeddings_shapes(compact_model, real_photos):
    images = [real_photos["astronaut"], real_photos["rocket"], real_photos["coins"]]  # mixed sizes/aspects
    feats = compact_model.region_features(images)
    R = 1 + len(compact_model.config.crop_boxes)
    assert feats.shape == (3, R, 1280) and feats.dtype == torch.float32 and (feats >= 0).all()
    vecs = compact_model.embed_regions(feats)
    assert vecs.shape == (3, R, 512) and torch.allclose(vecs.norm(dim=-1), torch.ones(3, R), atol=1e-5)
    texts = compact_model.text_features(["今天的苹果很好吃", "Fresh and sour taste."])
    assert texts.shape == (2, 384) and texts.dtype == torch.float32
    assert compact_model.embed_texts(texts).shape == (2, 512)


def test_crops_come_from_the_one_forward_pass(compact_model, real_photos):
    images = [real_photos["chelsea"], real_photos["page"]]
    tower = compact_model.image_tower
    fmap = tower(tower.preprocess(images))  # (2, 1280, 7, 7): one pass of the whole images
    feats = compact_model.region_features(images)
    # crop-free check: the IMAGE region is plain GeM of the whole map
    assert torch.allclose(feats[:, 0], gem(fmap, p=compact_model.config.gem_p), rtol=1e-4, atol=1e-5)
    for r, box in enumerate(compact_model.boxes):
        expected = region_gem(fmap, [box], p=compact_model.config.gem_p)[:, 0]
        assert torch.allclose(feats[:, r], expected, rtol=1e-4, atol=1e-5)
    # and each crop differs from the whole image (the regions really are different)
    assert (F.cosine_similarity(feats[:, 0:1], feats[:, 1:], dim=-1) < 0.999).all()


def test_untrained_heads_are_orthogonal_projections(compact_model):
    for head, in_dim in ((compact_model.image_head, 1280), (compact_model.text_head, 384)):
        W = head.proj.weight  # (512, in_dim): orthonormal rows (1280 -> 512) or columns (384 -> 512)
        gram = W @ W.T if in_dim >= 512 else W.T @ W
        assert torch.allclose(gram, torch.eye(min(in_dim, 512)), atol=1e-4)
        x = torch.rand(4, in_dim)
        expected = F.normalize(F.normalize(x, dim=-1) @ W.T, dim=-1)
        assert torch.allclose(head(x), expected, atol=1e-5)  # the residual MLP starts at zero


def test_untrained_fusion_is_the_normalised_mean(compact_model):
    g = torch.Generator().manual_seed(1)
    tokens = F.normalize(torch.randn(2, 4, 512, generator=g), dim=-1)  # (B, T, D)
    kinds = torch.tensor([[KIND_IDS[ElementKind.IMAGE], KIND_IDS[ElementKind.TITLE], KIND_IDS[ElementKind.BODY], 0]] * 2)
    mask = torch.tensor([[True, True, True, False], [True, False, False, False]])
    fused = compact_model.fuse(tokens, kinds, mask)
    assert torch.allclose(fused[0], F.normalize(tokens[0, :3].mean(0), dim=0), atol=1e-5)
    assert torch.allclose(fused[1], tokens[1, 0], atol=1e-5)


def test_fuse_refuses_a_note_without_tokens(compact_model):
    import pytest

    with pytest.raises(ValueError, match="at least one element"):
        compact_model.fuse(torch.zeros(1, 2, 512), torch.zeros(1, 2, dtype=torch.long), torch.zeros(1, 2, dtype=torch.bool))


def test_seed_fixes_the_weights_and_trainable_part_is_small():
    a = CompactUniNote()
    torch.manual_seed(123)  # the global RNG does not matter
    b, c = CompactUniNote(), CompactUniNote(CompactConfig(seed=1))
    for name, tensor in a.state_dict().items():
        assert torch.equal(tensor, b.state_dict()[name])
    assert not torch.equal(a.image_head.proj.weight, c.image_head.proj.weight)
    n_params = sum(p.numel() for p in a.parameters())
    assert n_params * 4 < 8 * 2**20  # under 8 MB of float32: towers are not in the module
    assert all(k.split(".")[0] in {"image_head", "text_head", "fusion"} for k in a.state_dict())


def test_gradients_reach_the_heads_from_cached_features(compact_model, real_photos):
    model = CompactUniNote()
    feats = model.region_features([real_photos["coffee"]])  # frozen tower output, cacheable
    text = model.text_features(["a cup of coffee"])
    img = model.embed_regions(feats)[:, 0]  # (1, D)
    txt = model.embed_texts(text)  # (1, D)
    (img * txt).sum().backward()
    assert model.image_head.proj.weight.grad is not None and model.text_head.proj.weight.grad is not None
    assert model.image_head.mlp[-1].weight.grad.abs().sum() > 0


def test_set_trainable_freezes_every_other_part_and_names_an_unknown_one():
    model = CompactUniNote()
    params = model.set_trainable(["text_head", "fusion"])
    assert {id(p) for p in params} == {id(p) for p in [*model.text_head.parameters(), *model.fusion.parameters()]}
    assert not any(p.requires_grad for p in model.image_head.parameters())
    with pytest.raises(ValueError, match="image_tower"):
        model.set_trainable(["image_tower"])
