"""training/sft_config.py: the shipped TOML loads; bad files name what is wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from training.sft_config import SFTConfig

CONFIGS = Path(__file__).resolve().parents[2] / "training" / "configs"


@pytest.mark.parametrize("name", ["sft_compact.toml", "sft_qwen3vl.toml"])
def test_shipped_configs_load(name):
    cfg = SFTConfig.load(CONFIGS / name)
    assert cfg.loss.band == (0.5, 0.7) and cfg.data.images_per_note == (1, 4)
    assert set(cfg.loss.family_weights) == {"copy", "image_note", "text_note", "note_note", "text_geometry"}
    assert len(cfg.loss.matryoshka_weights) == 4  # compact (64, 128, 256, 512), Qwen3-VL-8B (64, 512, 1024, 4096)
    assert SFTConfig.from_dict(cfg.to_dict()) == cfg


def test_qwen3vl_section_is_checked():
    assert SFTConfig.load(CONFIGS / "sft_qwen3vl.toml").qwen3vl.dtype == "bfloat16"
    with pytest.raises(ValueError, match="qwen3vl"):
        SFTConfig.from_dict({"qwen3vl": {"dtype": "float8"}})
    with pytest.raises(ValueError, match=r"unknown keys in \[qwen3vl\]"):
        SFTConfig.from_dict({"qwen3vl": {"lora": 16}})


def test_bad_configs_are_named(tmp_path):
    with pytest.raises(ValueError, match=r"unknown keys in \[train\]: \['stepz'\]"):
        SFTConfig.from_dict({"train": {"stepz": 3}})
    with pytest.raises(ValueError, match="sections"):
        SFTConfig.from_dict({"optim": {}})
    with pytest.raises(ValueError, match="band"):
        SFTConfig.from_dict({"loss": {"band": [0.8, 0.2]}})
    with pytest.raises(ValueError, match="task families"):
        SFTConfig.from_dict({"loss": {"family_weights": {"ocr": 1.0}}})
    with pytest.raises(FileNotFoundError):
        SFTConfig.load(tmp_path / "none.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[train\nsteps = 1")
    with pytest.raises(ValueError, match="bad.toml"):
        SFTConfig.load(bad)
