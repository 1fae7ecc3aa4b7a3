"""training/sft_config.py: the shipped TOML loads; bad files name what is wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from training.sft_config import SFTConfig

SHIPPED = Path(__file__).resolve().parents[2] / "training" / "configs" / "sft_compact.toml"


def test_shipped_config_loads():
    cfg = SFTConfig.load(SHIPPED)
    assert cfg.loss.band == (0.5, 0.7) and cfg.data.images_per_note == (1, 4)
    assert set(cfg.loss.family_weights) == {"copy", "image_note", "text_note", "note_note", "text_geometry"}
    assert SFTConfig.from_dict(cfg.to_dict()) == cfg


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
