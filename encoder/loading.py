"""load_encoder: the one place that picks the encoder from the settings.

ENCODER_URL set -> the vLLM HTTP client (encoder.vllm_encoder.VLLMEncoder, Qwen3-VL served by vLLM);
otherwise CHECKPOINT in-process: a Qwen3-VL checkpoint through transformers, a compact one (or the
shipped compact checkpoint when unset) through InProcessEncoder. The big
pretrained towers are cached per process (encoder.towers), so loading twice costs only the heads.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from encoder.checkpoint import load_checkpoint
from encoder.inprocess import InProcessEncoder
from encoder.threads import apply_threads
from encoder.types import Encoder

if TYPE_CHECKING:
    from app.settings import Settings

DEFAULT_CHECKPOINT = Path(__file__).resolve().parent / "checkpoints" / "compact"


def load_encoder(settings: "Settings") -> Encoder:
    """The configured Encoder. Raises FileNotFoundError / encoder.checkpoint.CheckpointError for a bad
    CHECKPOINT folder; whatever VLLMEncoder.from_settings raises for a bad ENCODER_URL setup.

    ENCODER_RUNTIME=onnx runs the compact image tower through ONNX Runtime (encoder.onnx_tower).
    Sizes every CPU runtime to ENCODER_THREADS first (encoder.threads), before any tower or OCR engine loads.
    """
    apply_threads(settings.encoder_threads)
    if settings.encoder_url:
        from encoder.vllm_encoder import VLLMEncoder  # only needed (and importable) for the vLLM route

        return VLLMEncoder.from_settings(settings)
    checkpoint = settings.checkpoint or DEFAULT_CHECKPOINT
    from encoder.qwen3vl_config import is_qwen3vl_checkpoint

    if is_qwen3vl_checkpoint(checkpoint):  # the paper's backbone in-process (transformers)
        from encoder.qwen3vl_encoder import Qwen3VLEncoder

        return Qwen3VLEncoder.from_checkpoint(checkpoint)
    model = load_checkpoint(checkpoint)
    if settings.encoder_runtime == "onnx":  # same vectors (cosine >= 0.9999), a third of the CPU time
        from encoder.onnx_tower import onnx_image_tower

        model.image_runner = onnx_image_tower(model.image_tower, settings.home / "cache" / "onnx")
    return InProcessEncoder(model)
