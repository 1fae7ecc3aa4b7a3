"""Copy-detection edit families (DISC21 / ISC 2021 style) with an explicit pool of unrelated photos.

Each family is `fn(image, rng, others) -> image`: RGB PIL in, RGB PIL out, all randomness from `rng`
(`numpy.random.Generator`), `others` = unrelated RGB photos for the families that need a second photo (paste
into another photo, 2x2 collage). Keeping `others` explicit lets the held-out benchmark and the training views
draw their second photos from disjoint sets (training.copy_benchmark, training.copy_data).

Families (`COPY_FAMILIES`, in this order): crop (keep 30-70 % of the area), rotate (±5-30° or a quarter turn),
perspective, flip, scale, colour (jitter or greyscale), blur, overlay_text, overlay_emoji, pad_stripes (solid or
striped borders), meme (caption band), screenshot (AugLy's social-feed templates), jpeg (quality 10-30), combo
(2-3 of the light families chained), paste (into another photo at 25-40 % of its area), collage (one cell of a
2x2 grid). Sources: AugLy 1.0.0 `augly.image.functional` (overlay_text/emoji, overlay_onto_screenshot,
encoding_quality, overlay_image) through training.edits; DISC21 (Douze et al. 2021); perspective and meme are
re-implemented with PIL (AugLy's versions break on Pillow >= 10).
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageFont, ImageOps

from training import edits

CopyEditFn = Callable[[Image.Image, np.random.Generator, Sequence[Image.Image]], Image.Image]
COPY_FAMILIES: dict[str, CopyEditFn] = {}
LIGHT_FAMILIES = ("crop", "rotate", "perspective", "flip", "scale", "colour", "blur", "overlay_text",
                  "overlay_emoji", "pad_stripes", "meme", "jpeg")  # what `combo` chains


def _family(name: str) -> Callable[[CopyEditFn], CopyEditFn]:
    def wrap(fn: CopyEditFn) -> CopyEditFn:
        if name in COPY_FAMILIES:
            raise ValueError(f"copy family {name!r} registered twice")
        COPY_FAMILIES[name] = fn
        return fn

    return wrap


def _rgb(image: Image.Image) -> Image.Image:
    return image if image.mode == "RGB" else image.convert("RGB")


def _u(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(rng.uniform(lo, hi))


def _colour(rng: np.random.Generator) -> tuple[int, int, int]:
    r, g, b = (int(c) for c in rng.integers(0, 256, size=3))
    return r, g, b


def _other(rng: np.random.Generator, others: Sequence[Image.Image]) -> Image.Image:
    if not others:
        raise ValueError("this copy family needs at least one unrelated photo in `others`")
    return _rgb(others[int(rng.integers(len(others)))])


@_family("crop")
def crop(image: Image.Image, rng: np.random.Generator, others: Sequence[Image.Image] = ()) -> Image.Image:
    """A window keeping 30-70 % of the area, aspect ratio within ×/÷ 1.5 of the original."""
    img = _rgb(image)
    area, aspect = _u(rng, 0.3, 0.7), float(np.exp(_u(rng, -np.log(1.5), np.log(1.5))))
    wf, hf = min(1.0, np.sqrt(area * aspect)), min(1.0, np.sqrt(area / aspect))
    x0, y0 = _u(rng, 0, 1 - wf), _u(rng, 0, 1 - hf)
    W, H = img.size
    return img.crop((int(x0 * W), int(y0 * H), max(int(x0 * W) + 8, int((x0 + wf) * W)),
                     max(int(y0 * H) + 8, int((y0 + hf) * H))))


@_family("rotate")
def rotate(image: Image.Image, rng: np.random.Generator, others: Sequence[Image.Image] = ()) -> Image.Image:
    """A quarter/half turn (1 in 4) or ±5-30° with the canvas expanded and filled with a random colour."""
    img = _rgb(image)
    if rng.random() < 0.25:
        return img.transpose([Image.Transpose.ROTATE_90, Image.Transpose.ROTATE_180,
                              Image.Transpose.ROTATE_270][int(rng.integers(3))])
    angle = _u(rng, 5, 30) * (1 if rng.random() < 0.5 else -1)
    return img.rotate(angle, expand=True, fillcolor=_colour(rng), resample=Image.Resampling.BILINEAR)


@_family("perspective")
def perspective(image: Image.Image, rng: np.random.Generator, others: Sequence[Image.Image] = ()) -> Image.Image:
    """Each corner moved inwards/outwards by up to 8-20 % of the side (a photo of a screen or print)."""
    img = _rgb(image)
    W, H = img.size
    s = _u(rng, 0.08, 0.2)
    dst = np.array([[0, 0], [W, 0], [W, H], [0, H]], dtype=np.float64)  # output corners
    src = dst + rng.uniform(-s, s, size=(4, 2)) * np.array([W, H])  # where each output corner samples from
    # PIL's PERSPECTIVE maps output (x, y) -> input ((ax+by+c)/(gx+hy+1), (dx+ey+f)/(gx+hy+1)).
    rows = []
    for (x, y), (u, v) in zip(dst, src):
        rows.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        rows.append([0, 0, 0, x, y, 1, -v * x, -v * y])
    coeffs = np.linalg.solve(np.array(rows), src.reshape(-1))
    return img.transform((W, H), Image.Transform.PERSPECTIVE, tuple(coeffs), Image.Resampling.BILINEAR,
                         fillcolor=_colour(rng))


@_family("flip")
def flip(image: Image.Image, rng: np.random.Generator, others: Sequence[Image.Image] = ()) -> Image.Image:
    """Mirror left-right (4 in 5) or upside down."""
    return ImageOps.mirror(_rgb(image)) if rng.random() < 0.8 else ImageOps.flip(_rgb(image))


@_family("scale")
def scale(image: Image.Image, rng: np.random.Generator, others: Sequence[Image.Image] = ()) -> Image.Image:
    """Down-scale to 20-60 % of the side, aspect ratio changed by up to ±30 %."""
    img = _rgb(image)
    s, aspect = _u(rng, 0.2, 0.6), _u(rng, 0.7, 1.3)
    return img.resize((max(16, int(img.width * s * aspect)), max(16, int(img.height * s))),
                      Image.Resampling.BILINEAR)


@_family("colour")
def colour(image: Image.Image, rng: np.random.Generator, others: Sequence[Image.Image] = ()) -> Image.Image:
    """Greyscale (1 in 4), or brightness/contrast/saturation each ×0.4-1.8 and a channel shuffle (1 in 5)."""
    out = _rgb(image)
    if rng.random() < 0.25:
        return ImageOps.grayscale(out).convert("RGB")
    for enhancer in (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color):
        out = enhancer(out).enhance(_u(rng, 0.4, 1.8))
    if rng.random() < 0.2:
        r, g, b = out.split()
        out = Image.merge("RGB", [(r, g, b), (b, g, r), (g, b, r)][int(rng.integers(1, 3))])
    return out


@_family("blur")
def blur(image: Image.Image, rng: np.random.Generator, others: Sequence[Image.Image] = ()) -> Image.Image:
    """Gaussian blur, radius 1-3.5 % of the shorter side."""
    img = _rgb(image)
    return img.filter(ImageFilter.GaussianBlur(radius=_u(rng, 0.01, 0.035) * min(img.size)))


@_family("overlay_text")
def overlay_text(image: Image.Image, rng: np.random.Generator, others: Sequence[Image.Image] = ()) -> Image.Image:
    """AugLy overlay_text (training.edits.overlay_text): 1-2 lines of random characters."""
    return edits.overlay_text(image, rng)


@_family("overlay_emoji")
def overlay_emoji(image: Image.Image, rng: np.random.Generator, others: Sequence[Image.Image] = ()) -> Image.Image:
    """AugLy overlay_emoji (training.edits.overlay_emoji): 1-3 emoji of 10-30 % of the height."""
    return edits.overlay_emoji(image, rng)


@_family("pad_stripes")
def pad_stripes(image: Image.Image, rng: np.random.Generator, others: Sequence[Image.Image] = ()) -> Image.Image:
    """Borders of 10-40 % of the side on 2 or 4 sides, solid or in stripes of two random colours."""
    img = _rgb(image)
    W, H = img.size
    vertical = rng.random() < 0.5  # bars left/right (True) or top/bottom
    a, b = int(_u(rng, 0.05, 0.2) * (W if vertical else H)), int(_u(rng, 0.05, 0.2) * (W if vertical else H))
    if rng.random() < 0.3:
        border = (a, b, a, b)
    else:
        border = (a, 0, b, 0) if vertical else (0, a, 0, b)
    canvas = Image.new("RGB", (W + border[0] + border[2], H + border[1] + border[3]), _colour(rng))
    if rng.random() < 0.5:  # stripes
        draw, c2, step = ImageDraw.Draw(canvas), _colour(rng), int(rng.integers(4, 24))
        for k in range(0, max(canvas.size) * 2, 2 * step):
            if vertical:
                draw.rectangle([0, k, canvas.width, k + step], fill=c2)
            else:
                draw.rectangle([k, 0, k + step, canvas.height], fill=c2)
    canvas.paste(img, (border[0], border[1]))
    return canvas


@_family("meme")
def meme(image: Image.Image, rng: np.random.Generator, others: Sequence[Image.Image] = ()) -> Image.Image:
    """A caption band (15-30 % of the height, white or black) above the photo with 1-2 words of text."""
    img = _rgb(image)
    W, H = img.size
    band = int(_u(rng, 0.15, 0.3) * H)
    dark = rng.random() < 0.3
    canvas = Image.new("RGB", (W, H + band), (0, 0, 0) if dark else (255, 255, 255))
    canvas.paste(img, (0, band))
    fonts = edits._font_paths()
    font = ImageFont.truetype(str(fonts[int(rng.integers(len(fonts)))]), size=max(8, int(band * 0.5)))
    words = ["WHEN", "ME", "MONDAY", "NOBODY", "THIS", "SALE", "LOOK", "BEST", "DEAL", "WOW", "OK", "MOOD"]
    text = " ".join(str(w) for w in rng.choice(words, size=int(rng.integers(1, 4))))
    ImageDraw.Draw(canvas).text((int(W * _u(rng, 0.02, 0.2)), int(band * 0.2)), text, font=font,
                                fill=(255, 255, 255) if dark else (0, 0, 0))
    return canvas


@_family("screenshot")
def screenshot(image: Image.Image, rng: np.random.Generator, others: Sequence[Image.Image] = ()) -> Image.Image:
    """AugLy overlay_onto_screenshot, mobile or web social-feed template (training.edits.screenshot)."""
    return edits.screenshot(image, rng)


@_family("jpeg")
def jpeg(image: Image.Image, rng: np.random.Generator, others: Sequence[Image.Image] = ()) -> Image.Image:
    """Re-encode as JPEG at quality 10-30 (AugLy encoding_quality)."""
    import augly.image.functional as augly_f

    return _rgb(augly_f.encoding_quality(_rgb(image), quality=int(rng.integers(10, 31))))


@_family("combo")
def combo(image: Image.Image, rng: np.random.Generator, others: Sequence[Image.Image] = ()) -> Image.Image:
    """2-3 different light families chained (the DISC21 'strong' queries)."""
    out = _rgb(image)
    for name in rng.choice(LIGHT_FAMILIES, size=int(rng.integers(2, 4)), replace=False):
        out = COPY_FAMILIES[str(name)](out, rng, others)
    return out


@_family("paste")
def paste(image: Image.Image, rng: np.random.Generator, others: Sequence[Image.Image] = ()) -> Image.Image:
    """The photo pasted into an unrelated photo (resized to 384 px) covering 25-40 % of its area."""
    img = _rgb(image)
    bg = ImageOps.fit(_other(rng, others), (384, 384), Image.Resampling.BILINEAR)
    area, aspect = _u(rng, 0.25, 0.4) * 384 * 384, img.width / img.height
    w = int(min(384, np.sqrt(area * aspect)))
    h = int(min(384, area / max(w, 1)))
    x, y = int(rng.integers(0, 384 - w + 1)), int(rng.integers(0, 384 - h + 1))
    bg.paste(img.resize((w, h), Image.Resampling.BILINEAR), (x, y))
    return bg


@_family("collage")
def collage(image: Image.Image, rng: np.random.Generator, others: Sequence[Image.Image] = ()) -> Image.Image:
    """One cell of a 2x2 grid of 192 px cells; the other three cells are unrelated photos."""
    img, tile = _rgb(image), 192
    canvas = Image.new("RGB", (2 * tile, 2 * tile), _colour(rng))
    slot, gap = int(rng.integers(4)), int(rng.integers(0, 6))
    for k in range(4):
        src = img if k == slot else _other(rng, others)
        canvas.paste(ImageOps.fit(src, (tile - gap, tile - gap), Image.Resampling.BILINEAR),
                     ((k % 2) * tile, (k // 2) * tile))
    return canvas


def apply_family(name: str, image: Image.Image, seed: int, others: Sequence[Image.Image] = ()) -> Image.Image:
    """Family `name` applied with `numpy.random.default_rng(seed)`. Raises KeyError naming the known families."""
    if name not in COPY_FAMILIES:
        raise KeyError(f"unknown copy family {name!r}; known: {', '.join(COPY_FAMILIES)}")
    return COPY_FAMILIES[name](image, np.random.default_rng(seed), others)
