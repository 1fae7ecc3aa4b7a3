"""Train the copy-detection image tower (SSCD recipe, training.copy_config) and write its weights file.

    python -m training.copy_train --config training/configs/copy_tower_cpu.toml --out <folder>

Steps: (1) render `views_per_photo` views of each training photo (training.copy_data) and cache the frozen
prefix's features (fp16, one file under cache_dir keyed by the settings); (2) train the tail with CopyTask
(AdamW, warm-up + cosine over steps or wall-clock, whichever runs out first; gradient clip 1); (3) fit PCA whitening on the
clean views of the first `whitening_photos` photos; (4) write <out>/tower.safetensors (encoder.copy_tower_weights)
and <out>/train_log.json (config, per-step losses, timings, checkpoints). Every `checkpoint_minutes` the same
file is also written under <out>/checkpoints/step_<n>/ (whitening fitted then), and with `val_photos` > 0 each
checkpoint logs validation_scores on the held-out training photos, so a cut run can be evaluated at its best.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from encoder.copy_tower_weights import save_copy_tower
from encoder.towers import ImageTower
from training.copy_config import CopyTrainConfig
from training.copy_data import load_photos, render_view, training_photos
from training.copy_model import CopyTrunk
from training.copy_task import CopyTask
from training.copy_whitening import fit_whitening


def _log(msg: str) -> None:
    print(time.strftime("%H:%M:%S"), msg, flush=True)


def build_view_cache(config: CopyTrainConfig, trunk: CopyTrunk, tower: ImageTower) -> tuple[torch.Tensor, int]:
    """(P, V, C, h, w) float16 prefix features of every view of the training photos, and P. Cached on disk."""
    paths = training_photos(config.data_root and Path(config.data_root), config.max_photos + config.background_photos,
                            config.seed)
    backgrounds, train = paths[: config.background_photos], paths[config.background_photos:]
    key = hashlib.sha256(json.dumps([str(p) for p in train] + [str(p) for p in backgrounds] + [
        config.views_per_photo, config.image_size, config.frozen_blocks, config.seed, "v1"]
        + ([sorted(config.family_weights.items())] if config.family_weights else [])).encode()).hexdigest()[:16]
    file = Path(config.cache_dir) / f"views_{key}.pt"
    if file.is_file():
        _log(f"view cache hit {file}")
        return torch.load(file), len(train)
    bg_images = load_photos(backgrounds)
    V, chunk, out, t0 = config.views_per_photo, 16, None, time.time()
    for start in range(0, len(train), chunk):
        photos = load_photos(train[start : start + chunk])
        views = [render_view(img, start + i, v, bg_images, config.seed, config.family_weights)[1] for i, img in enumerate(photos)
                 for v in range(V)]
        feats = trunk.prefix(tower.preprocess(views).to(config.device)).to("cpu", torch.float16)  # (n*V, C, h, w)
        if out is None:
            out = torch.empty((len(train), V, *feats.shape[1:]), dtype=torch.float16)
        out[start : start + len(photos)] = feats.reshape(len(photos), V, *feats.shape[1:])
        if (start // chunk) % 10 == 0:
            done = start + len(photos)
            _log(f"cached {done}/{len(train)} photos ({(time.time() - t0) / done * len(train) / 60:.1f} min total est.)")
    file.parent.mkdir(parents=True, exist_ok=True)
    torch.save(out, file.with_suffix(".tmp"))
    file.with_suffix(".tmp").replace(file)
    return out, len(train)


def _lr(step: int, config: CopyTrainConfig, minutes: float = 0.0) -> float:
    """Linear warm-up, then cosine to 0 over max(step progress, wall-clock progress): a run cut by max_minutes
    still ends annealed."""
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    progress = max((step - config.warmup_steps) / max(1, config.steps - config.warmup_steps),
                   minutes / config.max_minutes)
    return config.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


@torch.no_grad()
def _whitening(trunk: CopyTrunk, cache: torch.Tensor, config: CopyTrainConfig, n_train: int):
    """PCA whitening on the clean views of the first min(whitening_photos, n_train) training photos."""
    n = min(config.whitening_photos, n_train)
    desc = torch.cat([trunk.embed(cache[i : min(i + 64, n), 0].to(config.device, torch.float32)).cpu()
                      for i in range(0, n, 64)])  # (n, 1280)
    return fit_whitening(desc, config.whitening_dim, config.whitening_eps)


@torch.no_grad()
def validation_scores(trunk: CopyTrunk, cache: torch.Tensor, photos: range, config: CopyTrainConfig) -> dict:
    """Edited views of the held-out `photos` searched among their clean views (cosine of GeM + L2, no whitening):
    {"val_r1": recall@1 over the edited views, "val_pos": mean cosine to the own clean view, "val_neg": mean of the
    highest cosine to another photo's clean view}."""
    V = config.views_per_photo
    emb = torch.cat([trunk.embed(cache[i : min(i + 32, photos.stop)].flatten(0, 1).to(config.device, torch.float32))
                     .cpu().reshape(-1, V, 1280) for i in range(photos.start, photos.stop, 32)])  # (n, V, 1280)
    clean, edited = emb[:, 0], emb[:, 1:]  # (n, 1280), (n, V-1, 1280)
    sim = torch.einsum("nvd,md->nvm", edited, clean)  # (n, V-1, n)
    own = torch.arange(len(clean))
    pos = sim[own, :, own]  # (n, V-1)
    other = sim.clone()
    other[own, :, own] = -2.0
    neg = other.max(dim=-1).values  # (n, V-1)
    return {"val_r1": (pos > neg).float().mean().item(), "val_pos": pos.mean().item(), "val_neg": neg.mean().item()}


def _checkpoint(trunk: CopyTrunk, net: torch.nn.Module, cache: torch.Tensor, n_train: int, config: CopyTrainConfig,
                path: Path, meta: dict) -> None:
    trunk.eval()
    save_copy_tower(net, _whitening(trunk, cache, config, n_train), path, {**asdict(config), **meta})
    trunk.train()


def train(config: CopyTrainConfig, out_dir: Path) -> dict:
    """Run the recipe; returns the training log (also written to out_dir/train_log.json)."""
    torch.set_num_threads(config.num_threads)
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    tower = ImageTower("efficientnet-lite0", config.image_size)  # a private copy (not the shared cached tower)
    net = tower.net.to(config.device)
    trunk = CopyTrunk(net, config.frozen_blocks, config.gem_p)
    t_start = time.time()
    cache, P = build_view_cache(config, trunk, tower)
    t_cache = time.time() - t_start
    _log(f"view cache {tuple(cache.shape)} ready in {t_cache / 60:.1f} min")
    task = CopyTask(trunk, config)
    params = [p for p in net.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    n_train = P - config.val_photos  # batches draw from photos [0, n_train); the rest are the validation photos
    val = range(n_train, P)
    history, checkpoints, t0 = [], [], time.time()
    t_ckpt = t0

    def checkpoint(step_no: int, save: bool = True) -> None:
        entry: dict = {"step": step_no, "minutes": (time.time() - t0) / 60}
        if len(val):
            trunk.eval()
            entry.update(validation_scores(trunk, cache, val, config))
        if save:
            path = out_dir / "checkpoints" / f"step_{step_no:05d}" / "tower.safetensors"
            _checkpoint(trunk, net, cache, n_train, config, path, {"steps_done": step_no})
            entry["path"] = str(path)
        trunk.train()
        checkpoints.append(entry)
        _log("checkpoint " + " ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in entry.items()))

    if len(val):
        checkpoint(0, save=False)  # the ImageNet starting point on the validation photos
    trunk.train()
    step = 0
    for step in range(config.steps):
        if step and config.checkpoint_minutes and time.time() - t_ckpt > config.checkpoint_minutes * 60:
            checkpoint(step)
            t_ckpt = time.time()
        minutes = (time.time() - t0) / 60
        if minutes > config.max_minutes:
            _log(f"max_minutes reached at step {step}")
            break
        for group in opt.param_groups:
            group["lr"] = _lr(step, config, minutes)
        photos = rng.choice(n_train, size=min(config.batch_photos, n_train), replace=False)
        views = np.stack([rng.choice(config.views_per_photo, size=config.batch_views, replace=False) for _ in photos])
        feats = cache[photos[:, None], views].flatten(0, 1).to(config.device, torch.float32)  # (B*V, C, h, w)
        instance = torch.from_numpy(np.repeat(photos, config.batch_views)).to(config.device)  # (B*V,)
        loss, report = task.training_forward(feats, instance, rng)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        history.append({"step": step + 1, "lr": opt.param_groups[0]["lr"], "loss": loss.item(), **report})
        if (step + 1) % config.log_every == 0 or step == 0:
            h = history[-1]
            _log(f"step {step + 1}/{config.steps} loss {h['loss']:.3f} infonce {h['infonce']:.3f} koleo "
                 f"{h['koleo']:.3f} pos {h['pos_sim']:.3f} neg {h['neg_sim']:.3f} "
                 f"({(time.time() - t0) / (step + 1):.2f} s/step)")
    steps_done = len(history)
    t_train = time.time() - t0
    if len(val):
        checkpoint(steps_done, save=False)  # the final model is written below
    trunk.eval()
    whitening = _whitening(trunk, cache, config, n_train)
    log = {"config": asdict(config), "steps_done": steps_done, "photos": P, "cache_minutes": t_cache / 60,
           "train_minutes": t_train / 60, "total_minutes": (time.time() - t_start) / 60,
           "torch_threads": torch.get_num_threads(), "device": config.device,
           "hardware": f"{os.cpu_count()} CPU cores visible" if config.device == "cpu" else torch.cuda.get_device_name(),
           "checkpoints": checkpoints, "history": history}
    out_dir.mkdir(parents=True, exist_ok=True)
    save_copy_tower(net.cpu(), whitening, out_dir / "tower.safetensors",
                    {**asdict(config), "steps_done": steps_done})
    (out_dir / "train_log.json").write_text(json.dumps(log, indent=1) + "\n", encoding="utf-8")
    _log(f"wrote {out_dir / 'tower.safetensors'} after {steps_done} steps ({log['total_minutes']:.1f} min)")
    return log


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--set", nargs="*", default=[], help="overrides, key=value (TOML values)")
    args = parser.parse_args(argv)
    import tomllib

    d = tomllib.loads(args.config.read_text(encoding="utf-8"))
    for kv in args.set:
        k, _, v = kv.partition("=")
        d[k] = tomllib.loads(f"v = {v}")["v"]
    train(CopyTrainConfig.from_dict(d), args.out)


if __name__ == "__main__":
    main()
