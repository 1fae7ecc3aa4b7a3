"""A compact checkpoint on the copy-trained image tower whose image head starts as that tower's whitening.

The copy tower (training.copy_train, encoder/checkpoints/copy_tower) ships a PCA whitening learnt on a
background set (SSCD, Pizzi et al. CVPR 2022 §3.3): y = L2(M (x - mean)) on the L2-normalised GeM vector x,
M (512, 1280). The compact image head is y = L2(W x + b + MLP(LayerNorm(x))) on the same L2-normalised x
(encoder/heads.py), so W = M, b = -M mean and a zero MLP output layer make it exactly the whitened SSCD
descriptor, for the whole image and for every crop region (the PCA orders the 512 dims by variance, so the
Matryoshka prefixes are the leading components). Stage 1 then starts from the copy descriptor instead of
a random projection. The text head and fusion are copied from `--from` (their inputs did not change for
text; fusion's image tokens did, which is why stage 1 and 2 are re-run on top).

    .venv/bin/python -m training.copy_head_init --out DIR [--from encoder/checkpoints/compact]
    uninote train sft --init DIR --config training/configs/sft_compact.toml --out RUN
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import torch

from encoder.checkpoint import load_checkpoint, save_checkpoint
from encoder.compact import CompactUniNote
from encoder.copy_tower_weights import Whitening

ROOT = Path(__file__).resolve().parents[1]
COPY_TOWER = "efficientnet-lite0-copy"


@torch.no_grad()
def copy_tower_model(base: CompactUniNote) -> CompactUniNote:
    """A copy of `base` on the copy tower (config.image_tower = COPY_TOWER, text elements from the text head),
    its image head = the tower's whitening. Raises ValueError when the whitening's dim is not the model's D."""
    config = replace(base.config, image_tower=COPY_TOWER, text_locals="head")
    model = CompactUniNote(config, init_weights=False)
    model.load_state_dict(base.state_dict(), strict=False)  # text head and fusion (text_local_proj dropped)
    whitening: Whitening = model.image_tower.whitening
    head = model.image_head
    if whitening.matrix.shape[0] != head.proj.weight.shape[0]:
        raise ValueError(f"the copy tower's whitening gives {whitening.matrix.shape[0]} dims, the model needs "
                         f"{head.proj.weight.shape[0]}")
    m = whitening.matrix.float()  # (D, 1280)
    head.proj.weight.copy_(m)
    head.proj.bias.copy_(-(m @ whitening.mean.float()))  # (D,)
    torch.nn.init.zeros_(head.mlp[-1].weight)
    torch.nn.init.zeros_(head.mlp[-1].bias)
    return model.eval()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--from", dest="base", type=Path, default=ROOT / "encoder" / "checkpoints" / "compact")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    model = copy_tower_model(load_checkpoint(args.base))
    version = save_checkpoint(model, args.out, card=f"{args.base} on the copy tower, image head = its whitening "
                                                     "(training/copy_head_init.py); stage 1 starts here.")
    print(f"checkpoint {args.out} (version {version})")


if __name__ == "__main__":
    main()
