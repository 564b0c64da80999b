"""A fake Replicate API on 127.0.0.1 for tests: the HTTP subset the official ``replicate`` client uses.

Point the real client at it with ``REPLICATE_BASE_URL=fake.url`` and ``REPLICATE_API_TOKEN=fake.token``;
nothing in SkyFrame or the client is patched. Predictions do real work (download the input, rescale it
with PyAV, serve the output), send Standard Webhooks-signed webhooks, and every behaviour a test may need
to provoke (failures, 429s, slow steps, removed data, duplicate webhooks) is a method on
:class:`FakeReplicate`, whose state the server thread shares.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import re
import secrets
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, Response

from .media import RescaleCanceled, rescale_video

MiB = 1024**2
FILES_API_LIMIT = 100 * MiB

TERMINAL = frozenset({"succeeded", "failed", "canceled", "aborted"})
DEFAULT_EVENTS = ("output", "completed")  # Replicate's default when no webhook_events_filter is given
ALL_EVENTS = ("start", "output", "logs", "completed")

# Request headers kept in :attr:`FakeReplicate.requests` (lower-case).
RECORDED_HEADERS = ("authorization", "content-type", "prefer", "cancel-after", "user-agent", "content-length")


def _now() -> datetime:
    return datetime.now(UTC)


def _iso(moment: datetime | None) -> str | None:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ") if moment else None


def _new_id() -> str:
    """Replicate-style id: 26 lower-case base32 characters."""
    return base64.b32encode(secrets.token_bytes(20)).decode().lower()[:26]


def _problem(status: int, title: str, detail: str, **extra: Any) -> JSONResponse:
    """RFC 7807 body, as Replicate sends it and ``ReplicateError.from_response`` reads it."""
    return JSONResponse({"title": title, "detail": detail, "status": status, **extra}, status_code=status)


# --------------------------------------------------------------------------------------------- models


def _enum(title: str, values: list[str]) -> dict[str, Any]:
    return {"title": title, "enum": values, "type": "string", "description": "An enumeration."}


def _cog_schema(input_schema: dict[str, Any], enums: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """A Cog-shaped OpenAPI document: enums live in their own components and are referenced via allOf."""
    return {
        "openapi": "3.0.2",
        "info": {"title": "Cog", "version": "0.1.0"},
        "paths": {},
        "components": {
            "schemas": {
                "Input": input_schema,
                "Output": {"type": "string", "title": "Output", "format": "uri"},
                "Status": _enum("Status", ["starting", "processing", "succeeded", "canceled", "failed"]),
                **enums,
            }
        },
    }


@dataclass
class FakeModel:
    """One model the fake knows: its live schema, and how its inputs map to the fake's work."""

    owner: str
    name: str
    version_id: str
    is_official: bool
    openapi_schema: dict[str, Any]
    video_field: str
    resolution_field: str
    boxes: dict[str, tuple[int, int]]

    @property
    def ref(self) -> str:
        return f"{self.owner}/{self.name}"

    @property
    def input_schema(self) -> dict[str, Any]:
        return self.openapi_schema["components"]["schemas"]["Input"]

    def to_json(self) -> dict[str, Any]:
        return {
            "url": f"https://replicate.com/{self.ref}",
            "owner": self.owner,
            "name": self.name,
            "description": "Fake model for tests",
            "visibility": "public",
            "github_url": None,
            "paper_url": None,
            "license_url": None,
            "run_count": 1234,
            "cover_image_url": None,
            "default_example": None,
            "is_official": self.is_official,
            "latest_version": self.version_json(),
        }

    def version_json(self) -> dict[str, Any]:
        return {
            "id": self.version_id,
            "created_at": "2025-01-01T00:00:00.000000Z",
            "cog_version": "0.9.4",
            "openapi_schema": self.openapi_schema,
        }


def default_models() -> dict[str, FakeModel]:
    """The two catalogue models with the field names, enums and ranges of their live schemas."""
    esrgan = FakeModel(
        owner="lucataco",
        name="real-esrgan-video",
        version_id=hashlib.sha256(b"lucataco/real-esrgan-video").hexdigest(),
        is_official=False,
        openapi_schema=_cog_schema(
            {
                "type": "object",
                "title": "Input",
                "required": ["video_path"],
                "properties": {
                    "video_path": {
                        "type": "string",
                        "title": "Video Path",
                        "format": "uri",
                        "x-order": 0,
                        "description": "Input video",
                    },
                    "resolution": {
                        "allOf": [{"$ref": "#/components/schemas/resolution"}],
                        "default": "FHD",
                        "x-order": 1,
                        "description": "Output resolution",
                    },
                    "model": {
                        "allOf": [{"$ref": "#/components/schemas/model"}],
                        "default": "RealESRGAN_x4plus",
                        "x-order": 2,
                        "description": "Upscaling model",
                    },
                },
            },
            {
                "resolution": _enum("resolution", ["FHD", "2k", "4k"]),
                "model": _enum(
                    "model", ["RealESRGAN_x4plus", "RealESRGAN_x4plus_anime_6B", "realesr-animevideov3"]
                ),
            },
        ),
        video_field="video_path",
        resolution_field="resolution",
        boxes={"FHD": (1920, 1080), "2k": (2560, 1440), "4k": (3840, 2160)},
    )
    topaz = FakeModel(
        owner="topazlabs",
        name="video-upscale",
        version_id=hashlib.sha256(b"topazlabs/video-upscale").hexdigest(),
        is_official=True,
        openapi_schema=_cog_schema(
            {
                "type": "object",
                "title": "Input",
                "required": ["video"],
                "properties": {
                    "video": {
                        "type": "string",
                        "title": "Video",
                        "format": "uri",
                        "x-order": 0,
                        "description": "Video file to upscale",
                    },
                    "target_resolution": {
                        "allOf": [{"$ref": "#/components/schemas/target_resolution"}],
                        "default": "1080p",
                        "x-order": 1,
                        "description": "Target resolution",
                    },
                    "target_fps": {
                        "type": "integer",
                        "title": "Target Fps",
                        "default": 60,
                        "minimum": 15,
                        "maximum": 120,
                        "x-order": 2,
                        "description": "Target FPS (choose from 15fps to 120fps)",
                    },
                },
            },
            {"target_resolution": _enum("target_resolution", ["720p", "1080p", "4k"])},
        ),
        video_field="video",
        resolution_field="target_resolution",
        boxes={"720p": (1280, 720), "1080p": (1920, 1080), "4k": (3840, 2160)},
    )
    return {m.ref: m for m in (esrgan, topaz)}


def _resolve(prop: dict[str, Any], components: dict[str, Any]) -> dict[str, Any]:
    """Inline ``allOf: [{$ref}]`` the way Cog writes enum properties."""
    merged = {k: v for k, v in prop.items() if k != "allOf"}
    for part in prop.get("allOf", []):
        ref = part.get("$ref", "")
        if ref.startswith("#/components/schemas/"):
            merged = {**components[ref.rsplit("/", 1)[1]], **merged}
    return merged


def validate_input(model: FakeModel, given: Any) -> list[dict[str, str]]:
    """Replicate-style input validation: required, type, enum, range, uri. Unknown keys are ignored."""
    if not isinstance(given, dict):
        return [{"type": "invalid_type", "field": "input", "description": "Input must be an object"}]
    components = model.openapi_schema["components"]["schemas"]
    schema = model.input_schema
    problems = []
    for name in schema.get("required", []):
        if name not in given:
            problems.append({"type": "required", "field": "input", "description": f"{name} is required"})
    for name, value in given.items():
        if name not in schema["properties"]:
            continue
        prop = _resolve(schema["properties"][name], components)
        where = f"input.{name}"
        expected = prop.get("type")
        type_ok = {
            "string": isinstance(value, str),
            "integer": isinstance(value, int) and not isinstance(value, bool),
            "number": isinstance(value, int | float) and not isinstance(value, bool),
            "boolean": isinstance(value, bool),
        }.get(expected, True)
        if not type_ok:
            problems.append(
                {
                    "type": "invalid_type",
                    "field": where,
                    "description": f"Invalid type. Expected: {expected}, given: {type(value).__name__}",
                }
            )
            continue
        if "enum" in prop and value not in prop["enum"]:
            allowed = ", ".join(f'"{v}"' for v in prop["enum"])
            problems.append(
                {
                    "type": "enum",
                    "field": where,
                    "description": f"{name} must be one of the following: {allowed}",
                }
            )
        if "minimum" in prop and value < prop["minimum"]:
            problems.append(
                {
                    "type": "number_gte",
                    "field": where,
                    "description": f"Must be greater than or equal to {prop['minimum']}",
                }
            )
        if "maximum" in prop and value > prop["maximum"]:
            problems.append(
                {
                    "type": "number_lte",
                    "field": where,
                    "description": f"Must be less than or equal to {prop['maximum']}",
                }
            )
        if prop.get("format") == "uri" and not re.match(r"^(https?://|data:)", value):
            problems.append({"type": "format", "field": where, "description": "Does not match format 'uri'"})
    return problems


# ---------------------------------------------------------------------------------------- state types


@dataclass
class RecordedRequest:
    """One request the fake received (a subset of headers; JSON body when there was one)."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    json: Any = None
    status: int | None = None


@dataclass
class WebhookDelivery:
    """One webhook attempt: exactly the bytes and headers sent, for assertions and replays."""

    prediction_id: str
    event: str
    url: str
    webhook_id: str
    timestamp: str
    body: bytes
    headers: dict[str, str]
    attempt: int
    status_code: int | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300

    @property
    def payload(self) -> dict[str, Any]:
        return json.loads(self.body)


@dataclass
class SinkRequest:
    """A webhook received by the fake's own sink endpoint (``FakeReplicate.webhook_sink_url``)."""

    headers: dict[str, str]
    body: bytes
    query: str


@dataclass
class _Injection:
    method: str
    pattern: re.Pattern[str]
    remaining: int
    status: int
    retry_after: str | None
    detail: str


@dataclass
class _StoredFile:
    id: str
    name: str
    content_type: str
    size: int
    path: Path
    sha256: str
    md5: str
    metadata: dict[str, Any]
    created_at: datetime


@dataclass
class _Prediction:
    id: str
    model: FakeModel
    input: dict[str, Any]
    webhook: str | None
    webhook_completed: str | None
    events: tuple[str, ...]
    created_at: datetime
    status: str = "starting"
    logs: str = ""
    output: str | None = None
    output_path: Path | None = None
    error: str | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    data_removed: bool = False
    fail_with: str | None = None
    fail_after_frames: int = 1
    completed_emitted: bool = False
    cancel: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None

    @property
    def predict_time(self) -> float | None:
        if self.started_at is None:
            return None
        end = self.completed_at or _now()
        return round((end - self.started_at).total_seconds(), 6)


# ------------------------------------------------------------------------------------------ the fake


class FakeReplicate:
    """A running fake Replicate server plus the controls tests use. Use as a context manager.

    >>> with FakeReplicate() as fake:
    ...     client = replicate.Client(api_token=fake.token, base_url=fake.url)
    """

    def __init__(
        self,
        *,
        token: str | None = None,
        webhook_secret: str | None = None,
        files_limit: int = FILES_API_LIMIT,
        step_delay: float = 0.0,
        boot_delay: float = 0.0,
        webhook_retry_delays: tuple[float, ...] = (0.05, 0.1, 0.2, 0.4),
        logs_interval: float = 0.5,
    ) -> None:
        self.token = token or "r8_fake" + secrets.token_hex(16)
        self.webhook_secret = webhook_secret or "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
        self.files_limit = files_limit
        self.step_delay = step_delay
        self.boot_delay = boot_delay
        self.webhook_retry_delays = webhook_retry_delays
        self.logs_interval = logs_interval
        #: extra copies sent of every delivered webhook (duplicate-delivery tests)
        self.webhook_duplicates = 0
        self.models = default_models()
        self.requests: list[RecordedRequest] = []
        self.deliveries: list[WebhookDelivery] = []
        self.sink_received: list[SinkRequest] = []
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._predictions: dict[str, _Prediction] = {}
        self._files: dict[str, _StoredFile] = {}
        self._injections: list[_Injection] = []
        self._fail_next: list[tuple[str, int]] = []
        self._sink_statuses: list[int] = []
        self._closing = threading.Event()
        self._dir: Path | None = None  # private scratch directory, made by start()
        self._url_signing_key = secrets.token_bytes(16)
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.url = ""

    # ------------------------------------------------------------------------------------ lifecycle

    def start(self) -> FakeReplicate:
        """Bind a free port on 127.0.0.1 and serve from a background thread."""
        self._dir = Path(tempfile.mkdtemp(prefix="fake-replicate-"))
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        config = uvicorn.Config(
            _build_app(self), log_level="warning", access_log=False, lifespan="off", timeout_keep_alive=5
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name="fake-replicate", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("fake Replicate server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        """Stop workers (as if canceled), then the server; remove stored files."""
        self._closing.set()
        with self._lock:
            predictions = list(self._predictions.values())
        for p in predictions:
            p.cancel.set()
        for p in predictions:
            if p.thread is not None:
                p.thread.join(timeout=10)
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> FakeReplicate:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def workdir(self) -> Path:
        """Where uploaded files and prediction outputs live while the fake runs."""
        if self._dir is None:
            raise RuntimeError("FakeReplicate is not started")
        return self._dir

    @property
    def env(self) -> dict[str, str]:
        """Environment that points the official client (and SkyFrame) at this fake."""
        return {"REPLICATE_BASE_URL": self.url, "REPLICATE_API_TOKEN": self.token}

    @property
    def webhook_sink_url(self) -> str:
        """A webhook receiver on the fake itself; received requests land in :attr:`sink_received`."""
        return f"{self.url}/_fake/webhook-sink"

    # ------------------------------------------------------------------------------------- controls

    def fail_next(self, error: str = "CUDA out of memory", *, after_frames: int = 1) -> None:
        """The next created prediction fails with ``error`` after processing ``after_frames`` frames."""
        with self._lock:
            self._fail_next.append((error, after_frames))

    def inject_status(
        self,
        route: str,
        status: int,
        *,
        count: int = 1,
        retry_after: float | None = None,
        detail: str | None = None,
    ) -> None:
        """The next ``count`` requests matching ``route`` ("POST /v1/predictions/{id}/cancel") fail."""
        method, _, template = route.partition(" ")
        regex = "^" + re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template)) + "$"
        with self._lock:
            self._injections.append(
                _Injection(
                    method=method.upper(),
                    pattern=re.compile(regex),
                    remaining=count,
                    status=status,
                    retry_after=None if retry_after is None else str(int(retry_after)),
                    detail=detail or f"Injected {status} by the fake",
                )
            )

    def throttle(self, route: str, count: int = 1, retry_after: float = 0) -> None:
        """The next ``count`` requests to ``route`` answer 429 like Replicate's rate limiter."""
        self.inject_status(
            route,
            429,
            count=count,
            retry_after=retry_after,
            detail="Request was throttled. Expected available in 1 second.",
        )

    def set_step_delay(self, seconds: float) -> None:
        """Sleep this long at boot and before each frame, so tests can act mid-run (e.g. cancel)."""
        self.step_delay = seconds

    def remove_data(self, prediction_id: str) -> None:
        """Do what Replicate does an hour after an API prediction: drop output (and its file), flag it."""
        with self._lock:
            p = self._predictions[prediction_id]
            p.data_removed = True
            p.output = None
            p.input = {}
            p.logs = ""
            if p.output_path is not None:
                p.output_path.unlink(missing_ok=True)
            self._changed.notify_all()

    def fail_sink(self, count: int = 1, status: int = 500) -> None:
        """The webhook sink answers ``status`` to its next ``count`` requests (terminal retry tests)."""
        with self._lock:
            self._sink_statuses.extend([status] * count)

    def redeliver(self, delivery: WebhookDelivery, *, url: str | None = None) -> WebhookDelivery:
        """Send the exact same webhook again (same id, timestamp, body, signature): a replay."""
        return self._post_webhook(
            url or delivery.url,
            delivery.prediction_id,
            delivery.event,
            delivery.body,
            dict(delivery.headers),
            attempt=delivery.attempt,
        )

    def sign(
        self, body: bytes, *, webhook_id: str | None = None, timestamp: int | None = None
    ) -> dict[str, str]:
        """Standard Webhooks headers for ``body`` under this fake's secret (for forging/replay tests)."""
        webhook_id = webhook_id or "msg_" + _new_id()
        ts = str(int(time.time()) if timestamp is None else timestamp)
        key = base64.b64decode(self.webhook_secret.split("_", 1)[1])
        digest = hmac.new(key, f"{webhook_id}.{ts}.".encode() + body, hashlib.sha256).digest()
        return {
            "webhook-id": webhook_id,
            "webhook-timestamp": ts,
            "webhook-signature": "v1," + base64.b64encode(digest).decode(),
        }

    # ----------------------------------------------------------------------------------- inspection

    def prediction(self, prediction_id: str) -> dict[str, Any]:
        """The prediction JSON the API would return now."""
        with self._lock:
            return self._prediction_json(self._predictions[prediction_id])

    def prediction_ids(self) -> list[str]:
        with self._lock:
            return list(self._predictions)

    def requests_to(self, route: str) -> list[RecordedRequest]:
        """Recorded requests matching "METHOD /path/{template}"."""
        method, _, template = route.partition(" ")
        pattern = re.compile("^" + re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template)) + "$")
        with self._lock:
            return [r for r in self.requests if r.method == method.upper() and pattern.match(r.path)]

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        """Block until ``predicate()`` (checked under the state lock) is true; AssertionError on timeout."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not predicate():
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("timed out waiting on the fake Replicate server")
                self._changed.wait(min(left, 0.05))

    def wait_for_status(self, prediction_id: str, *statuses: str, timeout: float = 10.0) -> dict[str, Any]:
        wanted = set(statuses) or set(TERMINAL)
        self.wait_for(lambda: self._predictions[prediction_id].status in wanted, timeout)
        return self.prediction(prediction_id)

    def wait_for_deliveries(
        self, prediction_id: str, event: str = "completed", count: int = 1, timeout: float = 10.0
    ) -> list[WebhookDelivery]:
        def found() -> list[WebhookDelivery]:
            return [d for d in self.deliveries if d.prediction_id == prediction_id and d.event == event]

        self.wait_for(lambda: len(found()) >= count, timeout)
        with self._lock:
            return found()

    def wait_idle(self, timeout: float = 10.0) -> None:
        """Wait until every prediction worker (including webhook retries) has finished."""
        with self._lock:
            predictions = list(self._predictions.values())
        for p in predictions:
            if not p.done.wait(timeout):
                raise AssertionError(f"prediction {p.id} still running")

    # ------------------------------------------------------------------------------------- internals

    def _record(self, rec: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(rec)
            self._changed.notify_all()

    def _take_injection(self, method: str, path: str) -> _Injection | None:
        with self._lock:
            for inj in self._injections:
                if inj.remaining > 0 and inj.method == method and inj.pattern.match(path):
                    inj.remaining -= 1
                    return inj
        return None

    def _signed_file_url(self, file_id: str) -> str:
        expiry = int(time.time()) + 3600
        sig = self._file_signature(file_id, expiry)
        return f"{self.url}/v1/files/{file_id}/download?expiry={expiry}&owner=fake&signature={sig}"

    def _file_signature(self, file_id: str, expiry: int) -> str:
        raw = hmac.new(self._url_signing_key, f"{file_id}:{expiry}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    def _file_json(self, f: _StoredFile) -> dict[str, Any]:
        return {
            "id": f.id,
            "name": f.name,
            "content_type": f.content_type,
            "size": f.size,
            "etag": f.md5,
            "checksums": {"sha256": f.sha256, "md5": f.md5},
            "metadata": f.metadata,
            "created_at": _iso(f.created_at),
            "expires_at": _iso(f.created_at + timedelta(days=1)),
            "urls": {"get": self._signed_file_url(f.id)},
        }

    def _prediction_json(self, p: _Prediction) -> dict[str, Any]:
        metrics: dict[str, Any] = {}
        if p.status in TERMINAL and p.predict_time is not None:
            metrics["predict_time"] = p.predict_time
            metrics["total_time"] = round((p.completed_at - p.created_at).total_seconds(), 6)  # type: ignore[operator]
        return {
            "id": p.id,
            "model": p.model.ref,
            "version": p.model.version_id,
            "input": p.input,
            "output": p.output,
            "logs": p.logs,
            "error": p.error,
            "status": p.status,
            "source": "api",
            "created_at": _iso(p.created_at),
            "started_at": _iso(p.started_at),
            "completed_at": _iso(p.completed_at),
            "data_removed": p.data_removed,
            "metrics": metrics,
            "urls": {
                "get": f"{self.url}/v1/predictions/{p.id}",
                "cancel": f"{self.url}/v1/predictions/{p.id}/cancel",
                "web": f"https://replicate.com/p/{p.id}",
            },
        }

    def _create_prediction(
        self, model: FakeModel, body: dict[str, Any]
    ) -> tuple[_Prediction, dict[str, Any]] | JSONResponse:
        """Validate and register a prediction; return it with its JSON as of creation (status starting)."""
        problems = validate_input(model, body.get("input"))
        if problems:
            detail = "".join(f"- {p['field']}: {p['description']}\n" for p in problems)
            return _problem(422, "Input validation failed", detail, invalid_fields=problems)
        events = body.get("webhook_events_filter")
        if events is not None:
            bad = [e for e in events if e not in ALL_EVENTS] if isinstance(events, list) else [events]
            if bad:
                return _problem(
                    422, "Invalid webhook_events_filter", f"Unknown events {bad}; allowed: {list(ALL_EVENTS)}"
                )
        with self._lock:
            p = _Prediction(
                id=_new_id(),
                model=model,
                input=dict(body["input"]),
                webhook=body.get("webhook"),
                webhook_completed=body.get("webhook_completed"),
                events=tuple(events) if events is not None else DEFAULT_EVENTS,
                created_at=_now(),
            )
            if self._fail_next:
                p.fail_with, p.fail_after_frames = self._fail_next.pop(0)
            self._predictions[p.id] = p
            p.thread = threading.Thread(target=self._run, args=(p,), name=f"fake-pred-{p.id}", daemon=True)
            snapshot = self._prediction_json(p)
        p.thread.start()
        return p, snapshot

    # --------------------------------------------------------------------------------------- worker

    def _sleep(self, p: _Prediction, seconds: float) -> bool:
        """Sleep unless canceled; True when the prediction should stop."""
        if seconds > 0:
            p.cancel.wait(seconds)
        return p.cancel.is_set()

    def _log(self, p: _Prediction, line: str) -> None:
        with self._lock:
            p.logs += line + "\n"
            self._changed.notify_all()

    def _run(self, p: _Prediction) -> None:
        work = self.workdir / p.id
        work.mkdir()
        try:
            self._emit(p, "start")
            if self._sleep(p, self.boot_delay + self.step_delay):
                return self._finish(p, "canceled")
            with self._lock:
                if p.status in TERMINAL:
                    return self._finish(p, p.status)
                p.status, p.started_at = "processing", _now()
                self._changed.notify_all()
            self._log(p, "Downloading input video...")
            url = p.input[p.model.video_field]
            try:
                src = self._fetch_input(url, work / "input.mp4")
            except Exception as exc:  # the real model fails the prediction on a bad input URL too
                return self._finish(p, "failed", error=f"Failed to download input video from {url}: {exc}")
            choice = p.input.get(p.model.resolution_field) or _resolve(
                p.model.input_schema["properties"][p.model.resolution_field],
                p.model.openapi_schema["components"]["schemas"],
            ).get("default")
            box = p.model.boxes[choice]
            self._log(p, f"Upscaling to {choice} ({box[0]}x{box[1]} box)")
            last_logs_event = [0.0]

            def progress(done: int, total: int) -> None:
                pct = int(100 * done / total) if total else 0
                bar = "█" * (pct // 10) + " " * (10 - pct // 10)
                elapsed = time.monotonic() - started
                rate = done / elapsed if elapsed > 0 else 0.0
                self._log(p, f"{pct:3d}%|{bar}| {done}/{total} [00:{int(elapsed):02d}<00:00, {rate:.2f}it/s]")
                if "logs" in p.events and time.monotonic() - last_logs_event[0] >= self.logs_interval:
                    last_logs_event[0] = time.monotonic()
                    self._emit(p, "logs")
                if p.fail_with is not None and done >= p.fail_after_frames:
                    raise _InjectedFailure(p.fail_with)

            def should_stop() -> bool:
                return self._sleep(p, self.step_delay)

            started = time.monotonic()
            dst = work / "output.mp4"
            try:
                width, height, frames = rescale_video(
                    src, dst, box, on_progress=progress, should_stop=should_stop
                )
            except RescaleCanceled:
                return self._finish(p, "canceled")
            except _InjectedFailure as exc:
                self._log(p, f"Traceback (most recent call last):\nRuntimeError: {exc}")
                return self._finish(p, "failed", error=str(exc))
            if self._sleep(p, self.step_delay):
                return self._finish(p, "canceled")
            self._log(p, f"Wrote {frames} frames at {width}x{height}")
            with self._lock:
                if p.status in TERMINAL:  # canceled while the last frames were written
                    return self._finish(p, p.status)
                p.output_path, p.output = dst, f"{self.url}/delivery/{p.id}/output.mp4"
            if "output" in p.events:
                self._emit(p, "output")
            self._finish(p, "succeeded")
        except Exception as exc:  # e.g. an input that is not a video: fail like a crashing model would
            self._log(p, f"Traceback (most recent call last):\n{type(exc).__name__}: {exc}")
            self._finish(p, "failed", error=f"{type(exc).__name__}: {exc}")
        finally:
            p.done.set()

    def _finish(self, p: _Prediction, status: str, *, error: str | None = None) -> None:
        """Enter a terminal status (unless a cancel got there first) and send ``completed`` once."""
        with self._lock:
            if p.status not in TERMINAL:
                p.status, p.error, p.completed_at = status, error, _now()
                self._changed.notify_all()
            if p.completed_emitted:
                return
            p.completed_emitted = True
        self._emit(p, "completed")

    def _fetch_input(self, url: str, dst: Path) -> Path:
        if url.startswith("data:"):
            _, _, data = url.partition(",")
            dst.write_bytes(base64.b64decode(data))
            return dst
        with httpx.stream("GET", url, timeout=30, follow_redirects=True) as response:
            response.raise_for_status()
            with dst.open("wb") as fh:
                for chunk in response.iter_bytes(1024 * 1024):
                    fh.write(chunk)
        return dst

    # ------------------------------------------------------------------------------------- webhooks

    def _emit(self, p: _Prediction, event: str) -> None:
        targets = []
        if p.webhook and event in p.events:
            targets.append(p.webhook)
        if event == "completed" and p.webhook_completed:
            targets.append(p.webhook_completed)
        if not targets or self._closing.is_set():
            return
        with self._lock:
            body = json.dumps(self._prediction_json(p)).encode()
        for url in targets:
            self._deliver(p.id, event, url, body, terminal=event == "completed")

    def _deliver(self, prediction_id: str, event: str, url: str, body: bytes, *, terminal: bool) -> None:
        """Send one event; the terminal one is retried with backoff like Replicate does."""
        webhook_id = "msg_" + _new_id()
        delays = list(self.webhook_retry_delays) if terminal else []
        attempt = 1
        while True:
            headers = {
                "content-type": "application/json",
                "user-agent": "Replicate-Webhooks/fake",
                **self.sign(body, webhook_id=webhook_id),
            }
            delivery = self._post_webhook(url, prediction_id, event, body, headers, attempt=attempt)
            if delivery.ok:
                for _ in range(self.webhook_duplicates):
                    self._post_webhook(url, prediction_id, event, body, headers, attempt=attempt)
                return
            if not delays or self._closing.is_set():
                return
            time.sleep(delays.pop(0))
            attempt += 1

    def _post_webhook(
        self, url: str, prediction_id: str, event: str, body: bytes, headers: dict[str, str], *, attempt: int
    ) -> WebhookDelivery:
        delivery = WebhookDelivery(
            prediction_id=prediction_id,
            event=event,
            url=url,
            webhook_id=headers["webhook-id"],
            timestamp=headers["webhook-timestamp"],
            body=body,
            headers=headers,
            attempt=attempt,
        )
        try:
            response = httpx.post(url, content=body, headers=headers, timeout=5, follow_redirects=False)
            delivery.status_code = response.status_code
        except httpx.HTTPError as exc:
            delivery.error = repr(exc)
        with self._lock:
            self.deliveries.append(delivery)
            self._changed.notify_all()
        return delivery


class _InjectedFailure(Exception):
    pass


# ---------------------------------------------------------------------------------------------- app

_PUBLIC_PREFIXES = ("/delivery/", "/_fake/")


def _is_public(path: str) -> bool:
    return path.startswith(_PUBLIC_PREFIXES) or bool(re.match(r"^/v1/files/[^/]+/download$", path))


class _Gate:
    """ASGI middleware: record the request, check the bearer token, apply injected statuses."""

    def __init__(self, app: Any, fake: FakeReplicate) -> None:
        self.app = app
        self.fake = fake

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method, path = scope["method"], scope["path"]
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        body = b""
        buffered = headers.get("content-type", "").startswith("application/json")
        messages: list[dict[str, Any]] = []
        if buffered:
            while True:
                message = await receive()
                messages.append(message)
                body += message.get("body", b"")
                if not message.get("more_body"):
                    break
        parsed: Any = None
        if body:
            with contextlib.suppress(ValueError):
                parsed = json.loads(body)
        rec = RecordedRequest(
            method=method,
            path=path,
            query=scope.get("query_string", b"").decode(),
            headers={k: v for k, v in headers.items() if k in RECORDED_HEADERS},
            json=parsed,
        )
        self.fake._record(rec)

        async def replay() -> dict[str, Any]:
            if messages:
                return messages.pop(0)
            return await receive()

        async def drain() -> None:
            if buffered:
                return
            while (await receive()).get("more_body"):
                pass

        async def recording_send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                rec.status = message["status"]
            await send(message)

        response: Response | None = None
        if not _is_public(path) and path.startswith("/v1/"):
            if headers.get("authorization") != f"Bearer {self.fake.token}":
                response = _problem(401, "Unauthenticated", "You did not pass a valid authentication token")
            elif injection := self.fake._take_injection(method, path):
                response = _problem(injection.status, "Injected error", injection.detail)
                if injection.retry_after is not None:
                    response.headers["Retry-After"] = injection.retry_after
        if response is not None:
            await drain()
            await response(scope, replay, recording_send)
            return
        await self.app(scope, replay, recording_send)


def _build_app(fake: FakeReplicate) -> Any:
    app = FastAPI(title="Fake Replicate", openapi_url=None, docs_url=None, redoc_url=None)

    def model_or_404(owner: str, name: str) -> FakeModel | JSONResponse:
        model = fake.models.get(f"{owner}/{name}")
        if model is None:
            return _problem(404, "Not found", "The requested resource could not be found.")
        return model

    async def json_body(request: Request) -> dict[str, Any] | JSONResponse:
        try:
            body = await request.json()
        except ValueError:
            return _problem(400, "Bad request", "Request body must be JSON")
        if not isinstance(body, dict):
            return _problem(400, "Bad request", "Request body must be a JSON object")
        return body

    async def created(request: Request, model: FakeModel, body: dict[str, Any]) -> JSONResponse:
        result = fake._create_prediction(model, body)
        if isinstance(result, JSONResponse):
            return result
        p, snapshot = result
        prefer = request.headers.get("prefer", "")
        if match := re.fullmatch(r"wait(?:=(\d+))?", prefer.strip()):
            deadline = time.monotonic() + int(match.group(1) or 60)
            while p.status not in TERMINAL and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            with fake._lock:
                snapshot = fake._prediction_json(p)
        return JSONResponse(snapshot, status_code=201)

    @app.get("/v1/models/{owner}/{name}")
    async def get_model(owner: str, name: str) -> Any:
        model = model_or_404(owner, name)
        return model if isinstance(model, JSONResponse) else model.to_json()

    @app.get("/v1/models/{owner}/{name}/versions/{version_id}")
    async def get_version(owner: str, name: str, version_id: str) -> Any:
        model = model_or_404(owner, name)
        if isinstance(model, JSONResponse):
            return model
        if version_id != model.version_id:
            return _problem(404, "Not found", "The requested resource could not be found.")
        return model.version_json()

    @app.post("/v1/models/{owner}/{name}/predictions")
    async def create_official(owner: str, name: str, request: Request) -> Any:
        model = model_or_404(owner, name)
        if isinstance(model, JSONResponse):
            return model
        if not model.is_official:  # Replicate: only official models can run without a version
            return _problem(404, "Not found", "The requested resource could not be found.")
        body = await json_body(request)
        if isinstance(body, JSONResponse):
            return body
        return await created(request, model, body)

    @app.post("/v1/predictions")
    async def create_prediction(request: Request) -> Any:
        body = await json_body(request)
        if isinstance(body, JSONResponse):
            return body
        version = str(body.get("version") or "")
        ref, _, version_id = version.rpartition(":") if ":" in version else ("", "", version)
        model = None
        for candidate in fake.models.values():
            if version_id == candidate.version_id and (not ref or ref == candidate.ref):
                model = candidate
            elif not ref and version_id == candidate.ref and candidate.is_official:
                model = candidate  # since 2025-08: official models by owner/name on this endpoint
        if model is None:
            return _problem(
                422,
                "Invalid version or not permitted",
                "The specified version does not exist (or perhaps you don't have permission to use it?)",
            )
        return await created(request, model, body)

    @app.get("/v1/predictions")
    async def list_predictions() -> Any:
        with fake._lock:
            results = [fake._prediction_json(p) for p in reversed(fake._predictions.values())]
        return {"previous": None, "next": None, "results": results}

    @app.get("/v1/predictions/{prediction_id}")
    async def get_prediction(prediction_id: str) -> Any:
        with fake._lock:
            p = fake._predictions.get(prediction_id)
            if p is None:
                return _problem(404, "Not found", "The requested resource could not be found.")
            return fake._prediction_json(p)

    @app.post("/v1/predictions/{prediction_id}/cancel")
    async def cancel_prediction(prediction_id: str) -> Any:
        with fake._lock:
            p = fake._predictions.get(prediction_id)
            if p is None:
                return _problem(404, "Not found", "The requested resource could not be found.")
            if p.status not in TERMINAL:
                # Canceled at once; the worker stops at its next step and sends the completed webhook.
                p.cancel.set()
                p.status, p.completed_at = "canceled", _now()
                fake._changed.notify_all()
            return fake._prediction_json(p)

    @app.post("/v1/files")
    async def create_file(request: Request) -> Any:
        length = int(request.headers.get("content-length") or 0)
        if length > fake.files_limit + 64 * 1024:
            async for _ in request.stream():
                pass
            return _too_large(fake.files_limit)
        form = await request.form()
        upload = form.get("content")
        if upload is None or isinstance(upload, str):
            return _problem(422, "Invalid request", "Missing file part 'content'")
        file_id = _new_id()
        path = fake.workdir / "files" / file_id
        path.parent.mkdir(exist_ok=True)
        sha, md5, size = hashlib.sha256(), hashlib.md5(), 0
        with path.open("wb") as fh:
            while chunk := await upload.read(1024 * 1024):
                size += len(chunk)
                if size > fake.files_limit:
                    break
                sha.update(chunk)
                md5.update(chunk)
                fh.write(chunk)
        if size > fake.files_limit:
            path.unlink(missing_ok=True)
            return _too_large(fake.files_limit)
        metadata_raw = form.get("metadata")
        try:
            metadata = json.loads(metadata_raw) if isinstance(metadata_raw, str) else {}
        except ValueError:
            return _problem(422, "Invalid request", "metadata must be JSON")
        stored = _StoredFile(
            id=file_id,
            name=str(form.get("filename") or upload.filename or "file"),
            content_type=str(form.get("type") or upload.content_type or "application/octet-stream"),
            size=size,
            path=path,
            sha256=sha.hexdigest(),
            md5=md5.hexdigest(),
            metadata=metadata,
            created_at=_now(),
        )
        with fake._lock:
            fake._files[file_id] = stored
        return JSONResponse(fake._file_json(stored), status_code=201)

    @app.get("/v1/files")
    async def list_files() -> Any:
        with fake._lock:
            return {"results": [fake._file_json(f) for f in fake._files.values()], "next": None}

    @app.get("/v1/files/{file_id}")
    async def get_file(file_id: str) -> Any:
        with fake._lock:
            stored = fake._files.get(file_id)
            if stored is None:
                return _problem(404, "Not found", "The requested resource could not be found.")
            return fake._file_json(stored)

    @app.delete("/v1/files/{file_id}")
    async def delete_file(file_id: str) -> Any:
        with fake._lock:
            stored = fake._files.pop(file_id, None)
        if stored is None:
            return _problem(404, "Not found", "The requested resource could not be found.")
        stored.path.unlink(missing_ok=True)
        return Response(status_code=204)

    @app.get("/v1/files/{file_id}/download")
    async def download_file(file_id: str, expiry: int = 0, signature: str = "") -> Any:
        with fake._lock:
            stored = fake._files.get(file_id)
        good = hmac.compare_digest(signature, fake._file_signature(file_id, expiry))
        if stored is None or not good or expiry < time.time():
            return _problem(404, "Not found", "The requested resource could not be found.")
        return FileResponse(stored.path, media_type=stored.content_type, filename=stored.name)

    @app.get("/v1/webhooks/default/secret")
    async def webhook_secret() -> Any:
        return {"key": fake.webhook_secret}

    @app.get("/delivery/{prediction_id}/{filename}")
    async def delivery(prediction_id: str, filename: str) -> Any:
        with fake._lock:
            p = fake._predictions.get(prediction_id)
            path = p.output_path if p is not None and not p.data_removed else None
        if path is None or not path.exists() or path.name != filename:
            return Response(status_code=404)
        return FileResponse(path, media_type="video/mp4")

    @app.post("/_fake/webhook-sink")
    async def sink(request: Request) -> Any:
        body = await request.body()
        with fake._lock:
            fake.sink_received.append(
                SinkRequest(headers=dict(request.headers), body=body, query=request.url.query)
            )
            status = fake._sink_statuses.pop(0) if fake._sink_statuses else 200
            fake._changed.notify_all()
        return Response(status_code=status)

    return _Gate(app, fake)


def _too_large(limit: int) -> JSONResponse:
    return _problem(
        413, "Request Entity Too Large", f"File is larger than the maximum allowed size of {limit} bytes"
    )


@contextlib.contextmanager
def running_fake(**kwargs: Any) -> Iterator[FakeReplicate]:
    """``with running_fake(files_limit=...) as fake:`` — same as ``with FakeReplicate(...)``."""
    fake = FakeReplicate(**kwargs)
    try:
        yield fake.start()
    finally:
        fake.stop()


__all__ = [
    "FILES_API_LIMIT",
    "FakeModel",
    "FakeReplicate",
    "RecordedRequest",
    "SinkRequest",
    "WebhookDelivery",
    "default_models",
    "running_fake",
    "validate_input",
]
