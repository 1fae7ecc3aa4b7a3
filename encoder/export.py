"""`uninote export CHECKPOINT OUT`: a UniNote Qwen3-VL checkpoint -> a Hugging Face folder vLLM serves as is.

What the export guarantees (each point is what vLLM 0.32's pooling runner reads; see docs/gpu.md):
- full weights: a LoRA checkpoint (peft) is merged into its base weights (`merge_and_unload`);
- `config.json` declares `is_matryoshka: true` and `matryoshka_dimensions` (the UniNote dims), so the
  `dimensions` request field is accepted and returns the truncated, L2-renormalised prefix (MRL);
- `text_config.rope_parameters.mrope_interleaved: true` (transformers always interleaves Qwen3-VL's
  MRoPE; vLLM does only when the flag is set, otherwise image embeddings drift);
- sentence-transformers `modules.json` + `1_Pooling/config.json` (last-token pooling) + a `Normalize`
  module, so even a plain `vllm serve OUT --runner pooling` pools the last token and L2-normalises;
- the tokenizer, chat template and image/video processor configs, and `uninote.json` carrying the
  instructions, image bounds and `model_version` (sha256 of the weights) for the clients.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from encoder.qwen3vl import PROCESSOR_FILES, load_qwen3vl, weights_version
from encoder.qwen3vl_config import CONFIG_FILE, Qwen3VLEncoderConfig, default_dims

# Files copied as they are from a full-weights checkpoint (weights, tokenizer, processor configs).
_COPY_SUFFIXES = (".safetensors", ".json", ".jinja", ".txt", ".model", ".tiktoken")
_SKIP = {CONFIG_FILE, "modules.json", "training_state.json", "optimizer.pt", "trainer_state.json"}


class ExportError(ValueError):
    """The checkpoint cannot be exported for vLLM; the message says why."""


def _checkpoint_kind(folder: Path) -> str:
    """'qwen3vl-lora', 'qwen3vl' or raise ExportError naming what the folder is."""
    if not folder.is_dir():
        raise ExportError(f"no checkpoint folder at {folder}")
    if (folder / "adapter_config.json").is_file():
        return "qwen3vl-lora"
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise ExportError(f"{folder} has no config.json: not a checkpoint")
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ExportError(f"{config_path} is not valid JSON: {e.msg}") from e
    if config.get("backbone") == "compact":
        raise ExportError(
            f"{folder} is a compact-backbone checkpoint: it runs in-process and cannot be served by vLLM; "
            "only Qwen3-VL checkpoints are exported"
        )
    if config.get("model_type") != "qwen3_vl":
        raise ExportError(f"{folder} holds model_type {config.get('model_type')!r}; only 'qwen3_vl' is exported")
    if not any(folder.glob("*.safetensors")):
        raise ExportError(f"{folder} has no .safetensors weights")
    return "qwen3vl"


def vllm_config(config: dict, dims: tuple[int, ...]) -> dict:
    """A Qwen3-VL config.json dict with the Matryoshka declaration and the MRoPE flag vLLM needs."""
    hidden = config["text_config"]["hidden_size"]
    if dims[-1] != hidden:
        raise ExportError(f"dims {dims} must end at the model's hidden size {hidden}")
    config = json.loads(json.dumps(config))  # deep copy
    config["is_matryoshka"] = True
    config["matryoshka_dimensions"] = list(dims)
    text = config["text_config"]
    for key in ("rope_parameters", "rope_scaling"):  # transformers >= 5 / 4.x spelling
        if isinstance(text.get(key), dict) and "mrope_section" in text[key]:
            text[key]["mrope_interleaved"] = True
    return config


def _write_sentence_transformers_pooling(out: Path, dim: int) -> None:
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
    ]
    (out / "modules.json").write_text(json.dumps(modules, indent=2) + "\n")
    (out / "1_Pooling").mkdir(exist_ok=True)
    pooling = {
        "word_embedding_dimension": dim,
        "pooling_mode_cls_token": False,
        "pooling_mode_mean_tokens": False,
        "pooling_mode_max_tokens": False,
        "pooling_mode_mean_sqrt_len_tokens": False,
        "pooling_mode_weightedmean_tokens": False,
        "pooling_mode_lasttoken": True,
        "include_prompt": True,
    }
    (out / "1_Pooling" / "config.json").write_text(json.dumps(pooling, indent=2) + "\n")
    (out / "2_Normalize").mkdir(exist_ok=True)


def export_checkpoint(checkpoint: Path, out: Path, *, overwrite: bool = False) -> Path:
    """Export a UniNote Qwen3-VL checkpoint (or plain Qwen3-VL base weights) to `out` for vLLM.

    Returns `out`. Raises ExportError (a ValueError) when `checkpoint` is not a Qwen3-VL checkpoint (the
    compact backbone included) or `out` exists and is not empty without `overwrite`; ImportError when a
    LoRA checkpoint needs peft.
    """
    checkpoint, out = Path(checkpoint), Path(out)
    kind = _checkpoint_kind(checkpoint)
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise ExportError(f"{out} exists and is not empty (pass overwrite=True to replace it)")
        if out.resolve() == checkpoint.resolve():
            raise ExportError("export folder must differ from the checkpoint folder")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)

    if kind == "qwen3vl-lora":
        embedder = load_qwen3vl(checkpoint)
        merged = embedder.peft_model.merge_and_unload()
        merged.save_pretrained(out)
        embedder.tokenizer.save_pretrained(out)
        for name in PROCESSOR_FILES:
            if (checkpoint / name).is_file():
                shutil.copy2(checkpoint / name, out / name)
        cfg = embedder.config
    else:
        for f in sorted(checkpoint.iterdir()):
            if f.is_file() and f.suffix in _COPY_SUFFIXES and f.name not in _SKIP:
                shutil.copy2(f, out / f.name)
        try:
            cfg = Qwen3VLEncoderConfig.load(checkpoint)
        except FileNotFoundError:  # base weights: the defaults, dims from the hidden size
            hidden = json.loads((checkpoint / "config.json").read_text())["text_config"]["hidden_size"]
            cfg = Qwen3VLEncoderConfig(dims=default_dims(hidden))
    (out / "generation_config.json").unlink(missing_ok=True)
    (out / "adapter_config.json").unlink(missing_ok=True)

    config = json.loads((out / "config.json").read_text(encoding="utf-8"))
    (out / "config.json").write_text(json.dumps(vllm_config(config, cfg.dims), indent=2) + "\n", encoding="utf-8")
    _write_sentence_transformers_pooling(out, cfg.dim)
    cfg_out = Qwen3VLEncoderConfig.from_dict(cfg.to_dict() | {"lora": False})
    cfg_out.save(out, model_version=weights_version(out))
    return out


def export_version(folder: Path) -> str:
    """The model_version recorded by export_checkpoint in folder/uninote.json (else hashed now)."""
    try:
        recorded = json.loads((Path(folder) / CONFIG_FILE).read_text(encoding="utf-8")).get("model_version")
    except (OSError, ValueError):
        recorded = None
    return recorded or weights_version(folder)
