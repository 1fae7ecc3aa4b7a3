"""training/trainer.py + the SFT task on real photos: the loss falls, resume is exact, accumulation is exact,
and 2-process DDP (gloo) gives the single-process loss and gradients on the same global batch."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from tests.training.sft_support import (
    assert_ddp_matches_one_process, compact_task_from_file, make_task, tiny_corpus_and_features,
)
from training.trainer import Trainer, TrainerConfig


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return tiny_corpus_and_features(tmp_path_factory.mktemp("sft_tiny"))


def test_sft_loss_falls_on_real_photos(tiny, tmp_path):
    task, sampler = make_task(*tiny)
    trainer = Trainer(task, TrainerConfig(steps=30, lr=3e-3, warmup_steps=2, log_every=5, progress=False), tmp_path)
    rows = trainer.fit(sampler)
    assert set(rows[0]) >= {"loss", "loss/copy", "loss/image_note", "loss/text_note", "loss/note_note",
                            "loss/soft_copy", "throughput", "lr"}
    first = sum(r["loss"] for r in rows[:1])
    last = sum(r["loss"] for r in rows[-1:])
    assert last < first
    assert (tmp_path / "trainer_state.pt").is_file() and (tmp_path / "train_log.jsonl").is_file()


def test_resume_continues_exactly(tiny, tmp_path):
    cfg = TrainerConfig(steps=4, lr=1e-3, warmup_steps=1, checkpoint_every=2, progress=False)
    straight, sampler = make_task(*tiny)
    Trainer(straight, cfg, tmp_path / "a").fit(sampler)

    first, _ = make_task(*tiny)
    Trainer(first, cfg, tmp_path / "b").fit(sampler, until=2)  # an interrupted run
    resumed, _ = make_task(*tiny)  # fresh weights: everything must come from trainer_state.pt
    trainer = Trainer(resumed, cfg, tmp_path / "b")
    trainer.fit(sampler)
    assert trainer.step == 4
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-6), name


class _RegressionTask(nn.Module):
    """Least squares on fixed real features: a task whose loss is a mean over independent items."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor):
        super().__init__()
        self.x, self.y = x, y
        self.linear = nn.Linear(x.shape[1], 1)
        torch.nn.init.zeros_(self.linear.weight)
        torch.nn.init.zeros_(self.linear.bias)

    def training_forward(self, rows):
        err = self.linear(self.x[rows]).squeeze(1) - self.y[rows]
        return {"mse": err.pow(2).mean()}, {"items": float(len(rows))}


def test_gradient_accumulation_equals_the_full_batch(tiny):
    _, feats, _ = tiny
    x = feats.views[:, 0].float()[:8]  # (8, 1280) real GeM features
    y = torch.linspace(-1, 1, 8)
    full, accum = _RegressionTask(x, y), _RegressionTask(x, y)
    cfg = dict(steps=1, lr=0.1, warmup_steps=0, max_grad_norm=0.0, progress=False)
    Trainer(full, TrainerConfig(**cfg), Path("unused")).train_step(lambda s, m, i: list(range(8)))
    Trainer(accum, TrainerConfig(**cfg, grad_accum=2), Path("unused")).train_step(
        lambda s, m, i: list(range(4 * m, 4 * m + 4)))
    assert torch.allclose(full.linear.weight.grad, accum.linear.weight.grad, atol=1e-6)
    assert torch.allclose(full.linear.weight, accum.linear.weight, atol=1e-6)


def test_two_process_ddp_matches_one_process(tiny, tmp_path):
    data_file = tmp_path / "data.pt"
    torch.save(tiny, data_file)
    assert_ddp_matches_one_process(compact_task_from_file, (str(data_file),), tmp_path)
