"""The Qwen3-VL backbone in-process (tiny random model): config, inputs, elements, embeddings, encoder.
Training it is tests/training/test_sft_qwen3vl.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from tiny_qwen3vl import photos, sample_notes, tiny_checkpoint

from encoder.qwen3vl import load_qwen3vl, weights_version
from encoder.qwen3vl_config import (
    IMAGE_FACTOR, PAPER_DIMS, Qwen3VLEncoderConfig, default_dims, is_qwen3vl_checkpoint,
)
from encoder.qwen3vl_elements import note_elements
from encoder.qwen3vl_encoder import Qwen3VLEncoder
from encoder.qwen3vl_inputs import Conversation, fit_image, smart_resize
from encoder.types import ElementKind, Encoder, InputError, NoteInput


@pytest.fixture(scope="module")
def embedder():
    torch.set_num_threads(2)
    return load_qwen3vl(tiny_checkpoint())


# -- config ---------------------------------------------------------------------------------------------
def test_default_dims_follow_the_paper_up_to_the_hidden_size():
    assert default_dims(4096) == PAPER_DIMS
    assert default_dims(2048) == (64, 512, 1024, 2048)
    assert default_dims(128) == (64, 128)


def test_config_round_trips_and_rejects_bad_values(tmp_path: Path):
    cfg = Qwen3VLEncoderConfig(dims=(64, 128), min_pixels=32 * 32, max_pixels=64 * 64)
    cfg.save(tmp_path)
    assert Qwen3VLEncoderConfig.load(tmp_path) == cfg
    assert is_qwen3vl_checkpoint(tmp_path)
    with pytest.raises(ValueError, match="ascending"):
        Qwen3VLEncoderConfig(dims=(128, 64))
    with pytest.raises(ValueError, match="instructions missing"):
        Qwen3VLEncoderConfig(instructions={"image": "x"})
    with pytest.raises(ValueError, match="min_pixels"):
        Qwen3VLEncoderConfig(min_pixels=10_000, max_pixels=5_000)
    with pytest.raises(ValueError, match="backbone 'compact'"):
        Qwen3VLEncoderConfig.from_dict({"backbone": "compact"})
    with pytest.raises(FileNotFoundError, match="uninote.json"):
        Qwen3VLEncoderConfig.load(tmp_path / "nowhere")


# -- inputs and elements ---------------------------------------------------------------------------------
@pytest.mark.parametrize("size", [(512, 512), (300, 451), (20, 900), (4000, 3000)])
def test_smart_resize_gives_factor_multiples_within_bounds(size):
    h, w = smart_resize(*size, min_pixels=64 * 64, max_pixels=256 * 256)
    assert h % IMAGE_FACTOR == 0 and w % IMAGE_FACTOR == 0
    assert 64 * 64 <= h * w <= 256 * 256 or min(h, w) == IMAGE_FACTOR
    with pytest.raises(ValueError, match="aspect ratio"):
        smart_resize(10, 5000, 64 * 64, 256 * 256)


def test_fit_image_is_idempotent():
    (astronaut,) = photos("astronaut")
    once = fit_image(astronaut, 64 * 64, 128 * 128)
    assert once.size[0] % IMAGE_FACTOR == 0 and once.size[1] % IMAGE_FACTOR == 0
    assert fit_image(once, 64 * 64, 128 * 128) is once


def test_note_elements_cover_every_kind():
    cfg = Qwen3VLEncoderConfig(dims=(64, 128), min_pixels=64 * 64, max_pixels=128 * 128)
    astronaut, cafe, text = sample_notes()
    global_conv, elements = note_elements(cafe, cfg)
    kinds = [e.kind for e in elements]
    assert kinds.count(ElementKind.IMAGE) == 2
    assert kinds.count(ElementKind.CROP) == 2 * len(cfg.crop_boxes)
    assert kinds.count(ElementKind.TITLE) == 1 and kinds.count(ElementKind.BODY) >= 1
    assert len(global_conv.images) == 2 and "咖啡和猫" in global_conv.text
    crops = [e for e in elements if e.kind == ElementKind.CROP]
    assert [c.index for c in crops] == list(range(len(crops)))
    assert {c.image_index for c in crops} == {0, 1} and crops[0].box == cfg.crop_boxes[0]
    _, elements = note_elements(astronaut, cfg)
    assert [e.text for e in elements if e.kind == ElementKind.OCR] == ["NASA"]
    _, elements = note_elements(text, cfg)
    assert {e.kind for e in elements} == {ElementKind.TITLE, ElementKind.BODY}
    with pytest.raises(InputError, match="empty note"):
        note_elements(NoteInput("empty"), cfg)


def test_messages_put_images_before_text():
    (img,) = photos("coffee")
    conv = Conversation("Represent it.", [img], "hello")
    msgs = conv.messages()
    assert msgs[0] == {"role": "system", "content": "Represent it."}
    assert [p["type"] for p in msgs[1]["content"]] == ["image", "text"]


# -- the embedder and the encoder ---------------------------------------------------------------------------
def test_embeddings_are_normalised_and_batch_independent(embedder):
    cfg = embedder.config
    global_conv, elements = note_elements(sample_notes()[1], cfg)
    convs = [global_conv, elements[0].conversation, elements[-1].conversation]
    batch = embedder.embed(convs)  # (3, D)
    assert batch.shape == (3, 128) and batch.dtype == torch.float32
    assert torch.allclose(batch.norm(dim=-1), torch.ones(3), atol=1e-5)
    one_by_one = torch.cat([embedder.embed([c]) for c in convs])
    assert torch.allclose(batch, one_by_one, atol=1e-4)
    # the instruction matters: the same image under two element kinds gives two different vectors
    img = elements[0].conversation.images
    a, b = embedder.embed([Conversation(cfg.instructions["image"], img), Conversation(cfg.instructions["crop"], img)])
    assert float(a @ b) < 0.9999


def test_qwen3vl_encoder_follows_the_encoder_protocol(embedder):
    encoder = Qwen3VLEncoder(embedder, weights_version(tiny_checkpoint()))
    assert isinstance(encoder, Encoder) and encoder.dims == (64, 128)
    notes = sample_notes()
    encoded = encoder.encode(notes)
    assert [e.note_id for e in encoded] == [n.note_id for n in notes]
    for note, enc in zip(notes, encoded):
        assert enc.global_vector.shape == (128,) and enc.global_vector.dtype == np.float32
        assert abs(np.linalg.norm(enc.global_vector) - 1) < 1e-5
        assert sum(1 for v in enc.locals if v.kind == ElementKind.IMAGE) == len(note.images)
        assert all(abs(np.linalg.norm(v.vector) - 1) < 1e-5 for v in enc.locals)
    assert encoded[0].model_version == weights_version(tiny_checkpoint())
    with pytest.raises(InputError):
        encoder.encode([NoteInput("empty")])
