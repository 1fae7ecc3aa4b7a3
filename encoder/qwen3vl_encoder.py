"""Qwen3VLEncoder: the Encoder protocol in-process over a Qwen3-VL checkpoint (transformers, no server).

The same elements as VLLMEncoder (encoder.qwen3vl_elements), embedded by Qwen3VLEmbedder in batches of
config.batch_size. Use it to check a checkpoint before serving it, for small corpora, or on a GPU
worker without vLLM; at scale, serve the export with vLLM and use VLLMEncoder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from encoder.qwen3vl import Qwen3VLEmbedder, load_qwen3vl, weights_version
from encoder.qwen3vl_config import CONFIG_FILE
from encoder.qwen3vl_elements import assemble, flatten, note_elements
from encoder.types import EncodedNote, NoteInput


class Qwen3VLEncoder:
    """Encoder over an in-process Qwen3VLEmbedder.

    dims: the embedder config's Matryoshka dims; model_version: the export's recorded version, else the
    first 12 hex chars of sha256 of the checkpoint's safetensors (so it equals VLLMEncoder's for an
    export served as `uninote-<version>`).
    """

    def __init__(self, embedder: Qwen3VLEmbedder, model_version: str):
        self.embedder = embedder
        self.config = embedder.config
        self.dims = embedder.config.dims
        self.model_version = model_version

    @classmethod
    def from_checkpoint(cls, folder: Path, **load_kwargs) -> "Qwen3VLEncoder":
        """Load a Qwen3-VL checkpoint or export (see encoder.qwen3vl.load_qwen3vl for kwargs and errors)."""
        from encoder.export import export_version

        folder = Path(folder)
        embedder = load_qwen3vl(folder, **load_kwargs)
        version = export_version(folder) if (folder / CONFIG_FILE).is_file() else weights_version(folder)
        return cls(embedder, version)

    def encode(self, notes: Sequence[NoteInput]) -> list[EncodedNote]:
        """Notes -> EncodedNote with (D,) float32 L2-normalised vectors. Raises InputError for an empty
        note or unusable image."""
        plans = [note_elements(note, self.config) for note in notes]
        conversations = flatten(plans)
        vectors = self.embedder.embed(conversations).numpy()  # (N, D) float32
        return assemble(list(notes), plans, vectors, self.model_version)
