"""CompactUniNote: the embedded-default UniNote model (frozen CPU towers + small trainable heads).

The forward is split so training can cache the frozen towers' outputs once and train only the heads:

    images ──region_features──► (B, R, 1280) ──embed_regions──► (B, R, D)   R = whole image + crops
    texts  ──text_features────► (N, 384)     ──embed_texts────► (N, D)   (fusion's text tokens)
                                              ──embed_text_locals──► (N, D)   (stored text elements)
    element vectors (B, T, D) + kinds + mask ──fuse──► (B, D) global note vector

`parameters()` / `state_dict()` hold only the trainable heads (a few MB); the towers are shared,
process-wide objects (encoder.towers) and are never saved. Every output is L2-normalised and
Matryoshka-nested over config.dims. Paper §3 (local/global elements), with the compact backbone in
place of Qwen3-VL.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from encoder.config import CompactConfig
from encoder.heads import NoteFusion, ProjectionHead
from encoder.pooling import region_gem
from encoder.towers import IMAGE_FEATURE_DIM, TEXT_FEATURE_DIM, ImageTower, TextTower, image_tower, text_tower


class CompactUniNote(nn.Module):
    """The compact UniNote model. Heads are initialised from config.seed (independent of the global RNG).

    init_weights=False skips the orthogonal initialisation (for a loader about to overwrite every weight).
    """

    def __init__(self, config: CompactConfig | None = None, *, init_weights: bool = True):
        super().__init__()
        self.config = config or CompactConfig()
        D, hidden = self.config.dim, self.config.head_hidden
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.config.seed)
            self.image_head = ProjectionHead(IMAGE_FEATURE_DIM, D, hidden, init_weights=init_weights)
            self.text_head = ProjectionHead(TEXT_FEATURE_DIM, D, hidden, init_weights=init_weights)
            self.fusion = NoteFusion(self.config.dim)
        # config.text_locals == "isometry": text elements are x -> M x / |M x| with M (D, 384) orthonormal
        # columns (the nearest isometry of the trained text head), so they rank exactly as the e5 tower does
        self.text_local_proj = nn.Linear(TEXT_FEATURE_DIM, D, bias=False) if self.config.text_locals == "isometry" else None
        self.image_runner = None  # None = the torch ImageTower; else a callable like it (encoder.onnx_tower)

    # -- frozen towers (shared per process, not submodules) --------------------------------------------
    @property
    def image_tower(self) -> ImageTower:
        return image_tower(self.config.image_tower, self.config.image_size)

    @property
    def text_tower(self) -> TextTower:
        return text_tower(self.config.text_tower)

    @property
    def dims(self) -> tuple[int, ...]:
        return self.config.dims

    @property
    def boxes(self):
        """The R pooled regions per image: (0, 0, 1, 1) first, then config.crop_boxes."""
        return self.config.boxes

    @torch.no_grad()
    def region_features(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """B RGB images -> (B, R, 1280) float32: region GeM of one tower pass (R = 1 + len(crop_boxes))."""
        if len(images) == 0:
            return torch.zeros(0, len(self.boxes), IMAGE_FEATURE_DIM)
        tower = self.image_tower
        fmap = (self.image_runner or tower)(tower.preprocess(images))  # (B, 1280, h, w)
        return region_gem(fmap, self.boxes, p=self.config.gem_p)  # (B, R, 1280)

    @torch.no_grad()
    def text_features(self, texts: Sequence[str]) -> torch.Tensor:
        """N texts -> (N, 384) float32 e5 passage embeddings."""
        return self.text_tower(texts)  # (N, 384)

    def embed_regions(self, feats: torch.Tensor) -> torch.Tensor:
        """(B, R, 1280) -> (B, R, D) float32, L2-normalised (any leading shape works)."""
        return self.image_head(feats)

    def embed_texts(self, feats: torch.Tensor) -> torch.Tensor:
        """(N, 384) -> (N, D) float32, L2-normalised."""
        return self.text_head(feats)

    def embed_text_locals(self, feats: torch.Tensor) -> torch.Tensor:
        """(N, 384) -> (N, D) float32, L2-normalised: the stored text element vectors (embed_texts unless
        config.text_locals is "isometry")."""
        if self.text_local_proj is None:
            return self.text_head(feats)
        return F.normalize(self.text_local_proj(F.normalize(feats, dim=-1)), dim=-1)  # (N, D)

    def fuse(self, tokens: torch.Tensor, kinds: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """tokens (B, T, D), kinds (B, T) int64 (encoder.heads.KIND_IDS), mask (B, T) bool -> (B, D)."""
        return self.fusion(tokens, kinds, mask)

    def forward(self, tokens: torch.Tensor, kinds: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Same as fuse (the towers and heads are called through their own methods)."""
        return self.fuse(tokens, kinds, mask)

    def set_trainable(self, parts: Sequence[str]) -> list[nn.Parameter]:
        """Only the named sub-modules (image_head, text_head, fusion) require grad; returns their parameters.
        Raises ValueError naming an unknown part."""
        children = dict(self.named_children())
        unknown = [p for p in parts if p not in children]
        if unknown:
            raise ValueError(f"trainable: unknown model parts {unknown}; the model has {sorted(children)}")
        self.requires_grad_(False)
        for p in parts:
            children[p].requires_grad_(True)
        return [p for p in self.parameters() if p.requires_grad]
