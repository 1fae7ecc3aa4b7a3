"""encoder/export.py: a Qwen3-VL checkpoint -> the folder vLLM serves (Matryoshka config, MRoPE flag,
last-token pooling modules, recorded model version), and clear refusals for what cannot be exported."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from tiny_qwen3vl import copy_checkpoint, sample_notes, tiny_checkpoint

from encoder.export import ExportError, export_checkpoint, export_version
from encoder.qwen3vl import load_qwen3vl, weights_version
from encoder.qwen3vl_elements import note_elements
from encoder.vllm_server import is_export


def test_export_declares_what_vllm_needs(tmp_path: Path):
    out = export_checkpoint(tiny_checkpoint(), tmp_path / "export")
    config = json.loads((out / "config.json").read_text())
    assert config["is_matryoshka"] is True and config["matryoshka_dimensions"] == [64, 128]
    assert config["text_config"]["rope_parameters"]["mrope_interleaved"] is True
    modules = json.loads((out / "modules.json").read_text())
    assert [m["type"].rsplit(".", 1)[-1] for m in modules] == ["Transformer", "Pooling", "Normalize"]
    assert json.loads((out / "1_Pooling" / "config.json").read_text())["pooling_mode_lasttoken"] is True
    for name in ("tokenizer.json", "chat_template.jinja", "preprocessor_config.json", "video_preprocessor_config.json"):
        assert (out / name).is_file(), name
    uninote = json.loads((out / "uninote.json").read_text())
    assert uninote["model_version"] == weights_version(out) == export_version(out)
    assert is_export(out) and not is_export(tiny_checkpoint())


def test_exported_vectors_equal_the_checkpoint_vectors(tmp_path: Path):
    torch.set_num_threads(2)
    out = export_checkpoint(tiny_checkpoint(), tmp_path / "export")
    a, b = load_qwen3vl(tiny_checkpoint()), load_qwen3vl(out)
    assert a.config == b.config
    global_conv, elements = note_elements(sample_notes()[1], a.config)
    convs = [global_conv, elements[0].conversation]
    assert torch.allclose(a.embed(convs), b.embed(convs), atol=1e-6)


def test_export_refuses_what_it_cannot_serve(tmp_path: Path):
    compact = tmp_path / "compact"
    compact.mkdir()
    (compact / "config.json").write_text(json.dumps({"backbone": "compact", "dims": [64, 128, 256, 512]}))
    with pytest.raises(ExportError, match="compact-backbone checkpoint"):
        export_checkpoint(compact, tmp_path / "out1")
    other = tmp_path / "bert"
    other.mkdir()
    (other / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(ExportError, match="model_type 'bert'"):
        export_checkpoint(other, tmp_path / "out2")
    with pytest.raises(ExportError, match="no checkpoint folder"):
        export_checkpoint(tmp_path / "missing", tmp_path / "out3")
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("x")
    with pytest.raises(ExportError, match="not empty"):
        export_checkpoint(tiny_checkpoint(), busy)
    assert (busy / "keep.txt").is_file()


def test_export_of_base_weights_without_uninote_json_uses_defaults(tmp_path: Path):
    base = copy_checkpoint(tmp_path / "base")
    (base / "uninote.json").unlink()
    out = export_checkpoint(base, tmp_path / "export")
    uninote = json.loads((out / "uninote.json").read_text())
    assert uninote["dims"] == [64, 128] and uninote["min_pixels"] == 256 * 256
