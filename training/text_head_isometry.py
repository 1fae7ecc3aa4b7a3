"""The nearest isometry of a trained text head (orthogonal Procrustes): a text vector exactly as good as the raw
e5 tower at full dim, as close as an isometry can be to the trained head's map into the shared space.

The compact head is y = W x + b + MLP(LayerNorm(x)) on the L2-normalised e5 feature x (encoder/heads.py;
W (D, 384) with D >= 384). Training bent that map, and on Chinese paraphrase pairs the text vector ranks worse
than the raw tower (issue 14). `isometric_text_head` replaces W by U V^T (W = U S V^T, the orthonormal-column
matrix closest to W in Frobenius norm) and zeroes b and the MLP's last layer, so cos(y_a, y_b) = cos(x_a, x_b)
exactly at dim D (the Matryoshka prefixes are projections of it). The image head and fusion are untouched.

    .venv/bin/python -m training.text_head_isometry --out DIR [--checkpoint encoder/checkpoints/compact] [--locals]

--locals (`with_isometric_text_locals`) applies the isometry only to the stored text element vectors: fusion
keeps reading the trained head, so global and image vectors stay exactly as they were.

Measure DIR with benchmarks/bench_text_pairs.py --checkpoint DIR and CHECKPOINT=DIR benchmarks/bench_notes.py
before shipping it (the shared space changes for text).
"""

from __future__ import annotations

import argparse
import copy
from dataclasses import replace
from pathlib import Path

import torch

from encoder.checkpoint import load_checkpoint, save_checkpoint
from encoder.compact import CompactUniNote
from encoder.heads import ProjectionHead

ROOT = Path(__file__).resolve().parents[1]


@torch.no_grad()
def isometric_text_head(head: ProjectionHead, alpha: float = 1.0) -> ProjectionHead:
    """In place: head.proj.weight (D, d) -> (1 - alpha) W + alpha U V^T (U V^T: the polar factor of W, orthonormal
    columns), bias and the residual MLP's output layer scaled by (1 - alpha). alpha = 1: the isometry; between 0
    and 1: the trained head pulled towards it. Raises ValueError when D < d (no isometry exists) or alpha is
    outside [0, 1]."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    w = head.proj.weight.double()  # (D, d)
    if w.shape[0] < w.shape[1]:
        raise ValueError(f"an isometry needs out_dim >= in_dim, got {tuple(w.shape)}")
    u, _, vh = torch.linalg.svd(w, full_matrices=False)  # (D, d), (d,), (d, d)
    head.proj.weight.copy_(((1 - alpha) * w + alpha * (u @ vh)).to(head.proj.weight.dtype))  # (D, d)
    for p in (head.proj.bias, head.mlp[-1].weight, head.mlp[-1].bias):
        p.mul_(1 - alpha)
    return head


@torch.no_grad()
def with_isometric_text_locals(model: CompactUniNote) -> CompactUniNote:
    """A copy of model whose text *element* vectors come from the nearest isometry of its text head
    (config.text_locals = "isometry", text_local_proj = U V^T of the head's W (D, 384)), while fusion keeps
    reading the trained head: the global vector and every image vector are unchanged, and text elements
    rank exactly as the e5 tower does at full dim. Raises ValueError when the model already has one."""
    if model.text_local_proj is not None:
        raise ValueError("the model's text elements already come from an isometry (text_locals = 'isometry')")
    out = CompactUniNote(replace(model.config, text_locals="isometry"), init_weights=False)
    out.load_state_dict(model.state_dict(), strict=False)  # every weight but text_local_proj
    iso = isometric_text_head(copy.deepcopy(model.text_head))
    out.text_local_proj.weight.copy_(iso.proj.weight)  # (D, 384), orthonormal columns
    return out.eval()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", type=Path, default=ROOT / "encoder" / "checkpoints" / "compact")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--locals", action="store_true", help="keep the trained head for fusion; only the stored "
                    "text element vectors come from the isometry (config text_locals = 'isometry')")
    ap.add_argument("--alpha", type=float, default=1.0, help="1 = the isometry; 0.5 = halfway from the trained head")
    args = ap.parse_args()
    model = load_checkpoint(args.checkpoint)
    if args.locals:
        model = with_isometric_text_locals(model)
        card = (f"{args.checkpoint} with text element vectors from the nearest isometry of its text head "
                "(training/text_head_isometry.py --locals); fusion, global vectors and image vectors unchanged.")
    else:
        isometric_text_head(model.text_head, args.alpha)
        card = (f"Text head of {args.checkpoint} pulled towards its nearest isometry, alpha {args.alpha} "
                "(training/text_head_isometry.py); image head and fusion unchanged.")
    print(f"saved {args.out}: model version {save_checkpoint(model, args.out, card)}")


if __name__ == "__main__":
    main()
