"""`train_sft`: the stage-1 entry point (`uninote train sft --config ... --out ...`), CPU here, `torchrun` unchanged.

The backbone follows `--init`: a Qwen3-VL folder (base weights such as Qwen3-VL-8B-Instruct, or a UniNote
Qwen3-VL checkpoint) trains the paper's backbone (training.sft_qwen3vl_backbone; LoRA, dtype and
gradient checkpointing from the config's [qwen3vl] section); anything else, or nothing, trains the compact
heads (training.sft_compact_backbone) on the frozen towers' cached features (rank 0 fills the cache first,
the other ranks then read it).

Steps: build the training corpus (training.sft_corpus), draw band negatives with the untrained model, train with
SFTTask under the shared Trainer (checkpoint/resume in `out`, DDP under torchrun: gloo on CPU, nccl on GPUs),
and save the result on rank 0 as `out/checkpoint`: a compact checkpoint (config.json + heads.safetensors, a few
MB) or a Qwen3-VL checkpoint (weights or LoRA adapter + tokenizer + processor configs + uninote.json) that
`uninote export` turns into a vLLM folder.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Sequence

import torch
import torch.distributed as dist

from encoder.checkpoint import load_checkpoint
from encoder.compact import CompactUniNote
from encoder.config import CompactConfig
from encoder.qwen3vl_config import is_qwen3vl_folder
from training.band_negatives import training_band_negatives
from training.distributed import DistInfo, init_distributed
from training.sft_batches import SFTBatchSampler
from training.sft_config import SFTConfig, TrainConfig
from training.sft_corpus import Corpus, corpus_features, side_corpus
from training.sft_task import SFTBackbone, SFTTask
from training.trainer import Trainer, TrainerConfig

CHECKPOINT_DIR = "checkpoint"


def trainer_config(cfg: SFTConfig, progress: bool = True) -> TrainerConfig:
    t = cfg.train
    return TrainerConfig(steps=t.steps, grad_accum=t.grad_accum, lr=t.lr, weight_decay=t.weight_decay,
                         warmup_steps=t.warmup_steps, max_grad_norm=t.max_grad_norm,
                         checkpoint_every=t.checkpoint_every, log_every=t.log_every, progress=progress)


def train_sft(config_path: Path | None, out: Path, *, steps: int | None = None,
              trainable: Sequence[str] | None = None, init: Path | None = None, progress: bool = True) -> Path:
    """Train stage 1 and return the checkpoint folder (`out/checkpoint`).

    config_path: a TOML/JSON SFTConfig (None = defaults); steps / trainable override train.steps /
    train.trainable; init: a Qwen3-VL folder (the paper's backbone) or a compact checkpoint to start from
    (default: the untrained CompactUniNote, seed 0 heads). Resumes from `out/trainer_state.pt` when present.
    Raises FileNotFoundError when the data or config is missing, ValueError for a bad config (e.g.
    matryoshka_weights not matching the model's dims, an unknown trainable part), ImportError for LoRA without
    peft.
    """
    cfg = SFTConfig.load(config_path)
    if steps is not None:
        cfg.train.steps = int(steps)
    if trainable is not None:
        cfg.train.trainable = tuple(trainable)
    cfg.validate()
    torch.set_num_threads(cfg.train.num_threads)
    info = init_distributed()
    torch.manual_seed(cfg.train.seed)
    out = Path(out)
    corpus = side_corpus(cfg.data, held_out=False)
    if init is not None and is_qwen3vl_folder(init):
        backbone = qwen3vl_backbone(Path(init), corpus, cfg, info)
    else:
        backbone = compact_backbone(init, corpus, cfg, info, progress)
    task = SFTTask(backbone, cfg.loss, corpus.original_view).to(info.device)  # checks the config against the model
    band = training_band_negatives(backbone, corpus, cfg)
    sampler = SFTBatchSampler(corpus, cfg.train.batch_size, band, seed=cfg.train.seed,
                              images_per_note=cfg.data.images_per_note)
    trainer = Trainer(task, trainer_config(cfg, progress), out, info)
    trainer.fit(sampler)
    folder = out / CHECKPOINT_DIR
    if info.is_main:
        task.eval()
        backbone.save(folder)
        (out / "sft_config.json").write_text(json.dumps(asdict(cfg), indent=2), encoding="utf-8")
    return folder


def compact_backbone(init: Path | None, corpus: Corpus, cfg: SFTConfig, info: DistInfo, progress: bool) -> SFTBackbone:
    """The compact heads (from `init`, else untrained) over the corpus' cached tower features."""
    from training.sft_compact_backbone import CompactSFTBackbone

    model = load_checkpoint(init).train() if init else CompactUniNote(CompactConfig())
    model.set_trainable(cfg.train.trainable)
    cache = Path(cfg.data.cache_dir) if cfg.data.cache_dir else None
    if info.world_size > 1 and not info.is_main:
        dist.barrier()  # rank 0 fills the cache first
    features = corpus_features(model, corpus, cache, progress=progress and info.is_main)
    if info.world_size > 1 and info.is_main:
        dist.barrier()
    return CompactSFTBackbone(model, features)


def qwen3vl_backbone(init: Path, corpus: Corpus, cfg: SFTConfig, info: DistInfo) -> SFTBackbone:
    """The Qwen3-VL model at `init` on this rank's device, LoRA / dtype / checkpointing from cfg.qwen3vl; the
    frozen teacher is kept only when a soft-target or text-geometry loss needs it."""
    from encoder.qwen3vl import load_qwen3vl
    from training.sft_qwen3vl_backbone import Qwen3VLSFTBackbone

    if tuple(cfg.train.trainable) != TrainConfig().trainable:
        raise ValueError(f"[train] trainable = {list(cfg.train.trainable)} names compact heads; a Qwen3-VL "
                         "backbone trains its weights, or a LoRA adapter with [qwen3vl] lora_rank")
    q = cfg.qwen3vl
    embedder = load_qwen3vl(init, lora_rank=q.lora_rank or None, dtype=getattr(torch, q.dtype), device=info.device,
                            gradient_checkpointing=q.gradient_checkpointing)
    teacher = cfg.loss.soft_target_weight > 0 or cfg.loss.family_weights.get("text_geometry", 0) > 0
    return Qwen3VLSFTBackbone(embedder, corpus, teacher=teacher, image_cache=q.image_cache)
