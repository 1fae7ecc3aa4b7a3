"""encoder/loading.py: settings pick the encoder; the towers load once per process."""

from __future__ import annotations

import importlib.util

import pytest

from app.settings import Settings
from encoder.checkpoint import save_checkpoint, weights_version
from encoder.compact import CompactUniNote
from encoder.config import CompactConfig
from encoder.inprocess import InProcessEncoder
from encoder.loading import DEFAULT_CHECKPOINT, load_encoder
from encoder.types import Encoder


def test_default_is_the_shipped_compact_checkpoint():
    enc = load_encoder(Settings(checkpoint=None, encoder_url=None))
    assert isinstance(enc, InProcessEncoder) and isinstance(enc, Encoder)
    assert enc.dims == (64, 128, 256, 512)
    assert enc.model_version == load_encoder(Settings(checkpoint=DEFAULT_CHECKPOINT)).model_version


def test_checkpoint_setting_is_used_and_towers_are_shared(tmp_path):
    model = CompactUniNote(CompactConfig(seed=9))
    save_checkpoint(model, tmp_path)
    enc = load_encoder(Settings(checkpoint=tmp_path, encoder_url=None))
    assert enc.model_version == weights_version(model)
    default = load_encoder(Settings(checkpoint=None, encoder_url=None))
    assert enc.model_version != default.model_version
    assert enc.model.image_tower is default.model.image_tower  # loaded once per process
    assert enc.model.text_tower is default.model.text_tower


def test_missing_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="checkpoint folder not found"):
        load_encoder(Settings(checkpoint=tmp_path / "missing", encoder_url=None))


def test_encoder_url_selects_the_vllm_client():
    if importlib.util.find_spec("encoder.vllm_encoder") is None:
        pytest.skip("encoder/vllm_encoder.py (the vLLM client) is not in this tree yet")
    from encoder.vllm_encoder import VLLMEncoder

    try:
        enc = load_encoder(Settings(encoder_url="http://127.0.0.1:9/v1", encoder_model="uninote"))
    except Exception as e:  # the client may probe the server on construction: nothing listens on port 9
        assert not isinstance(e, (ImportError, AttributeError)), e
        return
    assert isinstance(enc, VLLMEncoder)
