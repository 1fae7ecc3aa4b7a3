"""VLLMEncoder: the Encoder protocol over vLLM's OpenAI-compatible `POST /v1/embeddings` (pooling runner).

Every element is one chat conversation (system = the element kind's instruction, user = its images as
base64 PNG data URIs, then its text), built by encoder.qwen3vl_elements exactly as the in-process
Qwen3-VL encoder builds them, so both give the same vectors (cosine >= 0.999, tested). The whole note is
one conversation with all its images and text. Conversations are batched (`"messages": [[...], [...]]`,
up to batch_size per request), requests run on a bounded thread pool (concurrency), each with a timeout
and retries with exponential backoff on connection errors, timeouts, 429 and 5xx.

Errors: VLLMUnavailableError (server down: names the URL), VLLMRequestError (4xx: the server's message),
VLLMResponseError (bad shape: says what came back). Source: vLLM docs, "Pooling models" / embeddings API.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Sequence

import httpx
import numpy as np

from encoder.qwen3vl_config import Qwen3VLEncoderConfig, default_dims, is_qwen3vl_checkpoint
from encoder.qwen3vl_elements import assemble, flatten, note_elements
from encoder.qwen3vl_inputs import Conversation, openai_image_part
from encoder.types import EncodedNote, NoteInput

if TYPE_CHECKING:
    from app.settings import Settings

RETRY_STATUS = {408, 429, 500, 502, 503, 504}


class VLLMError(RuntimeError):
    """Base class of the vLLM client's errors."""


class VLLMUnavailableError(VLLMError, ConnectionError):
    """The server could not be reached (or kept failing) after all retries. A ConnectionError, so the
    workers retry it as transient (workers/failures.py)."""


class VLLMRequestError(VLLMError):
    """The server rejected a request (HTTP 4xx other than 408/429)."""


class VLLMResponseError(VLLMError):
    """The server answered 200 with something that is not the expected embeddings."""


class VLLMEncoder:
    """Encoder over a vLLM embedding server.

    url: base URL (http://127.0.0.1:8000), with or without a trailing /v1.
    model: served model name; None = the first model of GET /v1/models.
    config: instructions, image bounds, crop boxes and text pieces: must match the served export's
        uninote.json (load it with Qwen3VLEncoderConfig.load(folder)); default = the defaults.
    timeout_s: per HTTP request; concurrency: requests in flight; batch_size: conversations per request;
    max_retries / backoff_s: retries after the first try, waiting backoff_s * 2**k.
    dims: Matryoshka dims; None = config.dims when its last dim matches the server's vector size, else
        derived from that size (default_dims). model_version: the weights' version: `uninote-<v>` served
        names give `<v>` (the same as the in-process encoder of those weights), else the model name.
    """

    def __init__(
        self,
        url: str,
        model: str | None = None,
        *,
        config: Qwen3VLEncoderConfig | None = None,
        timeout_s: float = 60.0,
        concurrency: int = 8,
        batch_size: int | None = None,
        max_retries: int = 3,
        backoff_s: float = 0.5,
        client: httpx.Client | None = None,
    ):
        if not url or not url.startswith(("http://", "https://")):
            raise ValueError(f"encoder URL must start with http:// or https://, got {url!r}")
        if concurrency < 1 or max_retries < 0 or timeout_s <= 0 or backoff_s < 0:
            raise ValueError("need concurrency >= 1, max_retries >= 0, timeout_s > 0, backoff_s >= 0")
        base = url.rstrip("/")
        self.url = base[: -len("/v1")] if base.endswith("/v1") else base
        self.config = config or Qwen3VLEncoderConfig()
        self.batch_size = batch_size or self.config.batch_size
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        self.timeout_s, self.concurrency = float(timeout_s), int(concurrency)
        self.max_retries, self.backoff_s = int(max_retries), float(backoff_s)
        self._client = client or httpx.Client(
            timeout=httpx.Timeout(self.timeout_s, connect=min(10.0, self.timeout_s)),
            limits=httpx.Limits(max_connections=self.concurrency, max_keepalive_connections=self.concurrency),
        )
        self._model = model
        self._dims: tuple[int, ...] | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: "Settings") -> "VLLMEncoder":
        """From ENCODER_URL, ENCODER_MODEL, ENCODER_TIMEOUT_S, ENCODER_CONCURRENCY; the element config from
        CHECKPOINT's uninote.json when CHECKPOINT is a Qwen3-VL checkpoint/export. Raises ValueError
        when ENCODER_URL is unset."""
        if not settings.encoder_url:
            raise ValueError("ENCODER_URL is not set: the vLLM encoder needs the embedding server's URL")
        config = None
        if settings.checkpoint is not None and is_qwen3vl_checkpoint(settings.checkpoint):
            config = Qwen3VLEncoderConfig.load(settings.checkpoint)
        return cls(
            settings.encoder_url,
            settings.encoder_model,
            config=config,
            timeout_s=settings.encoder_timeout_s,
            concurrency=settings.encoder_concurrency,
        )

    # -- protocol attributes -------------------------------------------------------------------------
    @property
    def model(self) -> str:
        """The served model name (asked of GET /v1/models once when not given)."""
        with self._lock:
            if self._model is None:
                body = self._request("GET", "/v1/models")
                try:
                    self._model = str(body["data"][0]["id"])
                except (KeyError, IndexError, TypeError) as e:
                    raise VLLMResponseError(f"{self.url}/v1/models returned no model list: {str(body)[:200]}") from e
            return self._model

    @property
    def model_version(self) -> str:
        name = self.model
        return name.removeprefix("uninote-")

    @property
    def dims(self) -> tuple[int, ...]:
        """Matryoshka dims, ascending; the last = the server's vector size (probed once)."""
        if self._dims is None:
            probe = self.embed_conversations([Conversation(self.config.instructions["title"], text="dims")])
            d = probe.shape[1]
            self._dims = self.config.dims if self.config.dim == d else default_dims(d)
        return self._dims

    # -- encoding --------------------------------------------------------------------------------------
    def encode(self, notes: Sequence[NoteInput]) -> list[EncodedNote]:
        """Notes -> one global vector (the whole note, one conversation) and one vector per local element.

        Vectors are (D,) float32, L2-normalised. Raises InputError for an empty note or unusable image,
        VLLMError subclasses for server failures.
        """
        plans = [note_elements(note, self.config) for note in notes]
        conversations = flatten(plans)
        vectors = self.embed_conversations(conversations)  # (N, D)
        if self._dims is None:
            d = vectors.shape[1]
            self._dims = self.config.dims if self.config.dim == d else default_dims(d)
        return assemble(list(notes), plans, vectors, self.model_version)

    def embed_conversations(self, conversations: Sequence[Conversation], dimensions: int | None = None) -> np.ndarray:
        """(N,) conversations -> (N, D) float32, L2-normalised (D = `dimensions` when given: the server's
        truncated, renormalised Matryoshka prefix). Raises VLLMError subclasses."""
        if not conversations:
            return np.zeros((0, self._dims[-1] if self._dims else 0), dtype=np.float32)
        batches = [conversations[i : i + self.batch_size] for i in range(0, len(conversations), self.batch_size)]
        model = self.model
        if len(batches) == 1:
            results = [self._embed_batch(batches[0], model, dimensions)]
        else:
            with ThreadPoolExecutor(max_workers=min(self.concurrency, len(batches))) as pool:
                results = list(pool.map(lambda b: self._embed_batch(b, model, dimensions), batches))
        dims = {r.shape[1] for r in results}
        if len(dims) != 1:
            raise VLLMResponseError(f"{self.url} returned vectors of different sizes {sorted(dims)} across requests")
        return np.concatenate(results, axis=0)

    def _embed_batch(self, batch: Sequence[Conversation], model: str, dimensions: int | None) -> np.ndarray:
        payload: dict[str, Any] = {
            "model": model,
            "messages": [c.messages(openai_image_part) for c in batch],
            "add_generation_prompt": True,  # the in-process encoder's template choice (last token pooled)
            "encoding_format": "float",
        }
        if dimensions is not None:
            payload["dimensions"] = int(dimensions)
        body = self._request("POST", "/v1/embeddings", payload)
        return self._parse_embeddings(body, len(batch), dimensions)

    def _parse_embeddings(self, body: Any, n: int, dimensions: int | None) -> np.ndarray:
        where = f"{self.url}/v1/embeddings"
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, list):
            raise VLLMResponseError(f"{where} returned no 'data' list: {str(body)[:200]}")
        if len(data) != n:
            raise VLLMResponseError(f"{where} returned {len(data)} embeddings for {n} inputs")
        try:
            ordered = sorted(data, key=lambda d: int(d["index"]))
            rows = [d["embedding"] for d in ordered]
            if sorted(int(d["index"]) for d in ordered) != list(range(n)):
                raise ValueError("indexes are not 0..n-1")
            if not all(isinstance(r, list) for r in rows):
                raise ValueError("an embedding is not a list of floats")
            lengths = {len(r) for r in rows}
            if len(lengths) != 1:
                raise ValueError(f"embeddings of different lengths {sorted(lengths)}")
            vectors = np.asarray(rows, dtype=np.float32)  # (n, D)
        except (KeyError, TypeError, ValueError) as e:
            raise VLLMResponseError(f"{where} returned malformed embeddings ({e}): {str(data)[:200]}") from e
        if vectors.ndim != 2 or vectors.shape[1] == 0:
            raise VLLMResponseError(f"{where} returned embeddings of shape {vectors.shape}")
        if dimensions is not None and vectors.shape[1] != dimensions:
            raise VLLMResponseError(f"{where} returned dim {vectors.shape[1]}, asked for dimensions={dimensions}")
        if self._dims is not None and dimensions is None and vectors.shape[1] != self._dims[-1]:
            raise VLLMResponseError(f"{where} returned dim {vectors.shape[1]}, expected {self._dims[-1]}")
        if not np.isfinite(vectors).all():
            raise VLLMResponseError(f"{where} returned non-finite values")
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)  # (n, 1)
        if (norms < 1e-6).any():
            raise VLLMResponseError(f"{where} returned a zero vector")
        return (vectors / norms).astype(np.float32)

    def _request(self, method: str, path: str, payload: dict | None = None) -> Any:
        """One HTTP call with retries (exponential backoff) on transport errors, 408/429/5xx."""
        url = self.url + path
        last: str = ""
        last_exc: BaseException | None = None
        for attempt in range(self.max_retries + 1):
            if attempt:
                time.sleep(self.backoff_s * 2 ** (attempt - 1))
            try:
                response = self._client.request(method, url, json=payload)
            except httpx.TimeoutException as e:
                last, last_exc = f"timed out after {self.timeout_s:g} s ({type(e).__name__})", e
                continue
            except httpx.TransportError as e:
                last, last_exc = f"{type(e).__name__}: {e}", e
                continue
            if response.status_code in RETRY_STATUS:
                last = f"HTTP {response.status_code}: {response.text[:200]}"
                continue
            if response.status_code >= 400:
                raise VLLMRequestError(
                    f"vLLM server at {self.url} rejected {method} {path} (HTTP {response.status_code}): "
                    f"{_error_message(response)}"
                )
            try:
                return response.json()
            except ValueError as e:
                raise VLLMResponseError(f"{url} returned non-JSON ({response.text[:200]!r})") from e
        raise VLLMUnavailableError(
            f"vLLM embedding server at {self.url} is unavailable after {self.max_retries + 1} attempts: {last}"
        ) from last_exc

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> "VLLMEncoder":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _error_message(response: httpx.Response) -> str:
    try:
        body = response.json()
        return str(body.get("error", {}).get("message") or body)[:500]
    except (ValueError, AttributeError):
        return response.text[:500]

