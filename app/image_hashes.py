"""PDQ perceptual hashes of note images: the exact-copy signal beside the learned embeddings.

PDQ (Meta, ThreatExchange `pdq/`; Python binding `pdqhash`) turns an image into 256 bits and a quality
score in [0, 100]. Two images are the same picture (after re-encoding, resizing, light edits) when the
Hamming distance of their hashes is small. Meta's guidance: distance <= 31 with both qualities >= 50 is a
match (`Settings.pdq_max_distance`, `Settings.pdq_min_quality`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pdqhash
from PIL import Image

PDQ_BITS = 256


@dataclass(frozen=True, eq=False)
class PdqHash:
    """bits: (256,) uint8 of 0/1 (pdqhash's bit order); quality: int in [0, 100], low = flat image."""

    bits: np.ndarray
    quality: int

    def __post_init__(self) -> None:
        bits = np.asarray(self.bits)
        if bits.shape != (PDQ_BITS,):
            raise ValueError(f"PDQ bits must have shape ({PDQ_BITS},), got {bits.shape}")
        if bits.size and ((bits != 0) & (bits != 1)).any():  # np.isin: 10x slower, and hits read many
            raise ValueError("PDQ bits must be 0/1")
        object.__setattr__(self, "bits", bits.astype(np.uint8))
        object.__setattr__(self, "quality", int(self.quality))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PdqHash) and self.quality == other.quality and bool(
            np.array_equal(self.bits, other.bits)
        )

    def __repr__(self) -> str:
        return f"PdqHash({self.to_hex()}, quality={self.quality})"

    def __hash__(self) -> int:
        return hash((self.to_hex(), self.quality))

    def to_hex(self) -> str:
        """64 hex characters, most significant bit first (bits[0] is the top bit of the first char)."""
        return np.packbits(self.bits).tobytes().hex()

    @classmethod
    def from_hex(cls, text: str, quality: int) -> "PdqHash":
        """Inverse of `to_hex`. Raises ValueError for anything but 64 hex characters."""
        if len(text) != PDQ_BITS // 4:
            raise ValueError(f"a PDQ hex string has {PDQ_BITS // 4} characters, got {len(text)}")
        raw = np.frombuffer(bytes.fromhex(text), dtype=np.uint8)  # (32,)
        return cls(np.unpackbits(raw), quality)  # (256,)


def pdq_hash(image: Image.Image) -> PdqHash:
    """The PDQ hash of a PIL image (converted to RGB first). Raises ValueError for an empty image."""
    if not isinstance(image, Image.Image):
        raise TypeError(f"pdq_hash expects a PIL.Image.Image, got {type(image).__name__}")
    if image.width == 0 or image.height == 0:
        raise ValueError(f"cannot hash an empty image ({image.width}x{image.height})")
    rgb = np.ascontiguousarray(np.asarray(image.convert("RGB"), dtype=np.uint8))  # (H, W, 3)
    bits, quality = pdqhash.compute(rgb)  # (256,) int64 of 0/1, int
    return PdqHash(bits.astype(np.uint8), int(quality))


def hamming(a: PdqHash | np.ndarray, b: PdqHash | np.ndarray) -> int:
    """Number of differing bits of two PDQ hashes (or two (256,) 0/1 arrays), in [0, 256]."""
    bits_a = a.bits if isinstance(a, PdqHash) else np.asarray(a, dtype=np.uint8)
    bits_b = b.bits if isinstance(b, PdqHash) else np.asarray(b, dtype=np.uint8)
    if bits_a.shape != bits_b.shape:
        raise ValueError(f"cannot compare PDQ hashes of shapes {bits_a.shape} and {bits_b.shape}")
    return int(np.count_nonzero(bits_a != bits_b))


def is_pdq_match(a: PdqHash, b: PdqHash, max_distance: int = 31, min_quality: int = 50) -> bool:
    """Meta's PDQ match rule: both qualities >= min_quality and Hamming distance <= max_distance."""
    return a.quality >= min_quality and b.quality >= min_quality and hamming(a, b) <= max_distance
