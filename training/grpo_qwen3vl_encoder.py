"""Qwen3VLPoolEncoder: the paper's backbone as stage 2's PoolEncoder (training.pool_encoder), so GRPO
(paper §3.3) runs on Qwen3-VL with the compact model's pools, rewards and loss.

A (pseudo-)note of training.graded_pools becomes the global "note" conversation the encoder embeds at
serving time (encoder.qwen3vl_elements.note_conversation): its images (read from the NoteSet's photo
paths, resized once and kept in an LRU) and its title and body pieces.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Sequence

from PIL import Image
from torch import Tensor, nn

from encoder.images import load_image
from encoder.qwen3vl import Qwen3VLEmbedder, weights_version
from encoder.qwen3vl_elements import note_conversation
from encoder.qwen3vl_inputs import Conversation, fit_image
from encoder.types import ElementKind
from training.graded_pools import PoolNote
from training.grpo_data import NoteSet

PARTS = ("visual", "language_model")  # trainable parts: the vision tower, the text decoder


class Qwen3VLPoolEncoder(nn.Module):
    """embedder: trained in place (its LoRA adapters only, when it carries peft); notes: where the pool
    notes' element keys lead (photo paths, texts). image_cache: resized photos kept per process."""

    def __init__(self, embedder: Qwen3VLEmbedder, notes: NoteSet, image_cache: int = 2048):
        super().__init__()
        self.embedder, self.notes = embedder, notes
        self._image = lru_cache(maxsize=image_cache)(self._load)

    @property
    def dims(self) -> tuple[int, ...]:
        return self.embedder.config.dims

    def _load(self, key: str) -> Image.Image:
        cfg = self.embedder.config
        return fit_image(load_image(self.notes.image_paths[key], note_id=key.split("/")[0]), cfg.min_pixels, cfg.max_pixels)

    def conversations(self, notes: Sequence[PoolNote]) -> list[Conversation]:
        """Raises KeyError naming a note whose element is not in the NoteSet, ValueError for an empty note."""
        out = []
        for n in notes:
            if not n.elements:
                raise ValueError(f"note {n.note_id!r} has no elements")
            try:
                images = [self._image(e.key) for e in n.elements if e.kind == ElementKind.IMAGE]
                title = " ".join(self.notes.texts[e.key] for e in n.elements if e.kind == ElementKind.TITLE)
                body = " ".join(self.notes.texts[e.key] for e in n.elements
                                if e.kind not in (ElementKind.IMAGE, ElementKind.TITLE))
            except KeyError as e:
                raise KeyError(f"note {n.note_id!r}: element {e} is not in the note set") from None
            out.append(note_conversation(images, title, body, [], self.embedder.config))
        return out

    def embed(self, notes: Sequence[PoolNote]) -> Tensor:
        """notes -> (M, D) float32, L2-normalised, on the model's device, one forward pass."""
        return self.embedder(self.embedder.inputs(self.conversations(notes)))

    def set_trainable(self, parts: Sequence[str]) -> list[nn.Parameter]:
        """parts: of PARTS. With LoRA, the adapters inside those parts; else every weight of them."""
        unknown = [p for p in parts if p not in PARTS]
        if unknown:
            raise ValueError(f"trainable: unknown model parts {unknown}; Qwen3-VL has {list(PARTS)}")
        lora = self.embedder.peft_model is not None
        prefixes = tuple(f"model.model.{p}." for p in parts)
        for name, param in self.embedder.named_parameters():
            param.requires_grad_(name.startswith(prefixes) and (not lora or "lora_" in name))
        return [p for p in self.embedder.parameters() if p.requires_grad]

    def save(self, folder: Path, card: str) -> str:
        """A Qwen3-VL checkpoint folder (encoder.qwen3vl.Qwen3VLEmbedder.save) + MODEL_CARD.md; returns the
        weights' version."""
        folder = self.embedder.save(Path(folder))
        (folder / "MODEL_CARD.md").write_text(card, encoding="utf-8")
        return weights_version(folder)
