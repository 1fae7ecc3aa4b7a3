"""Geometric verification of an image match: SIFT local features, ratio-test matching, RANSAC homography (OpenCV).

`verify(query_img, cand_img) -> Verification` is a pure function: how many matched keypoints one homography
explains (RANSAC inliers), a score in [0, 1) from that count, and the matched region as a box in each image.
A copy (crop, paste into another photo, collage cell, screenshot, rotation, perspective) keeps a rigid mapping
between the shared pixels, so it has many inliers; an unrelated photo (even of the same product) has few.
SIFT is not mirror-invariant, so the mirrored query is tried too (flips are a common copy edit).

Sources: Lowe, IJCV 2004 (SIFT, ratio test 0.8); OpenCV `cv2.SIFT_create`, `cv2.BFMatcher.knnMatch`,
`cv2.findHomography(..., cv2.RANSAC, 5.0)`; the DISC21 / ISC 2021 verification baselines.
For many candidates, compute `local_features` once per image and call `match`.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image

MAX_SIDE = 512  # images are shrunk to this longer side before feature extraction (speed; boxes are fractions)
MIN_INLIERS = 10  # fewer RANSAC inliers than this -> score 0 (a chance homography through random matches)
SCORE_HALF = 25  # inliers at which score = 0.5 (score = n / (n + SCORE_HALF))

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
    """keypoints: (K, 2) float32 positions as fractions of (width, height); descriptors: (K, 128) float32."""

    keypoints: np.ndarray
    descriptors: np.ndarray


_SIFT = None


def _sift():
    global _SIFT
    if _SIFT is None:
        _SIFT = cv2.SIFT_create(nfeatures=1000)
    return _SIFT


def local_features(image: Image.Image, mirror: bool = False) -> LocalFeatures:
    """SIFT keypoints (fractions) and descriptors of an RGB PIL image, optionally mirrored left-right first.
    Raises TypeError for a non-image and ValueError for an empty image."""
    if not isinstance(image, Image.Image):
        raise TypeError(f"expected a PIL.Image.Image, got {type(image).__name__}")
    if image.width == 0 or image.height == 0:
        raise ValueError(f"cannot verify an empty image ({image.width}x{image.height})")
    img = image.convert("L")
    if mirror:
        img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    img.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.BILINEAR)
    gray = np.asarray(img, dtype=np.uint8)  # (H, W)
    kps, desc = _sift().detectAndCompute(gray, None)
    if desc is None or len(kps) == 0:
        return LocalFeatures(np.zeros((0, 2), np.float32), np.zeros((0, 128), np.float32))
    pts = np.array([kp.pt for kp in kps], dtype=np.float32) / np.array([gray.shape[1], gray.shape[0]], np.float32)
    if mirror:  # report positions in the un-mirrored image
        pts[:, 0] = 1.0 - pts[:, 0]
    return LocalFeatures(pts, desc.astype(np.float32))


def match(query: LocalFeatures, cand: LocalFeatures, ratio: float = 0.8, mirrored: bool = False) -> Verification:
    """Ratio-test matches of query to candidate, then a RANSAC homography (5 px at MAX_SIDE); see Verification."""
    none = Verification(0, 0, 0.0, None, None, mirrored)
    if len(query.descriptors) < 2 or len(cand.descriptors) < 2:
        return none
    pairs = cv2.BFMatcher(cv2.NORM_L2).knnMatch(query.descriptors, cand.descriptors, k=2)
    good = [p[0] for p in pairs if len(p) == 2 and p[0].distance < ratio * p[1].distance]
    if len(good) < 4:
        return Verification(0, len(good), 0.0, None, None, mirrored)
    src = query.keypoints[[m.queryIdx for m in good]] * MAX_SIDE  # (M, 2) in a MAX_SIDE frame
    dst = cand.keypoints[[m.trainIdx for m in good]] * MAX_SIDE  # (M, 2)
    _, mask = cv2.findHomography(src.reshape(-1, 1, 2), dst.reshape(-1, 1, 2), cv2.RANSAC, 5.0)
    if mask is None:
        return Verification(0, len(good), 0.0, None, None, mirrored)
    keep = mask.ravel().astype(bool)
    n = int(keep.sum())
    if n < MIN_INLIERS:
        return Verification(n, len(good), 0.0, None, None, mirrored)
    q, c = src[keep] / MAX_SIDE, dst[keep] / MAX_SIDE
    box = lambda p: (float(p[:, 0].min()), float(p[:, 1].min()), float(p[:, 0].max()), float(p[:, 1].max()))
    return Verification(n, len(good), n / (n + SCORE_HALF), box(q), box(c), mirrored)


def verify(query_img: Image.Image, cand_img: Image.Image, try_mirror: bool = True) -> Verification:
    """Geometric verification of query_img against cand_img (RGB PIL images); the better of the plain and the
    mirrored query when try_mirror. Raises TypeError / ValueError for a non-image / empty image."""
    cand = local_features(cand_img)
    best = match(local_features(query_img), cand)
    if try_mirror:
        flipped = match(local_features(query_img, mirror=True), cand, mirrored=True)
        if flipped.inliers > best.inliers:
            best = flipped
    return best
