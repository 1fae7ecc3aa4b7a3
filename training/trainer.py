"""The training loop shared by every task (stage-1 SFT, stage-2 GRPO): the loop never knows which loss it runs.

Contract (open_clip style): a task is an `nn.Module` with
    training_forward(batch) -> (losses: dict[str, Tensor], report: dict[str, float])
The trainer sums `losses`, back-propagates, and logs `losses` and `report`. Batches come from
`batch_fn(step, micro, info) -> batch`, a pure function of the optimizer step, the micro-batch index and the rank
(so a resumed run sees exactly the batches it would have seen, and each rank draws its own shard of the global
batch).

Per optimizer step: `grad_accum` micro-batches (losses divided by grad_accum), gradients averaged over ranks
(training.distributed), clipped, AdamW step, linear warm-up + cosine schedule. Every `checkpoint_every` steps (and
at the end) rank 0 writes `trainer_state.pt` (the task's trainable weights and buffers, optimizer, scheduler,
step) into `out_dir`; `fit` resumes from it when present. A tqdm bar on rank 0 shows the loss and throughput (items/s from report["items"]
when the task reports it, else steps/s).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Protocol

import torch
from torch import Tensor, nn
from tqdm import tqdm

from training.distributed import DistInfo, average_gradients, broadcast_parameters, init_distributed

STATE_FILE = "trainer_state.pt"
LOG_FILE = "train_log.jsonl"


class TrainingTask(Protocol):
    """What the trainer needs of a task (an nn.Module)."""

    def training_forward(self, batch: Any) -> tuple[dict[str, Tensor], dict[str, float]]: ...

    def parameters(self): ...

    def state_dict(self): ...

    def load_state_dict(self, state, strict: bool = True): ...


@dataclass
class TrainerConfig:
    steps: int = 1000  # optimizer steps in total
    grad_accum: int = 1  # micro-batches per optimizer step
    lr: float = 1e-3  # AdamW peak learning rate
    weight_decay: float = 0.01  # AdamW decoupled weight decay (not on 1-d params: biases, norms, scales)
    warmup_steps: int = 50  # linear warm-up steps, then cosine decay to 0
    max_grad_norm: float = 1.0  # clip the global gradient norm (0 = off)
    checkpoint_every: int = 250  # write trainer_state.pt every N steps (0 = only at the end)
    log_every: int = 25  # steps between log lines (train_log.jsonl)
    progress: bool = True  # tqdm bar on rank 0


def lr_factor(step: int, warmup: int, total: int) -> float:
    """Multiplier of the peak LR at `step` (0-based): linear warm-up over `warmup` steps, cosine to 0 at `total`."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


class Trainer:
    """Runs `task` for config.steps optimizer steps. out_dir: where state and logs go (created on rank 0).

    dist: the DistInfo of this process (default: init_distributed(), i.e. torchrun-aware).
    """

    def __init__(self, task: nn.Module, config: TrainerConfig, out_dir: Path, dist: DistInfo | None = None):
        if config.steps < 1 or config.grad_accum < 1:
            raise ValueError(f"steps and grad_accum must be >= 1, got {config.steps}, {config.grad_accum}")
        self.task, self.config, self.out_dir = task, config, Path(out_dir)
        self.dist = dist or init_distributed()
        decay = [p for p in task.parameters() if p.requires_grad and p.ndim >= 2]
        no_decay = [p for p in task.parameters() if p.requires_grad and p.ndim < 2]
        self.optimizer = torch.optim.AdamW(
            [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=config.lr,
        )
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda s: lr_factor(s, config.warmup_steps, config.steps))
        self.step = 0
        self.history: list[dict[str, float]] = []

    # -- state -----------------------------------------------------------------------------------------
    def state_path(self) -> Path:
        return self.out_dir / STATE_FILE

    def trainable_state(self) -> dict[str, Tensor]:
        """The task's state_dict without its frozen parameters (a LoRA run saves its adapters, not the base
        model's billions of weights); those come back from the initial weights the task is built from."""
        frozen = {n for n, p in self.task.named_parameters(remove_duplicate=False) if not p.requires_grad}
        return {k: v for k, v in self.task.state_dict().items() if k not in frozen}

    def save_state(self) -> None:
        """Write trainer_state.pt atomically (rank 0 only)."""
        if not self.dist.is_main:
            return
        self.out_dir.mkdir(parents=True, exist_ok=True)
        state = {"step": self.step, "task": self.trainable_state(), "optimizer": self.optimizer.state_dict(),
                 "scheduler": self.scheduler.state_dict(), "config": asdict(self.config)}
        tmp = self.state_path().with_suffix(".tmp")
        torch.save(state, tmp)
        tmp.replace(self.state_path())

    def try_resume(self) -> bool:
        """Load trainer_state.pt when it exists (every rank reads it). Returns whether it resumed."""
        path = self.state_path()
        if not path.is_file():
            return False
        state = torch.load(path, map_location="cpu", weights_only=False)
        missing, unexpected = self.task.load_state_dict(state["task"], strict=False)
        trainable = {n for n, p in self.task.named_parameters(remove_duplicate=False) if p.requires_grad}
        if unexpected or trainable & set(missing):
            raise RuntimeError(f"{path} does not fit this task: unexpected {unexpected[:5]}, "
                               f"missing trainable {sorted(trainable & set(missing))[:5]}")
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.step = int(state["step"])
        return True

    # -- loop ------------------------------------------------------------------------------------------
    def train_step(self, batch_fn: Callable[[int, int, DistInfo], Any]) -> dict[str, float]:
        """One optimizer step over grad_accum micro-batches. Returns the logged values (loss terms summed over
        micro-batches / grad_accum, report values averaged, lr)."""
        self.task.train()
        self.optimizer.zero_grad(set_to_none=True)
        logged: dict[str, float] = {}
        n = self.config.grad_accum
        for micro in range(n):
            losses, report = self.task.training_forward(batch_fn(self.step, micro, self.dist))
            if not losses:
                raise ValueError("training_forward returned no losses")
            total = sum(losses.values())
            (total / n).backward()
            for k, v in losses.items():
                logged[f"loss/{k}"] = logged.get(f"loss/{k}", 0.0) + float(v.detach()) / n
            logged["loss"] = logged.get("loss", 0.0) + float(total.detach()) / n
            for k, v in report.items():
                logged[k] = logged.get(k, 0.0) + float(v) / n
        params = [p for p in self.task.parameters() if p.requires_grad]
        average_gradients(params)
        if self.config.max_grad_norm > 0:
            logged["grad_norm"] = float(torch.nn.utils.clip_grad_norm_(params, self.config.max_grad_norm))
        logged["lr"] = self.optimizer.param_groups[0]["lr"]
        self.optimizer.step()
        self.scheduler.step()
        self.step += 1
        return logged

    def fit(self, batch_fn: Callable[[int, int, DistInfo], Any], resume: bool = True,
            until: int | None = None) -> list[dict[str, float]]:
        """Train from the current (or resumed) step to config.steps (or stop early after step `until`, writing the
        state as an interrupted run would). Returns the log rows of this call."""
        if resume:
            self.try_resume()
        broadcast_parameters(self.task)
        cfg, main = self.config, self.dist.is_main
        bar = tqdm(total=cfg.steps, initial=self.step, desc="train", unit="step",
                   disable=not (main and cfg.progress), mininterval=2)
        rows: list[dict[str, float]] = []
        t0, items = time.perf_counter(), 0.0
        stop = min(cfg.steps, until if until is not None else cfg.steps)
        while self.step < stop:
            logged = self.train_step(batch_fn)
            items += logged.get("items", 1.0) * self.dist.world_size
            rate = items / max(time.perf_counter() - t0, 1e-9)
            bar.update(1)
            bar.set_postfix(loss=f"{logged['loss']:.4f}", rate=f"{rate:.0f}/s")
            if self.step % cfg.log_every == 0 or self.step == cfg.steps:
                row = {"step": self.step, **logged, "throughput": rate}
                rows.append(row)
                self.history.append(row)
                if main:
                    self.out_dir.mkdir(parents=True, exist_ok=True)
                    with (self.out_dir / LOG_FILE).open("a", encoding="utf-8") as f:
                        f.write(json.dumps(row) + "\n")
            if cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0 and self.step < cfg.steps:
                self.save_state()
        bar.close()
        self.save_state()
        return rows
