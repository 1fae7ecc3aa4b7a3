"""The image tower through ONNX Runtime (encoder/onnx_tower.py): the vectors torch gives, from whatever weights
the ImageTower holds, exported once into a cache folder and never half-written."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from PIL import Image

from app.settings import Settings
from encoder import onnx_tower
from encoder.inprocess import InProcessEncoder
from encoder.loading import load_encoder
from encoder.onnx_tower import OnnxImageTower, onnx_image_tower, weights_key
from encoder.towers import image_tower
from encoder.types import NoteInput

MIN_COSINE = 0.9999


def _cosines(a: torch.Tensor, b: torch.Tensor) -> np.ndarray:
    """(..., C) x (..., C) -> (...) cosine per row."""
    return torch.nn.functional.cosine_similarity(a.flatten(0, -2), b.flatten(0, -2), dim=-1).numpy()


@pytest.fixture
def fresh_process():
    """As in a new process: no runner exported yet (runners are shared per process, keyed by the weights)."""
    saved = dict(onnx_tower._sessions)
    onnx_tower._sessions.clear()
    yield
    onnx_tower._sessions.clear()
    onnx_tower._sessions.update(saved)


@pytest.fixture
def photos(real_photos, grocery_photo_paths) -> list[Image.Image]:
    return list(real_photos.values())[:6] + [Image.open(p).convert("RGB") for p in grocery_photo_paths[:4]]


def test_region_vectors_equal_torch(tmp_path, compact_model, photos, fresh_process):
    runner = onnx_image_tower(compact_model.image_tower, tmp_path / "cache")
    assert runner.path is not None and runner.path.is_file() and runner.path.parent == tmp_path / "cache"
    try:
        torch_feats = compact_model.region_features(photos)  # (B, R, 1280)
        compact_model.image_runner = runner
        onnx_feats = compact_model.region_features(photos)
        one = compact_model.region_features(photos[:1])  # batch axis is dynamic
    finally:
        compact_model.image_runner = None
    assert onnx_feats.shape == torch_feats.shape
    assert _cosines(onnx_feats, torch_feats).min() >= MIN_COSINE
    assert _cosines(one, torch_feats[:1]).min() >= MIN_COSINE


def test_encoded_notes_equal_torch(tmp_path, compact_model, photos):
    notes = [NoteInput(note_id=f"n{i}", title="标题", body="这是一段笔记的正文。", images=photos[i : i + 3])
             for i in range(0, 6, 3)]
    by_torch = InProcessEncoder(compact_model).encode(notes)
    compact_model.image_runner = onnx_image_tower(compact_model.image_tower, tmp_path / "cache")
    try:
        encoder = InProcessEncoder(compact_model)
        by_onnx = encoder.encode(notes)
    finally:
        compact_model.image_runner = None
    assert encoder.model_version == by_torch[0].model_version  # the runtime is not part of the model
    for a, b in zip(by_onnx, by_torch):
        assert float(a.global_vector @ b.global_vector) >= MIN_COSINE
        assert [(x.kind, x.index) for x in a.locals] == [(x.kind, x.index) for x in b.locals]
        assert min(float(x.vector @ y.vector) for x, y in zip(a.locals, b.locals)) >= MIN_COSINE


def test_the_export_follows_the_weights_the_module_holds(tmp_path, photos, fresh_process):
    """A tower with other weights (e.g. a copy-detection fine-tune) exports to its own file, and the ONNX
    model computes that tower, not the ImageNet one."""
    base = image_tower()
    tuned = copy.deepcopy(base)
    with torch.no_grad():
        for name, p in tuned.net.named_parameters():
            if name.endswith("weight") and p.ndim == 4:
                p.mul_(1.0 + 0.05 * torch.randn_like(p, generator=torch.Generator().manual_seed(len(name))))
    assert weights_key(tuned) != weights_key(base)
    a, b = onnx_image_tower(base, tmp_path), onnx_image_tower(tuned, tmp_path)
    assert a.path != b.path and len(list(tmp_path.glob("image_tower-*.onnx"))) == 2
    pixels = base.preprocess(photos[:3])  # (3, 3, S, S)
    want = tuned(pixels)  # (3, 1280, h, w)
    assert _cosines(b(pixels).permute(0, 2, 3, 1), want.permute(0, 2, 3, 1)).min() >= MIN_COSINE
    assert _cosines(a(pixels).permute(0, 2, 3, 1), want.permute(0, 2, 3, 1)).min() < 0.999  # not the base tower


def test_a_cached_export_is_loaded_and_a_damaged_one_exported_again(tmp_path, photos, fresh_process):
    tower = image_tower()
    first = onnx_image_tower(tower, tmp_path)
    assert onnx_image_tower(tower, tmp_path) is first  # once per process
    onnx_tower._sessions.clear()
    mtime = first.path.stat().st_mtime_ns
    assert onnx_image_tower(tower, tmp_path).path.stat().st_mtime_ns == mtime  # loaded, not exported again

    first.path.write_bytes(b"not an onnx model")
    onnx_tower._sessions.clear()
    runner = onnx_image_tower(tower, tmp_path)
    assert runner.path == first.path and runner.path.stat().st_size > 1_000_000
    assert not list(tmp_path.glob(".image_tower-*"))  # no temporary file left behind
    pixels = tower.preprocess(photos[:2])
    assert _cosines(runner(pixels).permute(0, 2, 3, 1), tower(pixels).permute(0, 2, 3, 1)).min() >= MIN_COSINE


def test_an_unwritable_cache_folder_keeps_the_model_in_memory(tmp_path, fresh_process):
    tower = image_tower()
    blocker = tmp_path / "a-file"
    blocker.write_text("the cache folder's parent is a file")
    runner = onnx_image_tower(tower, blocker / "onnx")
    assert isinstance(runner, OnnxImageTower) and runner.path is None
    assert runner(tower.preprocess([Image.new("RGB", (64, 64), "gray")])).shape == (1, 1280, 7, 7)


def test_the_setting_picks_the_runtime(tmp_path, fresh_process):
    onnx = load_encoder(Settings(UNINOTE_HOME=tmp_path, encoder_runtime="onnx"))
    assert isinstance(onnx.model.image_runner, OnnxImageTower)
    assert onnx.model.image_runner is onnx_image_tower(onnx.model.image_tower, tmp_path / "cache" / "onnx")
    assert onnx.model.image_runner.path == tmp_path / "cache" / "onnx" / f"image_tower-{weights_key(onnx.model.image_tower)}.onnx"
    plain = load_encoder(Settings(UNINOTE_HOME=tmp_path, encoder_runtime="torch"))
    assert plain.model.image_runner is None
    assert plain.model_version == onnx.model_version
    with pytest.raises(ValueError, match="encoder_runtime"):
        Settings(encoder_runtime="tensorrt")
