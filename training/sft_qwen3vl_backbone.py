"""Qwen3VLSFTBackbone: the paper's backbone (Qwen3-VL, last-token embedding) as a stage-1 backbone
(training.sft_task.SFTBackbone), so stage 1 runs on it with the compact model's batches and losses.

The sampler's indices become the conversations the encoder embeds at serving time (encoder.qwen3vl_elements):
a view -> an "image" conversation of the rendered (seeded copy edit, training.edits) and fitted photo; a text
-> a "title" or "body" conversation; a NoteSpec -> the global "note" conversation of its images and text.
Every call is one forward pass of the model with gradients.

Teacher (soft targets, band negatives, paper §4.1): the frozen base model. With LoRA it is the same weights
with the adapters switched off (no extra memory); with full fine-tuning, a frozen copy made before training.
"""

from __future__ import annotations

import copy
from functools import lru_cache
from pathlib import Path

import torch
from PIL import Image
from torch import Tensor, nn

from encoder.qwen3vl import Qwen3VLEmbedder
from encoder.qwen3vl_elements import note_conversation
from encoder.qwen3vl_inputs import Conversation, fit_image
from encoder.types import ElementKind
from training.sft_batches import NoteSpec
from training.sft_corpus import Corpus


class Qwen3VLSFTBackbone(nn.Module):
    """embedder: the Qwen3VLEmbedder being trained (full weights, or LoRA adapters when it carries peft);
    corpus: the training Corpus the indices refer to.

    teacher: keep a frozen base model for the teacher_* vectors (needed when the soft-target or
    text-geometry losses are on); without LoRA this costs a second copy of the weights.
    image_cache: rendered, fitted images kept per process (an LRU; each costs up to max_pixels * 3 bytes).
    """

    def __init__(self, embedder: Qwen3VLEmbedder, corpus: Corpus, *, teacher: bool = True, image_cache: int = 2048):
        super().__init__()
        self.embedder, self.corpus = embedder, corpus
        self._titles = set(corpus.title_text)
        self._frozen: tuple[Qwen3VLEmbedder, ...] = ()  # a tuple: not a registered submodule, never trained
        if teacher and embedder.peft_model is None:
            self._frozen = (copy.deepcopy(embedder).requires_grad_(False).eval(),)
        self._teacher_on = teacher
        self._image = lru_cache(maxsize=image_cache)(self._render)

    @property
    def dims(self) -> tuple[int, ...]:
        return self.embedder.config.dims

    # -- indices -> conversations ------------------------------------------------------------------------
    def _render(self, view: int) -> Image.Image:
        cfg = self.embedder.config
        return fit_image(self.corpus.views[view].render(), cfg.min_pixels, cfg.max_pixels)

    def view_conversations(self, views: list[int]) -> list[Conversation]:
        ins = self.embedder.config.instructions["image"]
        return [Conversation(ins, [self._image(v)]) for v in views]

    def text_conversations(self, texts: list[int]) -> list[Conversation]:
        cfg = self.embedder.config
        return [Conversation(cfg.instructions["title" if t in self._titles else "body"],
                             text=self.corpus.texts[t][: cfg.piece_chars]) for t in texts]

    def note_conversations(self, notes: list[NoteSpec]) -> list[Conversation]:
        """Raises ValueError for a note without images or text."""
        out, texts = [], self.corpus.texts
        for i, n in enumerate(notes):
            if not (n.views or n.texts):
                raise ValueError(f"note {i} of the batch has no images or text")
            title = " ".join(texts[t] for k, t in n.texts if k == ElementKind.TITLE)
            body = " ".join(texts[t] for k, t in n.texts if k != ElementKind.TITLE)
            out.append(note_conversation([self._image(v) for v in n.views], title, body, [], self.embedder.config))
        return out

    # -- SFTBackbone ------------------------------------------------------------------------------------
    def _embed(self, conversations: list[Conversation]) -> Tensor:
        return self.embedder(self.embedder.inputs(conversations))  # (n, D) float32

    def embed_views(self, views: list[int]) -> Tensor:
        """view indices -> (n, D)."""
        return self._embed(self.view_conversations(views))

    def embed_texts(self, texts: list[int]) -> Tensor:
        """text indices -> (n, D)."""
        return self._embed(self.text_conversations(texts))

    def embed_notes(self, notes: list[NoteSpec]) -> Tensor:
        """NoteSpecs -> (n, D) global vectors."""
        return self._embed(self.note_conversations(notes))

    @torch.no_grad()
    def _teacher(self, conversations: list[Conversation]) -> Tensor:
        if not self._teacher_on:
            raise RuntimeError("Qwen3VLSFTBackbone was built with teacher=False")
        device = next(self.embedder.parameters()).device
        if self._frozen:
            return self._frozen[0].embed(conversations).to(device)
        with self.embedder.peft_model.disable_adapter():
            return self.embedder.embed(conversations).to(device)  # (n, D)

    def teacher_views(self, views: list[int]) -> Tensor:
        return self._teacher(self.view_conversations(views))

    def teacher_texts(self, texts: list[int]) -> Tensor:
        return self._teacher(self.text_conversations(texts))

    def teacher_notes(self, notes: list[NoteSpec]) -> Tensor:
        return self._teacher(self.note_conversations(notes))

    def save(self, folder: Path) -> Path:
        """A Qwen3-VL checkpoint folder (full weights or the LoRA adapter, tokenizer, processor configs,
        uninote.json): what `uninote export` reads."""
        return self.embedder.save(Path(folder))
