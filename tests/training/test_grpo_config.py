"""GRPOConfig: help for every field, TOML loading, clear errors."""

from pathlib import Path

import pytest

from training.grpo_config import GRPOConfig

CONFIGS = Path(__file__).resolve().parents[2] / "training" / "configs"


def test_every_field_has_help():
    from dataclasses import fields

    assert all(f.metadata.get("help") for f in fields(GRPOConfig))
    assert "group_size" in GRPOConfig.help()


@pytest.mark.parametrize("name", ["grpo_compact.toml", "grpo_qwen3vl.toml"])
def test_shipped_toml_loads_and_round_trips(tmp_path, name):
    cfg = GRPOConfig.from_toml(CONFIGS / name)
    assert cfg.group_size > 2 and cfg.matryoshka_dims
    lines = []
    for k, v in cfg.to_dict().items():
        lines.append(f"{k} = {v!r}".replace("True", "true").replace("False", "false").replace("'", '"')
                     if not isinstance(v, bool) else f"{k} = {str(v).lower()}")
    (tmp_path / "c.toml").write_text("[grpo]\n" + "\n".join(lines))
    assert GRPOConfig.from_toml(tmp_path / "c.toml") == cfg


def test_bad_configs_name_the_problem(tmp_path):
    with pytest.raises(ValueError, match="unknown keys.*group_sise"):
        GRPOConfig.from_dict({"group_sise": 8})
    with pytest.raises(ValueError, match="group_size must be int"):
        GRPOConfig.from_dict({"group_size": "8"})
    with pytest.raises(ValueError, match="temperature must be > 0"):
        GRPOConfig(temperature=0)
    assert GRPOConfig.from_dict({"beta": 0}).beta == 0.0  # ints are fine for floats
    with pytest.raises(ValueError, match="dtype must be one of"):
        GRPOConfig(dtype="fp8")
    with pytest.raises(FileNotFoundError):
        GRPOConfig.from_toml(tmp_path / "missing.toml")
