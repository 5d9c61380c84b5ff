"""Service settings, from the environment (prefix BAZKHORD_) or a .env file."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BAZKHORD_", env_file=".env", extra="ignore")

    model: str = Field("sample", description="model name (its LATEST version), name@version, or a folder path")
    models_dir: Path = Path("artifacts/models")
    max_texts_per_request: int = Field(64, ge=1, le=10_000)
    max_chars_per_text: int = Field(5_000, ge=1, le=100_000)
    max_body_bytes: int = Field(2_000_000, ge=1_000)
    max_theme_items: int = Field(2_000, ge=1, le=100_000, description="comments per POST /v1/themes")
    log_level: str = "INFO"
