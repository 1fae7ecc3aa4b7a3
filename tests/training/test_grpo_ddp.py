"""2-process DDP (gloo, CPU) stage-2 steps on the stage-1 trainer give the loss and gradients of one process
over the same global batch."""

from __future__ import annotations

import copy
import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from encoder.compact import CompactUniNote
from encoder.types import ElementKind
from training.graded_pools import Element, PoolNote, build_graded_pools
from training.grpo_config import GRPOConfig
from training.grpo_features import CompactPoolEncoder, FeatureBank
from training.grpo_task import GRPOTask
from training.distributed import DistInfo
from training.grpo_train import grpo_batch_fn, trainer_config
from training.trainer import Trainer

CONFIG = GRPOConfig(group_size=10, batch_size=8, grad_accum=2, max_grad_norm=0.0, steps=1)


def _task() -> GRPOTask:
    """A small deterministic task on synthetic features (the DDP maths does not depend on the data)."""
    g = torch.Generator().manual_seed(0)
    notes, img, txt = {}, [], []
    for n in range(12):
        els = [Element(ElementKind.IMAGE, f"n{n}/i{i}") for i in range(3)] + [Element(ElementKind.TITLE, f"n{n}/t")]
        img += [e.key for e in els[:3]]
        txt.append(els[3].key)
        notes[f"n{n}"] = els
    bank = FeatureBank({k: i for i, k in enumerate(img)}, torch.randn(len(img), 1280, generator=g),
                       {k: i for i, k in enumerate(txt)}, torch.randn(len(txt), 384, generator=g))
    model = CompactUniNote()
    with torch.no_grad():  # move off the zero-initialised residuals so every part gets a gradient
        for p in model.parameters():
            p.add_(0.01 * torch.randn(p.shape, generator=g))
    ref = copy.deepcopy(model)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01 * torch.randn(p.shape, generator=g))
    pools = build_graded_pools(notes, seed=0, noise_per_pool=2)
    library = [PoolNote(n, n, tuple(e)) for n, e in notes.items()]
    return GRPOTask(CompactPoolEncoder(model, bank), pools, library, CONFIG, reference=CompactPoolEncoder(ref, bank))


def _step(info: DistInfo, out) -> tuple[list[torch.Tensor], float]:
    """One trainer step; returns (the averaged gradients, the logged loss)."""
    task = _task()
    trainer = Trainer(task, trainer_config(CONFIG, progress=False), out, info)
    logged = trainer.train_step(grpo_batch_fn(len(task), CONFIG))
    return [p.grad.clone() for p in task.trainable_parameters], logged["loss"]


def _worker(rank: int, world: int, port: int, out_dir: str, out: dict) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        out[rank] = _step(DistInfo(rank, world), out_dir)
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_gloo_ranks_match_one_process(tmp_path):
    torch.set_num_threads(1)
    single, loss_single = _step(DistInfo(), tmp_path / "single")

    with mp.Manager() as manager:
        out = manager.dict()
        mp.spawn(_worker, args=(2, _free_port(), str(tmp_path / "ddp"), out), nprocs=2, join=True)
        results = dict(out)
    for rank in (0, 1):
        grads, _ = results[rank]
        for a, b in zip(grads, single):
            assert torch.allclose(a, b, atol=1e-6, rtol=1e-4)
    # the global loss is the mean of the two ranks' losses
    assert (results[0][1] + results[1][1]) / 2 == pytest.approx(loss_single, rel=1e-5)
