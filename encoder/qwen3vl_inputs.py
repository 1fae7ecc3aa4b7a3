"""One element to embed -> one chat conversation -> Qwen3-VL model inputs (in-process) or an OpenAI-style
`messages` list (vLLM's `POST /v1/embeddings`). Both routes render the same chat template with the
generation prompt, so the last token (the one pooled) is the same: `<|im_start|>assistant\\n`.

Images are resized here, on the caller's side, with the Qwen2-VL `smart_resize` rule (sides multiples of
IMAGE_FACTOR, pixel count within [min_pixels, max_pixels]) and sent losslessly (PNG), so the model's own
image processor never resizes: the in-process (PIL) and vLLM (torchvision) processors then see identical
pixels. Source: transformers `Qwen2VLImageProcessor`, `Qwen3VLProcessor`.
"""

from __future__ import annotations

import base64
import io
import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import torch
from PIL import Image

from encoder.qwen3vl_config import IMAGE_FACTOR

IMAGE_PAD = "<|image_pad|>"


@dataclass
class Conversation:
    """One element to embed: an instruction (system turn) and a user turn of images then text."""

    instruction: str
    images: list[Image.Image] = field(default_factory=list)  # RGB, already fitted (fit_image)
    text: str = ""

    def messages(self, image_part: Any = None) -> list[dict[str, Any]]:
        """Chat messages; each image becomes `image_part(image)` (default: {"type": "image"})."""
        part = image_part or (lambda _img: {"type": "image"})
        content = [part(img) for img in self.images]
        if self.text or not content:
            content.append({"type": "text", "text": self.text})
        return [
            {"role": "system", "content": self.instruction},
            {"role": "user", "content": content},
        ]


def smart_resize(height: int, width: int, min_pixels: int, max_pixels: int, factor: int = IMAGE_FACTOR) -> tuple[int, int]:
    """(h, w) -> (h', w'): multiples of `factor`, h'*w' in [min_pixels, max_pixels], aspect ratio kept.

    The rule of transformers' Qwen2-VL image processor (`smart_resize`). Raises ValueError for an aspect
    ratio above 200 (as Qwen's processor does).
    """
    if max(height, width) / max(min(height, width), 1) > 200:
        raise ValueError(f"image aspect ratio above 200 ({width}x{height})")
    h = max(factor, round(height / factor) * factor)
    w = max(factor, round(width / factor) * factor)
    if h * w > max_pixels:
        beta = math.sqrt(height * width / max_pixels)
        h = max(factor, math.floor(height / beta / factor) * factor)
        w = max(factor, math.floor(width / beta / factor) * factor)
    elif h * w < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h = math.ceil(height * beta / factor) * factor
        w = math.ceil(width * beta / factor) * factor
    return h, w


def fit_image(image: Image.Image, min_pixels: int, max_pixels: int) -> Image.Image:
    """An RGB copy resized (bicubic) to smart_resize's size; the image itself when already that size."""
    if image.mode != "RGB":
        image = image.convert("RGB")
    h, w = smart_resize(image.height, image.width, min_pixels, max_pixels)
    if (w, h) == image.size:
        return image
    return image.resize((w, h), Image.Resampling.BICUBIC)


def crop_box(image: Image.Image, box: tuple[float, float, float, float]) -> Image.Image:
    """Cut `box` ((x0, y0, x1, y1) fractions of width/height) out of `image` (at least 1x1 pixel)."""
    x0, y0, x1, y1 = box
    left, top = int(round(x0 * image.width)), int(round(y0 * image.height))
    right = max(left + 1, int(round(x1 * image.width)))
    bottom = max(top + 1, int(round(y1 * image.height)))
    return image.crop((left, top, right, bottom))


def image_data_uri(image: Image.Image) -> str:
    """`data:image/png;base64,...` of the image (lossless, so vLLM decodes exactly these pixels)."""
    buf = io.BytesIO()
    image.save(buf, format="PNG", compress_level=1)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def openai_image_part(image: Image.Image) -> dict[str, Any]:
    """The OpenAI chat content part vLLM accepts for an image."""
    return {"type": "image_url", "image_url": {"url": image_data_uri(image)}}


def build_model_inputs(
    conversations: Sequence[Conversation], tokenizer: Any, image_processor: Any, merge_size: int = 2
) -> dict[str, torch.Tensor]:
    """Tokenise a batch of conversations for Qwen3VLModel, right-padded.

    Returns input_ids (B, T) int64, attention_mask (B, T) int64, and when any image is present
    pixel_values (P, C*2*16*16) float32 (all images' patches, in conversation order) and
    image_grid_thw (N_img, 3) int64 and mm_token_type_ids (B, T) int64 (1 = image token). Each `<|image_pad|>` of the template is expanded to the image's
    t*h*w / merge_size^2 tokens, as Qwen3VLProcessor does.
    """
    if not conversations:
        raise ValueError("no conversations to tokenise")
    texts = [
        tokenizer.apply_chat_template(c.messages(), tokenize=False, add_generation_prompt=True)
        for c in conversations
    ]
    images = [img for c in conversations for img in c.images]
    out: dict[str, torch.Tensor] = {}
    if images:
        vision = image_processor(images=images, return_tensors="pt")
        grid = vision["image_grid_thw"]  # (N_img, 3)
        out["pixel_values"] = vision["pixel_values"]  # (P, C*T*ps*ps)
        out["image_grid_thw"] = grid
        counts = (grid.prod(-1) // (merge_size**2)).tolist()
        it = iter(counts)
        expanded = []
        for text in texts:
            pieces = text.split(IMAGE_PAD)
            expanded.append(pieces[0] + "".join(IMAGE_PAD * next(it) + p for p in pieces[1:]))
        texts = expanded
    enc = tokenizer(texts, padding=True, return_tensors="pt", add_special_tokens=False, padding_side="right")
    out["input_ids"] = enc["input_ids"]  # (B, T)
    out["attention_mask"] = enc["attention_mask"]  # (B, T)
    if images:  # 1 marks image tokens: transformers >= 5 needs it for the multimodal RoPE (M-RoPE)
        image_token_id = tokenizer.convert_tokens_to_ids(IMAGE_PAD)
        out["mm_token_type_ids"] = (enc["input_ids"] == image_token_id).long()  # (B, T)
    return out
