"""API schemas (camelCase on the wire) and the conversions from database rows."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel


class ApiModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class UploadInit(ApiModel):
    filename: str = Field(min_length=1, max_length=4096)
    size: int = Field(ge=0)
    content_type: str | None = Field(None, max_length=255)
    sha256: str | None = None


class UploadOut(ApiModel):
    upload_id: str
    filename: str
    size: int
    content_type: str | None
    sha256: str | None
    received_bytes: int
    status: str
    error: str | None
    chunk_size: int
    created_at: datetime
    completed_at: datetime | None
    thumbnail_url: str | None
    download_url: str | None
    media: dict[str, Any] | None


class UploadList(ApiModel):
    uploads: list[UploadOut]
    total: int
    limit: int
    offset: int


class JobCreate(ApiModel):
    upload_id: str
    model: str | None = None
    options: dict[str, Any] | None = None


class JobOut(ApiModel):
    job_id: str
    upload_id: str
    model: str
    provider: str
    options: dict[str, Any]
    status: str
    stage: str | None
    progress: float
    frames_done: int | None
    frames_total: int | None
    fps: float | None
    eta_seconds: float | None
    error: str | None
    attempt: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    elapsed_seconds: float | None
    prediction_id: str | None
    predict_time: float | None
    cost_estimate: float | None
    output_size: int | None
    output_width: int | None
    output_height: int | None
    retry_of: str | None
    download_url: str | None


class JobList(ApiModel):
    jobs: list[JobOut]


class ModelOut(ApiModel):
    key: str
    title: str
    provider: str
    available: bool
    unavailable_reason: str | None
    scales: list[int]
    resolutions: list[str]
    default_resolution: str | None
    hint: str
    paid: bool
    is_default: bool


class ModelList(ApiModel):
    models: list[ModelOut]
