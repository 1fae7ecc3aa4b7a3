"""The paper's backbone: Qwen3-VL as a UniNote embedder (Zhao et al., KDD 2026, §3).

`Qwen3VLEmbedder` wraps transformers' `Qwen3VLForConditionalGeneration`: a conversation (instruction +
images + text, chat template with the generation prompt) -> the hidden state of the last token after the
final norm -> L2-normalised (B, D) float32, D = the text hidden size (4096 for Qwen3-VL-8B). vLLM's pooling
runner computes the same vector (`--runner pooling`, LAST pooling, normalised), see encoder/export.py.

Checkpoint folder (what training writes and `load_qwen3vl` reads): a Hugging Face Qwen3-VL folder
(config.json, *.safetensors, tokenizer, preprocessor_config.json, ...) + uninote.json
(Qwen3VLEncoderConfig). With LoRA (`peft`, the optional extra "lora"), the folder holds the adapter
(adapter_config.json naming the base weights, adapter_model.safetensors) instead of full weights.
"""

from __future__ import annotations

import hashlib
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from encoder.qwen3vl_config import Qwen3VLEncoderConfig, default_dims
from encoder.qwen3vl_inputs import Conversation, build_model_inputs

# Non-weight files of a Qwen3-VL folder that travel with every checkpoint and export.
PROCESSOR_FILES = (
    "preprocessor_config.json",
    "video_preprocessor_config.json",
    "processor_config.json",
    "chat_template.jinja",
    "chat_template.json",
)


def _import_transformers():
    try:
        from transformers import AutoImageProcessor, AutoTokenizer, Qwen3VLForConditionalGeneration
    except ImportError as e:  # transformers < 4.57 has no Qwen3-VL
        raise ImportError(f"the qwen3vl backbone needs transformers >= 4.57 with Qwen3-VL: {e}") from e
    return AutoImageProcessor, AutoTokenizer, Qwen3VLForConditionalGeneration


def weights_version(folder: Path) -> str:
    """First 12 hex chars of sha256 over the folder's *.safetensors files (name + bytes), in name order.

    Raises FileNotFoundError when the folder holds no .safetensors file.
    """
    files = sorted(Path(folder).glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(f"no .safetensors weights in {folder}")
    h = hashlib.sha256()
    for f in files:
        h.update(f.name.encode())
        with f.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 22), b""):
                h.update(chunk)
    return h.hexdigest()[:12]


class Qwen3VLEmbedder(nn.Module):
    """Qwen3-VL -> L2-normalised last-token embeddings.

    model: Qwen3VLForConditionalGeneration (LoRA layers injected in place when `peft_model` is given).
    tokenizer / image_processor: the checkpoint's (any Qwen2-VL image processor backend).
    config: the UniNote choices (dims, instructions, image size bounds, batch size).
    """

    def __init__(self, model: nn.Module, tokenizer: Any, image_processor: Any, config: Qwen3VLEncoderConfig,
                 source: Path | None = None, peft_model: nn.Module | None = None):
        super().__init__()
        hidden = model.config.text_config.hidden_size
        if config.dim != hidden:
            raise ValueError(f"config dims {config.dims} must end at the model's hidden size {hidden}")
        self.model = model
        self.peft_model = peft_model
        self.tokenizer = tokenizer
        self.image_processor = image_processor
        self.config = config
        self.source = source  # folder the processor files are copied from on save

    @property
    def merge_size(self) -> int:
        return int(self.model.config.vision_config.spatial_merge_size)

    def inputs(self, conversations: Sequence[Conversation]) -> dict[str, torch.Tensor]:
        """Tokenised, right-padded model inputs for a batch (see qwen3vl_inputs.build_model_inputs)."""
        return build_model_inputs(conversations, self.tokenizer, self.image_processor, self.merge_size)

    def forward(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """inputs (from `inputs()`) -> (B, D) float32, L2-normalised last-token hidden states."""
        device = next(self.model.parameters()).device
        inputs = {k: v.to(device) for k, v in inputs.items()}
        if "pixel_values" in inputs:
            inputs["pixel_values"] = inputs["pixel_values"].to(self.model.dtype)
        out = self.model.model(**inputs, use_cache=False)
        hidden = out.last_hidden_state  # (B, T, D), after the final RMSNorm
        last = inputs["attention_mask"].sum(dim=1) - 1  # (B,) right padding: last real token
        vec = hidden[torch.arange(hidden.shape[0], device=device), last]  # (B, D)
        return F.normalize(vec.float(), dim=-1)  # (B, D)

    @torch.inference_mode()
    def embed(self, conversations: Sequence[Conversation]) -> torch.Tensor:
        """(N,) conversations -> (N, D) float32 CPU tensor, in batches of config.batch_size, eval mode."""
        was_training = self.training
        self.eval()
        try:
            chunks = [
                self(self.inputs(conversations[i : i + self.config.batch_size])).cpu()
                for i in range(0, len(conversations), self.config.batch_size)
            ]
        finally:
            self.train(was_training)
        return torch.cat(chunks) if chunks else torch.zeros(0, self.config.dim)

    def save(self, folder: Path) -> Path:
        """Write a checkpoint folder (full weights, or the LoRA adapter when trained with LoRA)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        if self.peft_model is not None:
            self.peft_model.save_pretrained(folder)
        else:
            self.model.save_pretrained(folder)
        self.tokenizer.save_pretrained(folder)
        if self.source is not None and Path(self.source).resolve() != folder.resolve():
            for name in PROCESSOR_FILES:
                if (Path(self.source) / name).is_file():
                    shutil.copy2(Path(self.source) / name, folder / name)
        (folder / "generation_config.json").unlink(missing_ok=True)
        self.config.save(folder)
        return folder


def load_qwen3vl(
    folder: Path,
    config: Qwen3VLEncoderConfig | None = None,
    *,
    lora_rank: int | None = None,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
    gradient_checkpointing: bool = False,
) -> Qwen3VLEmbedder:
    """Load a UniNote Qwen3-VL checkpoint, or base weights (a Qwen3-VL-*-Instruct folder without uninote.json).

    config: overrides uninote.json (default: uninote.json, else defaults with dims from the hidden size).
    lora_rank: wrap the model in a fresh peft LoRA adapter of this rank on the text decoder's attention
        and MLP projections (needs `pip install uninote[lora]`); None = train/run the full weights.
    gradient_checkpointing: recompute activations in the backward pass (training big models; transformers'
        non-reentrant checkpointing, so LoRA needs no input gradients).
    Raises FileNotFoundError (no config.json / weights), ValueError (not a Qwen3-VL folder), ImportError
    (peft missing for a LoRA checkpoint).
    """
    AutoImageProcessor, AutoTokenizer, Qwen3VLForConditionalGeneration = _import_transformers()
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"no checkpoint folder at {folder}")
    if config is None:
        try:
            config = Qwen3VLEncoderConfig.load(folder)
        except FileNotFoundError:
            config = None
    adapter = (folder / "adapter_config.json").is_file()
    if adapter:
        peft = _import_peft()
        base = Path(peft.PeftConfig.from_pretrained(folder).base_model_name_or_path)
        model = Qwen3VLForConditionalGeneration.from_pretrained(base, dtype=dtype)
        peft_model = peft.PeftModel.from_pretrained(model, folder, is_trainable=True)
    else:
        if not (folder / "config.json").is_file():
            raise FileNotFoundError(f"no config.json in {folder}: not a Hugging Face checkpoint")
        model = Qwen3VLForConditionalGeneration.from_pretrained(folder, dtype=dtype)
        peft_model = None
    if model.config.model_type != "qwen3_vl":
        raise ValueError(f"{folder} holds a {model.config.model_type!r} model, not qwen3_vl")
    if config is None:
        config = Qwen3VLEncoderConfig(dims=default_dims(model.config.text_config.hidden_size))
    if lora_rank is not None and peft_model is None:
        peft = _import_peft()
        lora = peft.LoraConfig(
            r=lora_rank,
            lora_alpha=2 * lora_rank,
            lora_dropout=0.0,
            target_modules=r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)",
        )
        peft_model = peft.get_peft_model(model, lora)
    config = replace(config, lora=peft_model is not None)
    if gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.to(device)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    image_processor = AutoImageProcessor.from_pretrained(folder)
    return Qwen3VLEmbedder(model.eval(), tokenizer, image_processor, config, source=folder, peft_model=peft_model)


def _import_peft():
    try:
        import peft
    except ImportError as e:
        raise ImportError("LoRA needs peft: pip install 'uninote[lora]'") from e
    return peft
