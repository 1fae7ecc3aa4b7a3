"""Geometric verification inside the audit (app/match_verification.py) on real photos through the Library: a
photo pasted into another verifies with its region boxed in both images and raises the match's image evidence;
an unrelated photo's candidates score 0; verification is off with verify_candidates=0; the boxes survive the
report's dict round trip (records, API)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import skimage.data
from PIL import Image

from app.audit import AuditReport
from app.geometric_verification import local_features, mirrored
from app.library import Library
from app.match_verification import ImageSource
from app.notes import Note
from app.settings import Settings
from encoder.images import load_image
from tests.app.test_library import PHOTOS, REVIEWS, _save


def photo_library(tmp) -> Library:
    """A Library at tmp/home of one note per scikit-image photo (n0, n1, ...: PHOTOS with REVIEWS), OCR off."""
    lib = Library.open(Settings(UNINOTE_HOME=tmp / "home", ocr_enabled=False))
    notes = []
    for i, (name, review) in enumerate(zip(PHOTOS, REVIEWS)):
        path = _save(Image.fromarray(getattr(skimage.data, name)()), tmp / f"{name}.jpg")
        notes.append(Note(note_id=f"n{i}", title=review[:8], body=review, images=[path]))
    assert not lib.index(notes).failed
    return lib


@pytest.fixture(scope="module")
def indexed(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("verify")
    lib = photo_library(tmp)
    yield lib, tmp
    lib.close()


def pasted_query(tmp) -> Note:
    """The coffee photo (n1) shrunk and pasted into the lower right of a photo the library lacks."""
    background = Image.fromarray(skimage.data.camera()).convert("RGB").resize((640, 640))  # (640, 640)
    coffee = Image.fromarray(skimage.data.coffee()).resize((300, 200))
    background.paste(coffee, (300, 380))  # x 0.47-0.94, y 0.59-0.91
    return Note(note_id="q-paste", title="新图", body="今天拍的照片，分享给大家看看。",
                images=[_save(background, tmp / "q-paste.jpg")])


def check_without_verification(lib, note):
    lib.audit_config = dataclasses.replace(lib.audit_config, verify_candidates=0)
    try:
        return lib.check(note, save=False)
    finally:
        lib.audit_config = dataclasses.replace(lib.audit_config, verify_candidates=Settings().verify_candidates)


def test_a_pasted_photo_verifies_with_its_region_in_both_images(indexed):
    lib, tmp = indexed
    report = lib.check(pasted_query(tmp), save=False)
    match = next(m for m in report.matches if m.note_id == "n1")
    verified = [e for e in match.evidence if e.inliers is not None]
    assert verified, "the coffee match was not verified"
    best = max(verified, key=lambda e: e.inliers)
    assert best.inliers >= 20 and best.verified_score > 0.4
    x0, y0, x1, y1 = best.verified_query_box
    assert 0.4 <= x0 and x1 <= 1.0 and 0.5 <= y0 and y1 <= 1.0  # around the pasted region
    mx0, my0, mx1, my1 = best.verified_matched_box
    assert (mx1 - mx0) * (my1 - my0) > 0.3  # much of the original coffee photo
    assert match.local_score >= best.verified_score
    off = next(m for m in check_without_verification(lib, pasted_query(tmp)).matches if m.note_id == "n1")
    assert match.score > off.score and match.local_score > off.local_score  # the inliers raised the evidence
    # the verified pair makes n1 the best image evidence (the overall order also weighs the unrelated texts,
    # where the retina note's review shares the word 照片 with the query's)
    assert max(report.matches, key=lambda m: m.local_score).note_id == "n1"
    assert "verify" in report.timings_ms
    again = AuditReport.from_dict(report.to_dict())
    assert again == report  # boxes as lists in JSON, tuples again here


def test_an_unrelated_photo_does_not_verify_and_off_means_off(indexed):
    lib, tmp = indexed
    query = Note(note_id="q-new", title="硬币", body="收集的硬币，拍照留念。",
                 images=[_save(Image.fromarray(skimage.data.coins()).convert("RGB"), tmp / "coins.jpg")])
    report = lib.check(query, save=False)
    verified = [e for m in report.matches for e in m.evidence if e.inliers is not None]
    assert verified, "no candidate was verified"
    assert all(e.verified_score == 0.0 and e.verified_query_box is None for e in verified)
    off = check_without_verification(lib, pasted_query(tmp))
    assert all(e.inliers is None for m in off.matches for e in m.evidence)
    assert "verify" not in off.timings_ms


def test_verification_settings_reach_the_audit_config():
    from app.audit import AuditConfig

    config = AuditConfig.from_settings(Settings(verify_candidates=0, verify_pairs=2))
    assert (config.verify_candidates, config.verify_pairs) == (0, 2)
    with pytest.raises(ValueError, match="verify_score_half"):
        AuditConfig(verify_score_half=0)
    assert np.isfinite(AuditConfig().verify_score_half)


def test_a_duplicate_verifies_only_itself_and_what_could_outrank_it(indexed):
    """A repost of n1 (same photo, same text) is a duplicate before verification: verifying the other
    candidates could change neither the verdict nor the top match, so only the duplicate's pairs are matched."""
    lib, tmp = indexed
    repost = Note(note_id="q-repost", title=REVIEWS[1][:8], body=REVIEWS[1],
                  images=[_save(Image.fromarray(skimage.data.coffee()), tmp / "q-repost.jpg")])
    report = lib.check(repost, save=False)
    top = report.matches[0]
    assert top.note_id == "n1" and top.verdict == "duplicate"
    assert any(e.inliers and e.verified_score > 0.5 for e in top.evidence)  # its boxes are there
    others = [m for m in report.matches[1:] if m.local_score > 0]
    assert others, "no other image candidate to skip"
    assert all(e.inliers is None for m in others for e in m.evidence)


def test_features_computed_in_the_workers_are_those_computed_in_place(tmp_path):
    """prefetch / load (worker threads, side by side) give the same features as computing each image in the
    caller's thread; the mirrored query is the derived one; a missing candidate image is None."""
    photos = [Image.fromarray(skimage.data.coffee()), Image.fromarray(skimage.data.astronaut())]
    paths = [_save(p, tmp_path / f"p{i}.jpg") for i, p in enumerate(photos)]
    source = ImageSource(photos, lambda note_id, payload: paths)
    source.prefetch()
    source.load([0, 1], [("n", {}, 0), ("n", {}, 1), ("n", {}, 5)])
    assert source.memo[("n", 5)] is None  # the note has no image 5
    for i, photo in enumerate(photos):
        direct = local_features(photo)
        assert np.array_equal(source.query_features(i).descriptors, direct.descriptors)
        assert np.array_equal(source.query_features(i, mirrored=True).descriptors, mirrored(direct).descriptors)
        stored = local_features(load_image(paths[i]))
        assert np.array_equal(source.candidate_features("n", {}, i).keypoints, stored.keypoints)
        assert np.array_equal(source.candidate_features("n", {}, i).descriptors, stored.descriptors)
