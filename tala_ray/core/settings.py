"""Run-time settings, read from the environment once, when asked for (no import-time side effects)."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Where things live. Every field can be set with a `TALA_` environment variable."""

    model_config = SettingsConfigDict(env_prefix="TALA_", extra="ignore")

    data_root: str = Field("data", description="Root for generated worlds and feature tables (path or URI).")
    registry_uri: str = Field("registry", description="Model registry root (local path, s3:// or gs:// URI).")
    runs_root: str = Field("runs", description="Where Ray Tune keeps experiment state (for --resume).")
    ray_address: str | None = Field(
        None, description="Ray cluster to join; unset starts a local cluster (RAY_ADDRESS is honoured too)."
    )
    num_cpus: int | None = Field(None, description="CPUs for a local cluster started by the program.")
    stream_url: str | None = Field(
        None,
        description="Valkey/Redis server of the event stream and online store (redis://host:port/db); "
        "unset starts an embedded server on loopback.",
    )
    stream_dir: str = Field("stream", description="Local data directory of the embedded stream server.")
    signing_key: str | None = Field(
        None,
        description="Ed25519 private key (PEM) that signs registered manifests: the training job's; "
        "unset: the local development key ~/.tala-ray/keys/signing.key, created on first use.",
    )
    trusted_keys: str | None = Field(
        None,
        description="Comma-separated Ed25519 public keys (PEM) whose manifest signatures loaders accept; "
        "unset: the local development public key ~/.tala-ray/keys/signing.pub.",
    )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings."""
    return Settings()
