"""check() on real photos (skimage.data, ../shared/data) encoded by the shipped compact encoder, stored in a
local Qdrant: planted copies (AugLy crop + overlay text + re-encode), an image reused inside another note,
an unrelated note."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import augly.image as imaugs
import numpy as np
import pytest
import skimage.data
import torch
from PIL import Image

from app.audit import (CLEAR, DUPLICATE, POSSIBLE_INFRINGEMENT, AuditConfig, AuditReport,
                       ModelVersionMismatchError, check)
from app.image_hashes import pdq_hash
from app.settings import Settings
from app.store import open_store
from encoder.loading import load_encoder
from encoder.types import ElementKind, EncodedNote, NoteInput

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
GROCERY, CLOTHING = DATA / "grocery", DATA / "clothing"
SKIMAGE_NOTES = {  # skimage photo -> (title, body)
    "astronaut": ("Meeting an astronaut", "Portrait of an astronaut in a white suit next to the flag."),
    "coffee": ("Latte art this morning", "A cup of coffee with a leaf drawn in the milk foam."),
    "rocket": ("Launch day", "The rocket on the pad, hours before the launch."),
    "chelsea": ("My cat Chelsea", "Chelsea the tabby cat looking at the camera."),
    "hubble_deep_field": ("Deep sky", "Thousands of galaxies in one small patch of sky."),
}


def rgb(array: np.ndarray) -> Image.Image:
    return Image.fromarray(array).convert("RGB")


def disc_edit(image: Image.Image) -> Image.Image:
    """DISC21-style copy: crop the borders, overlay text, re-encode as a low-quality JPEG (AugLy)."""
    cropped = imaugs.crop(image, x1=0.08, y1=0.05, x2=0.95, y2=0.92)
    return imaugs.encoding_quality(imaugs.overlay_text(cropped), quality=30).convert("RGB")


def grocery_notes(n: int) -> list[NoteInput]:
    """One note per product: a training photo, the product title and description (products.csv)."""
    rows = list(csv.DictReader((GROCERY / "products.csv").open(encoding="utf-8")))
    listing = (GROCERY / "dataset" / "train.txt").read_text().splitlines()
    first_photo: dict[int, str] = {}
    for line in listing:
        if line.strip():
            path, fine, _ = (x.strip() for x in line.split(","))
            first_photo.setdefault(int(fine), path)
    notes = []
    for row in rows[:: max(len(rows) // n, 1)][:n]:
        cid = int(row["class_id"])
        image = Image.open(GROCERY / "dataset" / first_photo[cid]).convert("RGB")
        title = row["product_title"] or row["class_name"].replace("-", " ")
        notes.append(NoteInput(f"grocery_{cid}", title, row["product_description"], [image]))
    return notes


class Library:
    """The encoder, a local store holding the library notes, and their inputs by id."""

    def __init__(self, tmp: Path):
        torch.set_num_threads(2)
        self.settings = Settings(qdrant_path=tmp / "qdrant", prefetch_limit=50)
        self.encoder = load_encoder(self.settings)
        self.store = open_store(self.settings)
        self.store.ensure_collections(self.encoder.model_version, self.encoder.dims)
        self.config = AuditConfig.from_settings(self.settings)
        notes = [NoteInput(name, *text, [rgb(getattr(skimage.data, name)())]) for name, text in SKIMAGE_NOTES.items()]
        if GROCERY.is_dir():
            notes += grocery_notes(8)
        self.inputs = {n.note_id: n for n in notes}
        for note, encoded in zip(notes, self.encoder.encode(notes)):
            self.store.upsert_note(encoded, [pdq_hash(im) for im in note.images], {"title": note.title})

    def audit(self, notes: list[NoteInput]) -> list[AuditReport]:
        encoded = self.encoder.encode(notes)
        return [check(e, [pdq_hash(im) for im in n.images], self.store, self.config, limit=5)
                for n, e in zip(notes, encoded)]


@pytest.fixture(scope="module")
def library(tmp_path_factory) -> Library:
    lib = Library(tmp_path_factory.mktemp("audit"))
    yield lib
    lib.store.close()


def need(folder: Path) -> None:
    if not folder.is_dir():
        pytest.skip(f"real data not found at {folder} (../shared/data)")


def image_evidence(report: AuditReport, note_id: str, query_image: int = 0):
    match = next(m for m in report.matches if m.note_id == note_id)
    return next(e for e in match.evidence if e.query_kind == ElementKind.IMAGE and e.query_index == query_image)


def planted_sources(library: Library) -> list[str]:
    sources = ["astronaut", "coffee"] + (["grocery_0", "grocery_40"] if GROCERY.is_dir() else [])
    return [s for s in sources if s in library.inputs]


def unrelated_photo() -> Image.Image:
    if CLOTHING.is_dir():
        return Image.open(sorted((CLOTHING / "test" / "shoes").glob("*.jpg"))[0]).convert("RGB")
    return rgb(skimage.data.immunohistochemistry())


@pytest.fixture(scope="module")
def reports(library) -> dict[str, AuditReport]:
    """Every query of this module audited in one encoder call, by query note id."""
    queries = [NoteInput(f"copy_of_{s}", library.inputs[s].title, library.inputs[s].body,
                         [disc_edit(library.inputs[s].images[0])]) for s in planted_sources(library)]
    # the rocket photo, lightly edited, inside a note whose text and other image differ
    reused = imaugs.overlay_text(library.inputs["rocket"].images[0]).convert("RGB")
    queries.append(NoteInput("reuse", "Souvenirs from the trip", "Coins I brought back, and a postcard.",
                             [rgb(skimage.data.coins()), reused]))
    queries.append(NoteInput("unrelated", "New running shoes", "Bought these for the marathon, very light.",
                             [unrelated_photo()]))
    queries.append(library.inputs["chelsea"])  # a note that is itself in the library
    before = (library.store.count_notes(), library.store.count_elements())
    out = {q.note_id: r for q, r in zip(queries, library.audit(queries))}
    assert (library.store.count_notes(), library.store.count_elements()) == before  # check never writes
    return out


@pytest.mark.slow
def test_planted_copies_rank_first_with_image_evidence(library, reports):
    for source in planted_sources(library):
        report = reports[f"copy_of_{source}"]
        top = report.matches[0]
        assert top.note_id == source, [(m.note_id, round(m.score, 3)) for m in report.matches]
        assert top.verdict != CLEAR and report.verdict == top.verdict
        assert top.score > report.matches[1].score + 0.05  # the copy stands out from the rest
        ev = image_evidence(report, source)
        assert ev.matched_kind in (ElementKind.IMAGE, ElementKind.CROP) and ev.matched_image_index == 0
        assert "element" in top.stages and any(s.endswith("global_512") for s in top.stages)


@pytest.mark.slow
def test_reused_image_inside_another_note_is_flagged(library, reports):
    report = reports["reuse"]
    top = report.matches[0]
    assert top.note_id == "rocket"
    assert top.verdict == POSSIBLE_INFRINGEMENT  # an image copy, not a duplicate note
    assert "pdq" in top.stages
    ev = image_evidence(report, "rocket", query_image=1)
    assert (ev.matched_kind, ev.matched_index) == (ElementKind.IMAGE, 0)
    assert ev.pdq_match and ev.pdq_distance is not None and ev.pdq_distance <= library.config.pdq_max_distance
    assert top.local_score >= 0.95 and top.global_score < library.config.duplicate_threshold


@pytest.mark.slow
def test_unrelated_note_is_clear(reports):
    report = reports["unrelated"]
    assert report.matches and report.verdict == CLEAR and all(m.verdict == CLEAR for m in report.matches)
    assert all(not e.pdq_match for m in report.matches for e in m.evidence)


@pytest.mark.slow
def test_check_excludes_the_query_note_itself(reports):
    report = reports["chelsea"]
    assert report.matches and "chelsea" not in [m.note_id for m in report.matches]
    assert report.query_note_id == "chelsea" and report.n_candidates >= len(report.matches)


@pytest.mark.slow
def test_report_round_trips_through_json(reports):
    report = reports["copy_of_coffee"]
    data = json.loads(json.dumps(report.to_dict()))
    again = AuditReport.from_dict(data)
    assert again == report
    assert data["matches"][0]["evidence"][0]["query_kind"] in {k.value for k in ElementKind}
    assert data["verdict"] in (CLEAR, POSSIBLE_INFRINGEMENT, DUPLICATE)


def unit_note(note_id: str, version: str, seed: int) -> EncodedNote:
    vector = np.random.default_rng(seed).standard_normal(512).astype(np.float32)  # (512,)
    return EncodedNote(note_id, vector / np.linalg.norm(vector), [], version)


def test_other_model_version_is_refused(tmp_path):
    with open_store(Settings(qdrant_path=tmp_path / "q")) as store:
        store.ensure_collections("v1", (64, 128, 256, 512))
        store.upsert_note(unit_note("a", "v1", 0), [], {})
        with pytest.raises(ModelVersionMismatchError, match="re-index"):
            check(unit_note("x", "other-weights", 1), [], store, AuditConfig())


def test_empty_library_is_clear(tmp_path):
    store = open_store(Settings(qdrant_path=tmp_path / "q"))
    encoded = unit_note("x", "v1", 1)
    assert check(encoded, [], store, AuditConfig()).verdict == CLEAR  # no collections yet
    store.ensure_collections("v1", (64, 128, 256, 512))
    report = check(encoded, [], store, AuditConfig())
    assert report.verdict == CLEAR and report.matches == []
    store.close()


def test_config_validates_and_reads_settings():
    cfg = AuditConfig.from_settings(Settings(duplicate_threshold=0.95, infringement_threshold=0.8, pdq_max_distance=20))
    assert (cfg.duplicate_threshold, cfg.infringement_threshold, cfg.pdq_max_distance) == (0.95, 0.8, 20)
    assert [cfg.verdict(s) for s in (0.96, 0.85, 0.5)] == [DUPLICATE, POSSIBLE_INFRINGEMENT, CLEAR]
    with pytest.raises(ValueError, match="infringement_threshold"):
        AuditConfig(duplicate_threshold=0.7, infringement_threshold=0.8)
    with pytest.raises(ValueError, match="global_weight"):
        AuditConfig(global_weight=1.5)
