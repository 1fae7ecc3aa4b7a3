"""Geometric verification of an image match: SIFT local features, ratio-test matching, RANSAC homography (OpenCV).

`verify(query_img, cand_img) -> Verification` is a pure function: how many matched keypoints one homography
explains (RANSAC inliers), a score in [0, 1) from that count, and the matched region as a box in each image.
A copy (crop, paste into another photo, collage cell, screenshot, rotation, perspective) keeps a rigid mapping
between the shared pixels, so it has many inliers; an unrelated photo (even of the same product) has few.
SIFT is not mirror-invariant, so the mirrored query is tried too (flips are a common copy edit); its features
are derived from the plain ones (`mirrored`: the same keypoints, each descriptor's bins permuted as a left-right
flip moves them) instead of a second SIFT pass.

Sources: Lowe, IJCV 2004 (SIFT, ratio test 0.8); OpenCV `cv2.SIFT_create`, `cv2.BFMatcher.knnMatch`,
`cv2.findHomography(..., cv2.RANSAC, 5.0)`; the DISC21 / ISC 2021 verification baselines.
For many candidates, compute `local_features` once per image and call `match`.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image

MAX_SIDE = 512  # images are shrunk to this longer side before feature extraction (speed; boxes are fractions)
MAX_PIXELS = 100_000_000  # width x height above which an image is refused (untrusted input; shrinking costs memory)
MIN_INLIERS = 10  # fewer RANSAC inliers than this -> score 0 (a chance homography through random matches)
SCORE_HALF = 25  # inliers at which score = 0.5 (score = n / (n + SCORE_HALF))
MAX_ANISOTROPY = 3.0  # a homography stretching one direction this much more than the other is degenerate

Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class Verification:
    """inliers: RANSAC inliers of the best homography (0 when none); matches: ratio-test matches; score: in [0, 1),
    0 below MIN_INLIERS; query_box / cand_box: (x0, y0, x1, y1) fractions of each image's width/height around the
    inliers (None when score is 0); mirrored: the match was found with the query mirrored left-right."""

    inliers: int
    matches: int
    score: float
    query_box: Box | None
    cand_box: Box | None
    mirrored: bool = False


@dataclass(frozen=True)
class LocalFeatures:
    """keypoints: (K, 2) float32 positions as fractions of (width, height); descriptors: (K, 128) float32;
    size: (width, height) in pixels of the shrunk image the features were taken from."""

    keypoints: np.ndarray
    descriptors: np.ndarray
    size: tuple[int, int] = (MAX_SIDE, MAX_SIDE)


_SIFT = threading.local()  # one detector per thread (verification runs in app.match_verification.worker_pool)


def _mirror_permutation() -> np.ndarray:
    """(128,) int64: descriptor index of the mirrored image's bin -> index of the plain image's bin.

    OpenCV's SIFT descriptor is 4 x 4 spatial cells x 8 gradient orientations, index (row * 4 + col) * 8 + o, in
    the keypoint's frame (x along its orientation). A left-right flip of the image is, in that frame, a reflection
    across the orientation axis: row r -> 3 - r, col kept, orientation bin o (centred on o * 45 deg) -> (8 - o) % 8.
    Checked against real SIFT on flipped photos (tests/app/test_geometric_verification.py)."""
    idx = np.arange(128).reshape(4, 4, 8)  # (row, col, orientation)
    return idx[::-1, :, :][:, :, (8 - np.arange(8)) % 8].reshape(-1)


MIRROR_PERMUTATION = _mirror_permutation()


def _sift():
    if not hasattr(_SIFT, "detector"):
        _SIFT.detector = cv2.SIFT_create(nfeatures=1000)
    return _SIFT.detector


def local_features(image: Image.Image, mirror: bool = False) -> LocalFeatures:
    """SIFT keypoints (fractions) and descriptors of an RGB PIL image, optionally mirrored left-right first.

    The image is shrunk to MAX_SIDE (longer side) before anything else is done with its pixels, so the cost
    is bounded whatever its size. Raises TypeError for a non-image and ValueError for an empty image or one
    of more than MAX_PIXELS pixels (one line naming the size)."""
    if not isinstance(image, Image.Image):
        raise TypeError(f"expected a PIL.Image.Image, got {type(image).__name__}")
    if image.width == 0 or image.height == 0:
        raise ValueError(f"cannot verify an empty image ({image.width}x{image.height})")
    if image.width * image.height > MAX_PIXELS:
        raise ValueError(f"image too large to verify: {image.width}x{image.height} px is over {MAX_PIXELS:,} pixels")
    scale = min(1.0, MAX_SIDE / max(image.width, image.height))
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    img = image.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0) if scale < 1.0 else image
    img = img.convert("L")  # (h, w) with max(h, w) <= MAX_SIDE
    if mirror:
        img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    gray = np.asarray(img, dtype=np.uint8)  # (H, W)
    kps, desc = _sift().detectAndCompute(gray, None)
    size = (gray.shape[1], gray.shape[0])
    if desc is None or len(kps) == 0:
        return LocalFeatures(np.zeros((0, 2), np.float32), np.zeros((0, 128), np.float32), size)
    pts = np.array([kp.pt for kp in kps], dtype=np.float32) / np.array([gray.shape[1], gray.shape[0]], np.float32)
    if mirror:  # report positions in the un-mirrored image
        pts[:, 0] = 1.0 - pts[:, 0]
    return LocalFeatures(pts, desc.astype(np.float32), size)


def mirrored(features: LocalFeatures) -> LocalFeatures:
    """The features of the left-right mirrored image, derived from the plain ones without another SIFT pass: the
    same keypoints (positions stay in the un-mirrored image, as local_features(mirror=True) reports them) with
    each descriptor's bins permuted (MIRROR_PERMUTATION). Real SIFT on the flipped pixels finds the same keypoints
    up to rounding (~3/4 of the descriptors identical, the rest within a few %): on flipped copies of real photos
    the inlier counts agree within a few % (docs/verification.md)."""
    return LocalFeatures(features.keypoints, features.descriptors[:, MIRROR_PERMUTATION], features.size)


def anisotropy(h: np.ndarray, point: np.ndarray) -> float:
    """Ratio of the largest to the smallest stretch of homography h (3, 3) near point (2,) (the singular values
    of its Jacobian there); inf for a fold (negative determinant) or a collapse."""
    x, y = float(point[0]), float(point[1])
    w = h[2, 0] * x + h[2, 1] * y + h[2, 2]
    if abs(w) < 1e-12:
        return float("inf")
    u = (h[0, 0] * x + h[0, 1] * y + h[0, 2]) / w
    v = (h[1, 0] * x + h[1, 1] * y + h[1, 2]) / w
    jac = np.array([[h[0, 0] - u * h[2, 0], h[0, 1] - u * h[2, 1]],
                    [h[1, 0] - v * h[2, 0], h[1, 1] - v * h[2, 1]]]) / w  # (2, 2)
    s = np.linalg.svd(jac, compute_uv=False)  # (2,) descending
    if np.linalg.det(jac) <= 0 or s[1] < 1e-9:
        return float("inf")
    return float(s[0] / s[1])


def match(query: LocalFeatures, cand: LocalFeatures, ratio: float = 0.8, mirrored: bool = False,
          min_inliers: int = MIN_INLIERS, score_half: float = SCORE_HALF) -> Verification:
    """Ratio-test matches of query to candidate, then a RANSAC homography (5 px in the shrunk images); see
    Verification. score = n / (n + score_half) for n >= min_inliers RANSAC inliers, else 0; also 0 when the
    homography is degenerate (stretches one direction over MAX_ANISOTROPY times the other, or folds): random
    matches on textures fit such maps, a copy (crop, scale, rotation, mild perspective) does not."""
    none = Verification(0, 0, 0.0, None, None, mirrored)
    if len(query.descriptors) < 2 or len(cand.descriptors) < 2:
        return none
    pairs = cv2.BFMatcher(cv2.NORM_L2).knnMatch(query.descriptors, cand.descriptors, k=2)
    good = [p[0] for p in pairs if len(p) == 2 and p[0].distance < ratio * p[1].distance]
    if len(good) < 4:
        return Verification(0, len(good), 0.0, None, None, mirrored)
    q_px, c_px = np.float32(query.size), np.float32(cand.size)  # (2,) width, height
    src = query.keypoints[[m.queryIdx for m in good]] * q_px  # (M, 2) pixels of the shrunk query
    dst = cand.keypoints[[m.trainIdx for m in good]] * c_px  # (M, 2) pixels of the shrunk candidate
    h, mask = cv2.findHomography(src.reshape(-1, 1, 2), dst.reshape(-1, 1, 2), cv2.RANSAC, 5.0)
    if mask is None or h is None:
        return Verification(0, len(good), 0.0, None, None, mirrored)
    keep = mask.ravel().astype(bool)
    n = int(keep.sum())
    if n < max(min_inliers, 1) or anisotropy(h, src[keep].mean(axis=0)) > MAX_ANISOTROPY:
        return Verification(n, len(good), 0.0, None, None, mirrored)
    q, c = src[keep] / q_px, dst[keep] / c_px
    box = lambda p: (float(p[:, 0].min()), float(p[:, 1].min()), float(p[:, 0].max()), float(p[:, 1].max()))
    return Verification(n, len(good), n / (n + score_half), box(q), box(c), mirrored)


def verify(query_img: Image.Image, cand_img: Image.Image, try_mirror: bool = True) -> Verification:
    """Geometric verification of query_img against cand_img (RGB PIL images); the better of the plain and the
    mirrored query when try_mirror. Raises TypeError / ValueError for a non-image / empty image."""
    cand, query = local_features(cand_img), local_features(query_img)
    best = match(query, cand)
    if try_mirror:
        flipped = match(mirrored(query), cand, mirrored=True)
        if flipped.inliers > best.inliers:
            best = flipped
    return best
