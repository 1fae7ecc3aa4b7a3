"""encoder/vllm_server.py without starting vLLM: the command line, the vLLM interpreter lookup, errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from encoder.vllm_server import (
    VLLMServerConfig, VLLMServerError, server_command, vllm_python, wait_ready,
)


def test_command_serves_the_export_as_a_last_token_pooling_model(tmp_path: Path):
    cfg = VLLMServerConfig(python=Path(sys.executable), max_model_len=4096, dtype="float32",
                           extra_args=("--tensor-parallel-size", "1"))
    cmd = server_command(tmp_path, cfg, 8123, "uninote-abc")
    assert cmd[:3] == [sys.executable, "-m", "vllm.entrypoints.openai.api_server"]
    args = dict(zip(cmd[3::1], cmd[4::1]))
    assert args["--model"] == str(tmp_path) and args["--served-model-name"] == "uninote-abc"
    assert args["--runner"] == "pooling" and args["--host"] == "127.0.0.1" and args["--port"] == "8123"
    assert json.loads(args["--pooler-config"]) == {"seq_pooling_type": "LAST", "use_activation": True}
    assert json.loads(args["--limit-mm-per-prompt"]) == {"image": 9, "video": 0}
    assert args["--dtype"] == "float32" and args["--max-model-len"] == "4096"
    assert cmd[-2:] == ["--tensor-parallel-size", "1"]


def test_missing_vllm_python_is_named(tmp_path: Path):
    with pytest.raises(VLLMServerError, match="does not exist"):
        vllm_python(tmp_path / "no-python")


def test_a_server_that_dies_reports_its_log(tmp_path: Path):
    log = tmp_path / "server.log"
    log.write_text("ValueError: something vLLM said\n")
    process = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    process.wait()
    with pytest.raises(VLLMServerError, match="exited with code 3(.|\n)*something vLLM said"):
        wait_ready("http://127.0.0.1:9", process, log, timeout_s=5)
