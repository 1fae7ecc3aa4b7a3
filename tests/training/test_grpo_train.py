"""train_rl end to end on a few real grocery notes: checkpoint, reward curve, model card, resume."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from encoder.checkpoint import load_checkpoint, weights_version
from training.grpo_config import GRPOConfig
from training.grpo_train import STATE_FILE, train_rl

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / ".." / "shared" / "data"
INIT = REPO / "encoder" / "checkpoints" / "compact"


@pytest.mark.slow
def test_train_rl_writes_a_loadable_refined_checkpoint_and_resumes(tmp_path):
    if not (DATA / "grocery" / "dataset" / "train.txt").is_file():
        pytest.skip(f"grocery data not found at {(DATA / 'grocery').resolve()}")
    if not (INIT / "config.json").is_file():
        pytest.skip(f"no stage-1 checkpoint at {INIT}")
    import torch

    torch.set_num_threads(2)
    cfg = dict(group_size=8, batch_size=4, grad_accum=2, steps=3, log_every=1, checkpoint_every=2,
               max_notes=8, learning_rate=1e-3, warmup_steps=0)
    out = tmp_path / "rl"
    result = train_rl(INIT, None, out, data_root=DATA, cache_dir=tmp_path / "cache",
                      config=GRPOConfig(**cfg), progress=False)
    refined = load_checkpoint(out)
    assert refined.model_version == result.model_version != weights_version(load_checkpoint(INIT))
    assert [row[0] for row in result.reward_curve] == [1, 2, 3]
    rows = list(csv.DictReader((out / "reward_curve.csv").open()))
    assert [int(r["step"]) for r in rows] == [1, 2, 3]
    card = (out / "MODEL_CARD.md").read_text()
    assert "GRPO" in card and "P@5" in card and str(INIT) in card
    assert {m.dim for m in result.before} == set(refined.config.dims) and result.after[0].n_queries > 0
    assert (out / STATE_FILE).is_file()

    # resume: 2 more steps continue from step 3 (the feature cache is reused)
    more = train_rl(INIT, None, out, data_root=DATA, cache_dir=tmp_path / "cache",
                    config=GRPOConfig(**(cfg | {"steps": 5})), progress=False)
    assert [row[0] for row in more.reward_curve] == [1, 2, 3, 4, 5]
