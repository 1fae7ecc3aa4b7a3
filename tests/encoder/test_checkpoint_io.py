"""encoder/checkpoint.py: the folder format round-trips exactly; broken folders fail with clear errors."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from encoder.checkpoint import CheckpointError, load_checkpoint, save_checkpoint, weights_version
from encoder.compact import CompactUniNote
from encoder.config import CompactConfig
from encoder.inprocess import InProcessEncoder
from encoder.loading import DEFAULT_CHECKPOINT
from encoder.types import NoteInput


@pytest.fixture
def trained_like_model() -> CompactUniNote:
    """A model whose zero-initialised parts are no longer zero (as after training)."""
    model = CompactUniNote(CompactConfig(seed=3))
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01 * torch.randn(p.shape, generator=g))
    return model.eval()


def test_round_trip_gives_the_same_vectors_and_version(trained_like_model, real_photos, tmp_path):
    version = save_checkpoint(trained_like_model, tmp_path / "ckpt", card="# test card")
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == ["MODEL_CARD.md", "config.json", "heads.safetensors"]
    loaded = load_checkpoint(tmp_path / "ckpt")
    assert loaded.config == trained_like_model.config and not loaded.training
    assert version == loaded.model_version == weights_version(trained_like_model) == weights_version(loaded)
    note = [NoteInput("n", title="咖啡", body="Fresh coffee. 很香。", images=[real_photos["coffee"]], ocr_texts=["CAFE"])]
    a = InProcessEncoder(trained_like_model).encode(note)[0]
    b = InProcessEncoder(loaded).encode(note)[0]
    assert a.model_version == b.model_version == version
    assert np.array_equal(a.global_vector, b.global_vector)
    assert all(np.array_equal(x.vector, y.vector) for x, y in zip(a.locals, b.locals))


def test_version_changes_with_the_weights(trained_like_model):
    before = weights_version(trained_like_model)
    with torch.no_grad():
        trained_like_model.fusion.query[0] += 1e-3
    assert weights_version(trained_like_model) != before


def test_only_head_weights_are_saved(tmp_path):
    save_checkpoint(CompactUniNote(), tmp_path)
    assert (tmp_path / "heads.safetensors").stat().st_size < 8 * 2**20
    assert json.loads((tmp_path / "config.json").read_text())["backbone"] == "compact"


def test_shipped_checkpoint_has_the_default_config():
    """Its weights are trained (tests/training/test_shipped_checkpoint.py); its layout is the default one, with
    text elements from the isometry of its text head (tests/encoder/test_text_locals.py)."""
    assert load_checkpoint(DEFAULT_CHECKPOINT).config == CompactConfig(seed=0, text_locals="isometry")


def _copy(tmp_path):
    folder = tmp_path / "ckpt"
    shutil.copytree(DEFAULT_CHECKPOINT, folder)
    return folder


def test_missing_folder_and_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="checkpoint folder not found"):
        load_checkpoint(tmp_path / "nowhere")
    folder = _copy(tmp_path)
    (folder / "heads.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="no heads.safetensors"):
        load_checkpoint(folder)
    (folder / "config.json").unlink()
    with pytest.raises(FileNotFoundError, match="no config.json"):
        load_checkpoint(folder)


def test_corrupt_weights(tmp_path):
    folder = _copy(tmp_path)
    data = (folder / "heads.safetensors").read_bytes()
    (folder / "heads.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="not a readable safetensors"):
        load_checkpoint(folder)
    (folder / "heads.safetensors").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="not a readable safetensors"):
        load_checkpoint(folder)


def test_bad_config(tmp_path):
    folder = _copy(tmp_path)
    (folder / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_checkpoint(folder)
    (folder / "config.json").write_text(json.dumps({"backbone": "qwen3vl", "dims": [64, 4096]}))
    with pytest.raises(CheckpointError, match="backbone 'qwen3vl'.*ENCODER_URL"):
        load_checkpoint(folder)
    (folder / "config.json").write_text(json.dumps({"backbone": "compact", "dims": [512, 64]}))
    with pytest.raises(CheckpointError, match="ascending"):
        load_checkpoint(folder)


def test_weights_that_do_not_match_the_config(tmp_path):
    folder = _copy(tmp_path)
    CompactConfig(head_hidden=128, text_locals="isometry").to_json(folder / "config.json")
    with pytest.raises(CheckpointError, match="has shape"):
        load_checkpoint(folder)
