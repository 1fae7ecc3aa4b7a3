"""Copy edits in the style of DISC21 / ISC 2021 (AugLy): the transformations that turn an image into a near-duplicate.

Every edit is a plain function `edit(image, rng) -> image`: RGB PIL image in, RGB PIL image out, all randomness
drawn from `rng` (a `numpy.random.Generator`), so the same seed gives the same pixels. Edits are registered by
name in `EDITS`; `apply_edit(name, image, seed)` and `random_edit(image, rng)` are the entry points the training
data, the evaluation queries and the demo (planting near-duplicates) use.

Sources: AugLy 1.0.0 `augly.image.functional` (overlay_text, overlay_emoji, overlay_onto_screenshot,
encoding_quality, crop); the DISC21 edit families (Douze et al., "The 2021 Image Similarity Dataset and
Challenge", 2021). `meme_format` and `perspective_transform` are left out (broken with recent Pillow).
Collage tiles are real photos bundled with scikit-image (`skimage.data`, no download).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Callable

import augly.image.functional as augly_f
import augly.utils as augly_utils
import numpy as np
from PIL import Image, ImageEnhance, ImageFilter, ImageOps

EditFn = Callable[[Image.Image, np.random.Generator], Image.Image]

EDITS: dict[str, EditFn] = {}

# skimage.data photos that ship inside the wheel (others need pooch and a download).
_TILE_PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry",
                "colorwheel", "camera", "moon", "coins", "clock", "text", "grass", "gravel", "brick")
_ASSETS = Path(augly_utils.__file__).resolve().parent.parent / "assets"


def register(name: str) -> Callable[[EditFn], EditFn]:
    """Decorator: add an edit to `EDITS` under `name` (names are unique)."""

    def wrap(fn: EditFn) -> EditFn:
        if name in EDITS:
            raise ValueError(f"edit {name!r} registered twice")
        EDITS[name] = fn
        return fn

    return wrap


def _rgb(image: Image.Image) -> Image.Image:
    return image if image.mode == "RGB" else image.convert("RGB")


@lru_cache(maxsize=1)
def _tile_photos() -> tuple[Image.Image, ...]:
    import skimage.data

    out = []
    for name in _TILE_PHOTOS:
        arr = getattr(skimage.data, name)()
        if arr.ndim == 2:
            arr = np.stack([arr] * 3, axis=-1)
        out.append(Image.fromarray(arr[..., :3].astype(np.uint8)).convert("RGB"))
    return tuple(out)


@lru_cache(maxsize=1)
def _emoji_paths() -> tuple[Path, ...]:
    return tuple(sorted((_ASSETS / "twemojis").rglob("*.png")))


@lru_cache(maxsize=1)
def _font_paths() -> tuple[Path, ...]:
    # Latin fonts that have a character table (.pkl) beside them, as overlay_text needs.
    fonts = [p for p in sorted((_ASSETS / "fonts").glob("*.ttf")) if p.with_suffix(".pkl").exists()]
    return tuple(p for p in fonts if not any(s in p.name for s in ("Dingbats", "Arabic", "Noto")))


def _uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(rng.uniform(lo, hi))


@register("crop")
def crop(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Keep a random window of 40-90 % of each side."""
    w_frac, h_frac = _uniform(rng, 0.4, 0.9), _uniform(rng, 0.4, 0.9)
    x0, y0 = _uniform(rng, 0, 1 - w_frac), _uniform(rng, 0, 1 - h_frac)
    return _rgb(augly_f.crop(_rgb(image), x1=x0, y1=y0, x2=x0 + w_frac, y2=y0 + h_frac))


@register("overlay_text")
def overlay_text(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """One or two lines of random characters in a random font, colour and place (AugLy overlay_text)."""
    fonts = _font_paths()
    font = str(fonts[int(rng.integers(len(fonts)))])
    lines = [[int(c) for c in rng.integers(0, 200, size=int(rng.integers(4, 12)))]
             for _ in range(int(rng.integers(1, 3)))]
    color = tuple(int(c) for c in rng.integers(0, 256, size=3))
    return _rgb(augly_f.overlay_text(_rgb(image), text=lines, font_file=font, font_size=_uniform(rng, 0.08, 0.2),
                                     opacity=_uniform(rng, 0.6, 1.0), color=color,
                                     x_pos=_uniform(rng, 0.0, 0.5), y_pos=_uniform(rng, 0.0, 0.7)))


@register("overlay_emoji")
def overlay_emoji(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """One to three emoji of 10-30 % of the image height (AugLy overlay_emoji)."""
    emojis = _emoji_paths()
    out = _rgb(image)
    for _ in range(int(rng.integers(1, 4))):
        size = _uniform(rng, 0.1, 0.3)
        out = _rgb(augly_f.overlay_emoji(out, emoji_path=str(emojis[int(rng.integers(len(emojis)))]),
                                         emoji_size=size, opacity=_uniform(rng, 0.7, 1.0),
                                         x_pos=_uniform(rng, 0, 1 - size), y_pos=_uniform(rng, 0, 1 - size)))
    return out


@register("jpeg")
def jpeg(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Re-encode as JPEG at quality 8-40 (AugLy encoding_quality)."""
    return _rgb(augly_f.encoding_quality(_rgb(image), quality=int(rng.integers(8, 41))))


@register("screenshot")
def screenshot(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Paste into a mobile or web social-media screenshot frame (AugLy overlay_onto_screenshot)."""
    template = _ASSETS / "screenshot_templates" / ("mobile.png" if rng.random() < 0.5 else "web.png")
    return _rgb(augly_f.overlay_onto_screenshot(_rgb(image), template_filepath=str(template)))


@register("hflip")
def hflip(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Mirror left-right."""
    return ImageOps.mirror(_rgb(image))


@register("colour")
def colour(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Colour jitter: brightness, contrast and saturation each scaled by 0.5-1.6, or greyscale (1 in 5)."""
    out = _rgb(image)
    if rng.random() < 0.2:
        return ImageOps.grayscale(out).convert("RGB")
    for enhancer in (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color):
        out = enhancer(out).enhance(_uniform(rng, 0.5, 1.6))
    return out


@register("blur")
def blur(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Gaussian blur with a radius of 1-3 % of the shorter side."""
    img = _rgb(image)
    return img.filter(ImageFilter.GaussianBlur(radius=_uniform(rng, 0.01, 0.03) * min(img.size)))


@register("rotate")
def rotate(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Rotate by ±5-25 degrees, expanding the canvas with a random fill colour."""
    angle = _uniform(rng, 5, 25) * (1 if rng.random() < 0.5 else -1)
    fill = tuple(int(c) for c in rng.integers(0, 256, size=3))
    return _rgb(image).rotate(angle, expand=True, fillcolor=fill)


@register("pad")
def pad(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Add borders of 5-30 % of each side in a random colour (letterboxing)."""
    img = _rgb(image)
    w, h = img.size
    left, right = (int(_uniform(rng, 0.05, 0.3) * w) for _ in range(2))
    top, bottom = (int(_uniform(rng, 0.05, 0.3) * h) for _ in range(2))
    fill = tuple(int(c) for c in rng.integers(0, 256, size=3))
    return ImageOps.expand(img, border=(left, top, right, bottom), fill=fill)


@register("rescale")
def rescale(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Down-scale to 25-60 % and change the aspect ratio by up to ±25 %."""
    img = _rgb(image)
    s, aspect = _uniform(rng, 0.25, 0.6), _uniform(rng, 0.75, 1.25)
    return img.resize((max(8, int(img.width * s * aspect)), max(8, int(img.height * s))), Image.BILINEAR)


@register("collage")
def collage(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Paste the image as one tile of a 2x2 / 1x2 / 2x1 grid whose other tiles are unrelated real photos."""
    img = _rgb(image)
    rows, cols = [(2, 2), (1, 2), (2, 1)][int(rng.integers(3))]
    tile = 256
    canvas = Image.new("RGB", (cols * tile, rows * tile))
    photos = _tile_photos()
    slot = int(rng.integers(rows * cols))
    for k in range(rows * cols):
        src = img if k == slot else photos[int(rng.integers(len(photos)))]
        canvas.paste(ImageOps.fit(src, (tile, tile), Image.BILINEAR), ((k % cols) * tile, (k // cols) * tile))
    return canvas


@register("paste_into")
def paste_into(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Paste the image, shrunk to 35-70 % of the width, inside an unrelated real photo (AugLy overlay_image)."""
    img = _rgb(image)
    photos = _tile_photos()
    background = ImageOps.fit(photos[int(rng.integers(len(photos)))], (384, 384), Image.BILINEAR)
    size = _uniform(rng, 0.35, 0.7)
    return _rgb(augly_f.overlay_image(background, overlay=img, overlay_size=size,
                                      x_pos=_uniform(rng, 0, 1 - size), y_pos=_uniform(rng, 0, 1 - size)))


@register("mixed")
def mixed(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Two or three different single edits chained (the DISC21 'strong' queries)."""
    single = [n for n in EDITS if n != "mixed"]
    names = rng.choice(single, size=int(rng.integers(2, 4)), replace=False)
    out = _rgb(image)
    for name in names:
        out = EDITS[str(name)](out, rng)
    return out


def apply_edit(name: str, image: Image.Image, seed: int) -> Image.Image:
    """The edit `name` applied with `numpy.random.default_rng(seed)`. Raises KeyError naming the known edits."""
    if name not in EDITS:
        raise KeyError(f"unknown edit {name!r}; known: {', '.join(sorted(EDITS))}")
    return EDITS[name](image, np.random.default_rng(seed))


def random_edit(image: Image.Image, rng: np.random.Generator,
                names: tuple[str, ...] | None = None) -> tuple[str, Image.Image]:
    """(edit name, edited image): one edit drawn uniformly from `names` (default: every registered edit)."""
    pool = names or tuple(EDITS)
    unknown = [n for n in pool if n not in EDITS]
    if unknown:
        raise KeyError(f"unknown edits {unknown}; known: {', '.join(sorted(EDITS))}")
    name = str(pool[int(rng.integers(len(pool)))])
    return name, EDITS[name](image, rng)
