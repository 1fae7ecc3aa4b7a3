"""training/sft_data.py + sft_corpus.py on the real data: the held-out split by product and photo is leak-free."""

from __future__ import annotations

import pytest

from tests.training.sft_support import SHARED_DATA
from training.sft_config import DataConfig
from training.sft_corpus import side_corpus
from training.sft_data import HELD_OUT_MOD, HELD_OUT_REM, load_split

pytestmark = pytest.mark.skipif(not (SHARED_DATA / "grocery" / "products.csv").is_file(),
                                reason=f"real data not found at {SHARED_DATA} (grocery/products.csv)")


@pytest.fixture(scope="module")
def sides():
    data = DataConfig(data_root=str(SHARED_DATA), max_photos_per_product=8, max_clothing=50, max_distractors=20,
                      max_reviews=50)
    return side_corpus(data, held_out=False), side_corpus(data, held_out=True)


def test_no_evaluation_photo_or_product_is_trained_on(sides):
    train, held = sides
    train_photos = {str(p.resolve()) for p in train.photos}
    assert train_photos.isdisjoint(str(p.resolve()) for p in held.photos)
    assert {v.path for v in train.views}.isdisjoint(v.path for v in held.views)
    assert {p.product_id for p in train.products}.isdisjoint(p.product_id for p in held.products)
    held_grocery = [p for p in held.products if p.source == "grocery"]
    assert held_grocery and all(int(p.product_id[1:]) % HELD_OUT_MOD == HELD_OUT_REM for p in held_grocery)


def test_products_carry_real_titles_descriptions_and_reviews(sides):
    train, _ = sides
    grocery = [i for i, p in enumerate(train.products) if p.source == "grocery"]
    assert len(grocery) == 81 - 16
    assert all(train.texts[train.title_text[i]] for i in grocery)
    assert sum(bool(train.description_texts[i]) for i in grocery) > 50
    assert len(train.review_texts) == 50 and any("\u4e00" <= ch <= "\u9fff" for ch in train.texts[-1])
    assert any(p.source == "clothing" for p in train.products)


def test_distractors_are_queries_only(sides):
    _, held = sides
    distractors = [i for i, v in enumerate(held.original_view) if v < 0]
    assert len(distractors) == 20 and all(held.edited_views[i] for i in distractors)


def test_edit_seeds_are_deterministic_and_differ_between_sides():
    data = DataConfig(data_root=str(SHARED_DATA), max_photos_per_product=2, max_clothing=5, max_distractors=2,
                      max_reviews=5)
    a, b = side_corpus(data, held_out=True), side_corpus(data, held_out=True)
    assert [v.key for v in a.views] == [v.key for v in b.views]
    edits = {v.edit for v in side_corpus(data, held_out=False).views if v.edit}
    assert len(edits) > 3


def test_missing_data_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="grocery"):
        load_split(False, tmp_path)
