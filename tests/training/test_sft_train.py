"""train_sft + evaluate end to end on a few real photos: a loadable checkpoint of heads only, an evaluation table
with the untrained model and the hashes measured in the same run; `train sft --trainable` trains only those heads."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from app.cli import main as cli
from encoder.checkpoint import load_checkpoint
from tests.training.sft_support import SHARED_DATA
from training.evaluation import evaluate
from training.sft_train import train_sft

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not (SHARED_DATA / "grocery" / "products.csv").is_file(),
                                                   reason=f"real data not found at {SHARED_DATA}")]

TINY = """
[data]
data_root = "{root}"
cache_dir = "{cache}"
max_photos_per_product = 2
max_clothing = 8
max_distractors = 4
max_reviews = 40
[train]
steps = 4
batch_size = 8
log_every = 2
checkpoint_every = 2
num_threads = 2
"""


def test_train_then_evaluate(tmp_path):
    config = tmp_path / "tiny.toml"
    config.write_text(TINY.format(root=SHARED_DATA.resolve(), cache=tmp_path / "cache"))
    folder = train_sft(config, tmp_path / "run", progress=False)
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "heads.safetensors"]
    assert (folder / "heads.safetensors").stat().st_size < 20 * 2**20  # heads only, no towers
    model = load_checkpoint(folder)
    assert model.config.dims == (64, 128, 256, 512)

    table = evaluate(folder, config_path=config, print_table=False)
    methods = {r.method for r in table.rows}
    assert {"trained", "untrained", "trained +crops", "phash", "pdq", "minhash"} <= methods
    assert {r.dim for r in table.rows if r.method == "trained"} == {64, 128, 256, 512}
    row = table.row("trained")
    assert 0.0 <= row.copy_uap <= 1.0 and set(row.families) == {"image_note", "note_image", "text_note", "note_note"}
    text = table.to_markdown()
    assert "copy µAP" in text and "R@1 kept" in text and "distractor queries 4" in text


def test_trainable_on_the_command_line_trains_only_those_heads(tmp_path):
    """`--trainable image_head` from the shipped checkpoint: the image head moves, text head and fusion stay bit for
    bit (the copy-tower recipe: a new image head under the shipped text-only geometry)."""
    shipped = Path(__file__).resolve().parents[2] / "encoder" / "checkpoints" / "compact"
    config = tmp_path / "tiny.toml"
    config.write_text(TINY.format(root=SHARED_DATA.resolve(), cache=tmp_path / "cache"))
    run = CliRunner().invoke(cli, ["train", "sft", "--init", str(shipped), "--config", str(config), "--trainable",
                                   "image_head", "--steps", "2", "--out", str(tmp_path / "run")], catch_exceptions=False)
    assert run.exit_code == 0, run.output
    before, after = load_checkpoint(shipped), load_checkpoint(tmp_path / "run" / "checkpoint")
    for part in ("text_head", "fusion"):
        for (name, a), b in zip(getattr(before, part).state_dict().items(), getattr(after, part).state_dict().values()):
            assert torch.equal(a, b), (part, name)
    assert not all(torch.equal(a, b) for a, b in zip(before.image_head.state_dict().values(),
                                                     after.image_head.state_dict().values()))
    refused = CliRunner().invoke(cli, ["train", "sft", "--config", str(config), "--trainable", "towers",
                                       "--out", str(tmp_path / "bad")])
    assert refused.exit_code == 1 and "towers" in refused.output
