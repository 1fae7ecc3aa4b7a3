"""training/copy_train.py: a 2-step run on real photos writes a copy tower that encoder.towers loads, with only the
tail trained, plus loadable checkpoints scored on held-out training photos; family weights steer the views; the set
builder keeps benchmark photos out of training."""

from __future__ import annotations

import json

import pytest
import torch

from encoder.copy_tower_weights import load_copy_tower
from encoder.towers import ImageTower
from tests.training.sft_support import SHARED_DATA, real_photos
from training.copy_config import CopyTrainConfig
from training.copy_train import train

pytestmark = pytest.mark.skipif(not (SHARED_DATA / "grocery" / "products.csv").is_file(),
                                reason=f"real data not found at {SHARED_DATA} (grocery/products.csv)")


def test_two_step_run_trains_the_tail_only_and_loads_as_the_copy_tower(tmp_path):
    torch.set_num_threads(1)
    cfg = CopyTrainConfig(data_root=str(SHARED_DATA), cache_dir=str(tmp_path / "cache"), max_photos=8,
                          background_photos=3, views_per_photo=3, batch_photos=4, steps=2, warmup_steps=1,
                          image_size=128, whitening_dim=8, whitening_photos=8, log_every=1,
                          checkpoint_minutes=1e-6, val_photos=2)
    log = train(cfg, tmp_path / "out")
    assert log["steps_done"] == 2 and all(torch.isfinite(torch.tensor(h["loss"])) for h in log["history"])
    assert json.loads((tmp_path / "out" / "train_log.json").read_text())["photos"] == 8
    ckpts = log["checkpoints"]
    assert [c["step"] for c in ckpts] == [0, 1, 2]  # ImageNet start, step 1, the final model
    assert ["path" in c for c in ckpts] == [False, True, False]
    assert all(0.0 <= c["val_r1"] <= 1.0 and -1.0 <= c["val_neg"] <= 1.0 for c in ckpts)
    mid = ImageTower("efficientnet-lite0-copy", 128, weights_path=ckpts[1]["path"])
    assert mid.whitening.matrix.shape == (8, 1280)
    copy = ImageTower("efficientnet-lite0-copy", 128, weights_path=str(tmp_path / "out" / "tower.safetensors"))
    base = ImageTower("efficientnet-lite0", 128)
    assert base.whitening is None and copy.whitening.matrix.shape == (8, 1280)
    b, c = base.net.state_dict(), copy.net.state_dict()
    frozen = [k for k in b if k.startswith(("_conv_stem", "_bn0")) or k.startswith(tuple(
        f"_blocks.{i}." for i in range(cfg.frozen_blocks)))]
    trained = [k for k in b if k.startswith("_conv_head") and k.endswith("weight")]
    assert frozen and all(torch.allclose(b[k].float(), c[k].float(), atol=2e-3, rtol=1e-3) for k in frozen)
    assert any(not torch.allclose(b[k], c[k], atol=1e-4) for k in trained)
    fmap = copy(copy.preprocess(list(real_photos()[:2])))
    assert fmap.shape == (2, 1280, 4, 4) and (fmap >= 0).all()


def test_a_file_of_another_format_is_refused(tmp_path):
    from safetensors.torch import save_file

    bad = tmp_path / "bad.safetensors"
    save_file({"x": torch.zeros(2)}, str(bad), metadata={"format": "something-else"})
    with pytest.raises(ValueError, match="not a copy tower file"):
        load_copy_tower(ImageTower("efficientnet-lite0", 128).net, bad)
    with pytest.raises(FileNotFoundError, match="not found"):
        ImageTower("efficientnet-lite0-copy", 128, weights_path=str(tmp_path / "missing.safetensors"))
    with pytest.raises(ValueError, match="unsupported image tower"):
        ImageTower("resnet-50")


def test_family_weights_steer_the_views_and_unknown_families_are_refused():
    from PIL import Image

    from training.copy_data import render_view
    from training.copy_edits import COPY_FAMILIES

    photo, bg = real_photos()[:2]
    only_blur = {n: 0.0 for n in COPY_FAMILIES if n != "blur"}
    names = [render_view(photo, i, 1 + i % 3, [bg], 0, only_blur)[0] for i in range(6)]
    assert names == ["blur"] * 6
    family, img = render_view(photo, 0, 0, [bg], 0, only_blur)
    assert family == "clean" and isinstance(img, Image.Image)
    uniform = {render_view(photo, i, 1, [bg])[0] for i in range(40)}
    assert len(uniform) > 5
    with pytest.raises(ValueError, match="unknown copy families in family_weights: blurr"):
        CopyTrainConfig(family_weights={"blurr": 2.0})
    with pytest.raises(ValueError, match="val_photos"):
        CopyTrainConfig(max_photos=10, val_photos=10)


def test_config_rejects_bad_fields_and_unknown_keys():
    with pytest.raises(ValueError, match="frozen_blocks"):
        CopyTrainConfig(frozen_blocks=16)
    with pytest.raises(ValueError, match="multiple of 32"):
        CopyTrainConfig(image_size=100)
    with pytest.raises(ValueError, match="unknown copy training config keys: lr_max"):
        CopyTrainConfig.from_dict({"lr_max": 1.0})


def test_benchmark_photos_are_never_training_photos(tmp_path):
    from training.copy_benchmark import SKIMAGE_PHOTOS, build_copy_benchmark, held_out_sources
    from training.copy_data import training_photos

    grocery, cl_test, cl_val = held_out_sources(SHARED_DATA)
    train_set = set(training_photos(SHARED_DATA, max_photos=100_000))
    assert train_set and not train_set & set(grocery + cl_test + cl_val)
    bench = build_copy_benchmark(SHARED_DATA, tmp_path, n_refs=40, n_positive=32, n_distractors=14)
    truth = bench.truth
    assert len(bench.refs) == 40 and truth.shape == (46, 40)
    assert truth.sum() == 32 and (truth.sum(axis=1) == (bench.query_ref >= 0)).all()
    assert set(bench.query_family[:32]) == set(bench.query_family)  # every family among the copies
    manifest = json.loads((bench.refs[0].parents[1] / "manifest.json").read_text())
    assert manifest["ref_sources"][: len(SKIMAGE_PHOTOS)] == [f"skimage:{n}" for n in SKIMAGE_PHOTOS]
