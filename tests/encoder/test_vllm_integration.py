"""The GPU path end to end, on CPU with the tiny random Qwen3-VL: train two stage-1 steps, export, serve
with vLLM (`.venv-vllm`, pooling runner), and check that vLLM's vectors equal the in-process transformers
vectors (cosine >= 0.999) for a text, an image, a crop and a multi-image note; that `dimensions=64` is
the truncated, renormalised prefix; then index real notes through the worker path with VLLMEncoder and
find a planted copy. Slow (~1-2 min server start, ~3 GB RAM); skips without .venv-vllm unless CI=true."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from tiny_qwen3vl import copy_checkpoint, photos, require_vllm_venv, sample_notes

from encoder.export import export_checkpoint
from encoder.qwen3vl_config import Qwen3VLEncoderConfig
from encoder.qwen3vl_elements import note_elements
from encoder.qwen3vl_encoder import Qwen3VLEncoder
from encoder.types import ElementKind, matryoshka_prefix
from encoder.vllm_encoder import VLLMEncoder, VLLMRequestError
from encoder.vllm_server import VLLMServerConfig, start_server
from tests.training.sft_support import qwen3vl_task
from training.trainer import Trainer, TrainerConfig

pytestmark = pytest.mark.slow

GROCERY = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "grocery"


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(export folder, running server, in-process encoder of the export), after 2 stage-1 steps (SFTTask on the
    Trainer, real photos and reviews)."""
    python = require_vllm_venv()
    torch.set_num_threads(2)
    root = tmp_path_factory.mktemp("vllm")
    task, sampler = qwen3vl_task(str(copy_checkpoint(root / "start")), str(root / "corpus"))
    Trainer(task, TrainerConfig(steps=2, lr=2e-3, warmup_steps=1, progress=False), root / "run").fit(sampler)
    checkpoint = task.backbone.save(root / "trained")
    export = export_checkpoint(checkpoint, root / "export")
    config = VLLMServerConfig(port=None, python=python, dtype="float32", max_model_len=4096)
    with start_server(export, config, timeout_s=420, log_path=root / "vllm.log") as server:
        yield export, server, Qwen3VLEncoder.from_checkpoint(export)


@pytest.fixture(scope="module")
def client(served):
    export, server, _ = served
    with VLLMEncoder(server.url, config=Qwen3VLEncoderConfig.load(export), concurrency=4) as enc:
        yield enc


def test_trained_weights_are_served(served):
    export, server, local = served
    base = Qwen3VLEncoder.from_checkpoint(copy_checkpoint(export.parent / "untrained"))
    assert local.model_version != base.model_version
    assert server.model == f"uninote-{local.model_version}"


def test_vllm_vectors_equal_transformers_vectors(served, client):
    _, _, local = served
    cfg = local.config
    global_conv, elements = note_elements(sample_notes()[1], cfg)  # two images + Chinese text
    pick = {
        "text": next(e for e in elements if e.kind == ElementKind.BODY).conversation,
        "image": next(e for e in elements if e.kind == ElementKind.IMAGE).conversation,
        "crop": next(e for e in elements if e.kind == ElementKind.CROP).conversation,
        "multi-image note": global_conv,
    }
    assert len(pick["multi-image note"].images) == 2
    remote = client.embed_conversations(list(pick.values()))  # (4, D)
    reference = local.embedder.embed(list(pick.values())).numpy()  # (4, D)
    cosines = dict(zip(pick, (remote * reference).sum(axis=1)))
    assert all(c >= 0.999 for c in cosines.values()), cosines


def test_encode_agrees_element_by_element(served, client):
    _, _, local = served
    notes = sample_notes()
    remote, reference = client.encode(notes), local.encode(notes)
    assert client.model_version == local.model_version and client.dims == local.dims == (64, 128)
    for r, l in zip(remote, reference):
        assert r.model_version == l.model_version
        assert float(r.global_vector @ l.global_vector) >= 0.999
        assert [(v.kind, v.index, v.image_index, v.box, v.text) for v in r.locals] == \
               [(v.kind, v.index, v.image_index, v.box, v.text) for v in l.locals]
        assert min(float(a.vector @ b.vector) for a, b in zip(r.locals, l.locals)) >= 0.999


def test_matryoshka_dimensions_are_the_renormalised_prefix(served, client):
    convs = [note_elements(n, client.config)[0] for n in sample_notes()]
    full = client.embed_conversations(convs)  # (3, 128)
    small = client.embed_conversations(convs, dimensions=64)  # (3, 64)
    assert small.shape == (3, 64)
    np.testing.assert_allclose(small, matryoshka_prefix(full, 64), atol=1e-4)
    with pytest.raises(VLLMRequestError, match="Matryoshka"):
        client.embed_conversations(convs[:1], dimensions=32)


def _real_photos(n: int) -> list[Path | Image.Image]:
    """n real photos: grocery photos of different products when ../shared/data is there, else skimage."""
    train = GROCERY / "dataset" / "train.txt"
    if train.is_file():
        seen, out = set(), []
        for line in train.read_text().splitlines():
            rel = line.split(",")[0].strip()
            if Path(rel).parent.name not in seen:
                seen.add(Path(rel).parent.name)
                out.append(GROCERY / "dataset" / rel)
            if len(out) == n:
                return out
    return photos("astronaut", "coffee", "chelsea", "rocket", "camera", "brick")[:n]


@pytest.mark.services
def test_worker_indexes_through_vllm_and_finds_a_planted_copy(served, tmp_path: Path, redis_url: str):
    """A real Celery worker process (Redis broker) whose settings carry ENCODER_URL: load_encoder gives it a
    VLLMEncoder; submit_notes queues index_notes_task; after the worker stops, Library.check (VLLMEncoder
    too) finds the planted copy's original at rank 1."""
    from app.library import Library
    from app.notes import Note, write_notes
    from app.records import registry
    from app.settings import Settings
    from worker_process import WORKER_START_TIMEOUT_S, start_worker, stop_worker, wait_for
    from workers.backfill import job_sessions
    from workers.celery_app import app, configure
    from workers.submit import submit_notes

    export, server, _ = served
    folder = tmp_path / "notes"
    (folder / "images").mkdir(parents=True)
    notes = []
    for i, photo in enumerate(_real_photos(6)):
        image = Image.open(photo).convert("RGB") if isinstance(photo, Path) else photo
        path = folder / "images" / f"p{i}.jpg"
        image.save(path, quality=90)
        notes.append(Note(note_id=f"p{i}", title=f"Product {i}", body=f"Photo number {i} of our shop.", images=[path]))
    write_notes(notes, folder)

    settings = Settings(UNINOTE_HOME=tmp_path / "home", ocr_enabled=False, encoder_url=server.url,
                        encoder_model=server.model, checkpoint=export, encoder_concurrency=4,
                        celery_broker_url=redis_url, celery_result_backend=redis_url)
    configure(app, settings)
    worker = start_worker(settings, tmp_path / "worker.log", "vllm")
    try:
        submission = submit_notes(folder, settings=settings)
        assert sorted(submission.queued) == [n.note_id for n in notes]
        sessions = job_sessions(settings)

        def all_indexed():
            with sessions() as s:
                return registry.count_by_status(s)["indexed"] == len(notes)
        wait_for(all_indexed, f"{len(notes)} notes indexed through vLLM", worker, tmp_path / "worker.log",
                 WORKER_START_TIMEOUT_S)
    finally:
        stop_worker(worker)
        configure(app, Settings(UNINOTE_HOME=tmp_path / "home"))  # back to in-process mode

    library = Library.open(settings)  # the worker has released the local Qdrant folder
    try:
        assert isinstance(library.encoder, VLLMEncoder)
        assert library.store.count_notes() == len(notes)
        original = Image.open(folder / "images" / "p3.jpg")
        w, h = original.size
        buf = io.BytesIO()
        original.crop((int(0.04 * w), int(0.04 * h), int(0.97 * w), int(0.96 * h))).save(buf, "JPEG", quality=60)
        copy_path = tmp_path / "copy.jpg"
        copy_path.write_bytes(buf.getvalue())
        planted = Note(note_id="copy-of-p3", title="Product 3", body="Photo number 3 of our shop!", images=[copy_path])
        report = library.check(planted, save=False)
        assert report.matches and report.matches[0].note_id == "p3", json.dumps(report.to_dict())[:1000]
    finally:
        library.close()
