"""`train_sft`: the stage-1 entry point (`uninote train sft --config ... --out ...`), CPU here, `torchrun` unchanged.

Steps: build the training corpus (training.sft_corpus), run or read the frozen towers' cached features (rank 0
first, the other ranks then read the cache), draw band negatives with the untrained model, train the heads with
SFTTask under the shared Trainer (checkpoint/resume in `out`), and save the trained heads as a compact checkpoint
folder `out/checkpoint` (encoder.checkpoint.save_checkpoint: config.json + heads.safetensors, a few MB).
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from encoder.checkpoint import load_checkpoint, save_checkpoint
from encoder.compact import CompactUniNote
from encoder.config import CompactConfig
from training.band_negatives import band_negatives
from training.distributed import init_distributed
from training.sft_batches import SFTBatchSampler
from training.sft_config import SFTConfig
from training.sft_corpus import corpus_features, side_corpus
from training.sft_task import SFTTask
from training.trainer import Trainer, TrainerConfig

CHECKPOINT_DIR = "checkpoint"


def trainer_config(cfg: SFTConfig, progress: bool = True) -> TrainerConfig:
    t = cfg.train
    return TrainerConfig(steps=t.steps, grad_accum=t.grad_accum, lr=t.lr, weight_decay=t.weight_decay,
                         warmup_steps=t.warmup_steps, max_grad_norm=t.max_grad_norm,
                         checkpoint_every=t.checkpoint_every, log_every=t.log_every, progress=progress)


def train_sft(config_path: Path | None, out: Path, *, steps: int | None = None, init: Path | None = None,
              progress: bool = True) -> Path:
    """Train stage 1 and return the checkpoint folder (`out/checkpoint`).

    config_path: a TOML/JSON SFTConfig (None = defaults); steps overrides train.steps; init: a compact checkpoint
    to start from (default: the untrained CompactUniNote(CompactConfig()), seed 0 heads). Resumes from
    `out/trainer_state.pt` when present. Raises FileNotFoundError when the data or config is missing.
    """
    cfg = SFTConfig.load(config_path)
    if steps is not None:
        cfg.train.steps = int(steps)
        cfg.validate()
    torch.set_num_threads(cfg.train.num_threads)
    info = init_distributed()
    torch.manual_seed(cfg.train.seed)
    out = Path(out)
    model = load_checkpoint(init).train() if init else CompactUniNote(CompactConfig())
    corpus = side_corpus(cfg.data, held_out=False)
    cache = Path(cfg.data.cache_dir) if cfg.data.cache_dir else None
    if info.world_size > 1 and not info.is_main:
        dist.barrier()  # rank 0 fills the cache first
    features = corpus_features(model, corpus, cache, progress=progress and info.is_main)
    if info.world_size > 1 and info.is_main:
        dist.barrier()
    band = training_band_negatives(model, corpus, features, cfg)
    sampler = SFTBatchSampler(corpus, cfg.train.batch_size, band, seed=cfg.train.seed,
                              images_per_note=cfg.data.images_per_note)
    task = SFTTask(model, features, cfg.loss, corpus.original_view)
    trainer = Trainer(task, trainer_config(cfg, progress), out, info)
    trainer.fit(sampler)
    folder = out / CHECKPOINT_DIR
    if info.is_main:
        model.eval()
        save_checkpoint(model, folder)
        (out / "sft_config.json").write_text(json.dumps(asdict(cfg), indent=2), encoding="utf-8")
    return folder


def training_band_negatives(model: CompactUniNote, corpus, features, cfg: SFTConfig) -> np.ndarray:
    """(P, K) photo indices: band negatives of each training photo's first edited view among the originals."""
    with torch.no_grad():
        originals = [v for v in corpus.original_view]
        has = np.array([v >= 0 for v in originals])
        cand_photos = np.flatnonzero(has)
        cand = features.views[torch.as_tensor([originals[p] for p in cand_photos]), 0]  # (C, 1280)
        query_views = [(ev[0] if ev else max(originals[p], 0)) for p, ev in enumerate(corpus.edited_views)]
        queries = features.views[torch.as_tensor(query_views), 0]  # (P, 1280)
        pos = {int(p): i for i, p in enumerate(cand_photos)}
        exclude = np.array([pos.get(p, -1) for p in range(len(corpus.photos))])
        local = band_negatives(model, queries, cand, exclude, cfg.loss.band, cfg.loss.band_negatives,
                               seed=cfg.train.seed)
    return np.where(local >= 0, cand_photos[np.clip(local, 0, None)], -1)
