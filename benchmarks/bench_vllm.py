"""Embeddings/s of the Qwen3-VL UniNote encoder: through vLLM's pooling server (HTTP, VLLMEncoder) vs
in-process transformers (Qwen3VLEmbedder), same model, same inputs, same run. Run by hand:

    bash scripts/setup_vllm_venv.sh            # once
    .venv/bin/python benchmarks/bench_vllm.py  # tiny random Qwen3-VL on CPU (default)
    .venv/bin/python benchmarks/bench_vllm.py --checkpoint /models/uninote-qwen3vl-8b-export --dtype bfloat16

Prints a table: workload, route, embeddings/s, ratio to the in-process baseline. Inputs are real photos
(skimage.data) as image elements, crops, and whole notes (2 images + text), plus text elements.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch


def _workloads(config):
    import warnings

    import numpy as np
    import skimage.data
    from PIL import Image

    from encoder.qwen3vl_elements import note_elements
    from encoder.types import ElementKind, NoteInput

    names = ["astronaut", "coffee", "chelsea", "rocket", "camera", "brick", "coins", "clock"]
    images = []
    for name in names:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            a = getattr(skimage.data, name)()
        a = np.stack([a] * 3, -1) if a.ndim == 2 else a[..., :3]
        images.append(Image.fromarray(a).convert("RGB"))
    notes = [NoteInput(f"n{i}", title=f"Product {i}", body="Fresh, organic and cheap. 两个一起买更便宜。",
                       images=[images[i], images[(i + 1) % len(images)]]) for i in range(len(images))]
    plans = [note_elements(n, config) for n in notes]
    by_kind = lambda kind: [e.conversation for _, els in plans for e in els if e.kind == kind]  # noqa: E731
    return {
        "text (title/body)": (by_kind(ElementKind.TITLE) + by_kind(ElementKind.BODY)) * 4,
        "image": by_kind(ElementKind.IMAGE) * 2,
        "crop": by_kind(ElementKind.CROP),
        "whole note (2 images)": [g for g, _ in plans] * 2,
    }


def _rate(fn, n: int, repeats: int) -> float:
    fn()  # warm-up
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return n / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, help="Qwen3-VL checkpoint or export (default: tiny random)")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--threads", type=int, default=2, help="torch threads of the in-process route")
    parser.add_argument("--concurrency", type=int, default=8, help="HTTP requests in flight")
    parser.add_argument("--batch-size", type=int, default=8, help="conversations per request / forward")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from dataclasses import replace

    from encoder.export import export_checkpoint
    from encoder.qwen3vl import load_qwen3vl
    from encoder.qwen3vl_config import Qwen3VLEncoderConfig
    from encoder.qwen3vl_tiny import build_tiny_qwen3vl
    from encoder.vllm_encoder import VLLMEncoder
    from encoder.vllm_server import VLLMServerConfig, is_export, start_server

    with tempfile.TemporaryDirectory(prefix="bench-vllm-") as tmp:
        checkpoint = args.checkpoint or build_tiny_qwen3vl(Path(tmp) / "tiny")
        export = checkpoint if is_export(checkpoint) else export_checkpoint(checkpoint, Path(tmp) / "export")
        config = replace(Qwen3VLEncoderConfig.load(export), batch_size=args.batch_size)
        embedder = load_qwen3vl(export, config)
        workloads = _workloads(config)
        rows = []
        for name, convs in workloads.items():
            rows.append((name, "transformers in-process", len(convs),
                         _rate(lambda c=convs: embedder.embed(c), len(convs), args.repeats)))
        embedder = None  # free the in-process model before the server starts
        t = time.perf_counter()
        server_config = VLLMServerConfig(port=None, dtype=args.dtype)
        with start_server(export, server_config, log_path=Path(tmp) / "vllm.log") as server:
            ready_s = time.perf_counter() - t
            with VLLMEncoder(server.url, config=config, concurrency=args.concurrency,
                             batch_size=args.batch_size) as client:
                for name, convs in workloads.items():
                    rows.append((name, f"vLLM HTTP (c={args.concurrency})", len(convs),
                                 _rate(lambda c=convs: client.embed_conversations(c), len(convs), args.repeats)))
    baseline = {name: rate for name, route, _, rate in rows if route.startswith("transformers")}
    print(f"\nvLLM server ready in {ready_s:.0f} s; torch threads (in-process) = {args.threads}; "
          f"batch size {args.batch_size}; best of {args.repeats}\n")
    print(f"| {'workload':<22} | {'route':<26} | {'n':>4} | {'emb/s':>8} | {'vs in-process':>13} |")
    print(f"|{'-' * 24}|{'-' * 28}|{'-' * 6}|{'-' * 10}|{'-' * 15}|")
    for name, route, n, rate in sorted(rows, key=lambda r: (list(workloads).index(r[0]), r[1])):
        print(f"| {name:<22} | {route:<26} | {n:>4} | {rate:>8.1f} | {rate / baseline[name]:>12.2f}x |")


if __name__ == "__main__":  # vLLM's engine spawns processes: keep the guard
    main()
