"""Replicate provider: runs the catalogue's Replicate models through the official ``replicate`` client.

Why it looks the way it does:

* Field names, enums and ranges come from the model's *live* schema (``latest_version.openapi_schema``),
  cached for a few minutes, because Replicate models change without notice.
* Inputs reach Replicate through the files API when the video is at most 100 MiB (its hard limit), else
  through a signed link on this server (needs ``SKYFRAME_PUBLIC_URL``); neither -> a clear error up front.
* The client retries GETs on 429/503/504 but never POSTs, so creating/canceling retries here.
* Prediction JSON is parsed here, not by the client's pydantic model, which drops ``data_removed`` and
  rejects the ``aborted`` status (replicate-python 1.0.7).
* Webhooks are verified with the Standard Webhooks scheme Replicate uses, with a replay window.
* The API token is never logged or put into error text; output downloads never carry it.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import logging
import mimetypes
import os
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx
import replicate
from replicate.exceptions import ReplicateError
from standardwebhooks.webhooks import EmptyWebhookSecretError, Webhook

from skyframe.catalogue import RESOLUTIONS, EnhanceOptions, ModelSpec, describe_allowed
from skyframe.config import Settings
from skyframe.errors import (
    Invalid,
    NotFound,
    RateLimited,
    SkyframeError,
    TooLarge,
    Unauthorized,
)

log = logging.getLogger(__name__)

MiB = 1024**2
#: Replicate's files API refuses larger uploads with 413.
FILES_API_LIMIT = 100 * MiB
#: How long a model's live schema (and latest version id) is reused.
SCHEMA_TTL_SECONDS = 600.0
#: Events asked for on every prediction: enough to track it without a flood of ``logs`` calls.
WEBHOOK_EVENTS = ("start", "completed")
TERMINAL_STATUSES = frozenset({"succeeded", "failed", "canceled", "aborted"})
#: Answers worth retrying: throttled, or Replicate/its proxy having a bad moment.
TOKEN_MISSING = "Set REPLICATE_API_TOKEN to use Replicate models."
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})

# Live-schema field names we know how to fill, in order of preference.
_VIDEO_FIELDS = ("video_path", "video", "input_video", "video_url")
_RESOLUTION_FIELDS = ("resolution", "target_resolution", "output_resolution")
_FPS_FIELDS = ("target_fps", "fps", "output_fps")
# Our resolution keys -> the spellings models use for the same target (compared case-insensitively).
_RESOLUTION_ALIASES: dict[str, tuple[str, ...]] = {
    "hd": ("hd", "720p", "720"),
    "fhd": ("fhd", "1080p", "1080"),
    "2k": ("2k", "1440p", "qhd"),
    "4k": ("4k", "2160p", "uhd"),
}
_PROGRESS = re.compile(r"^\s*(?P<pct>\d+)%\s*\|.+?\|\s*(?P<cur>\d+)/(?P<total>\d+)")
_PREDICTION_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_VERSION_ID = re.compile(r"^[0-9a-f]{64}$")

T = TypeVar("T")


# ------------------------------------------------------------------------------------------- errors


class ReplicateProviderError(SkyframeError):
    """Replicate could not do what we asked (API error, unreachable, schema we cannot map)."""

    code = "replicate_error"


class ReplicateFileTooLarge(TooLarge):
    """The video is over the files API limit: it has to reach Replicate through a URL instead."""

    code = "replicate_file_too_large"


class OutputUnavailable(ReplicateProviderError):
    """The prediction has no output to download (failed, canceled, or removed after an hour)."""

    code = "replicate_output_unavailable"


class WebhookVerificationError(Unauthorized):
    """A webhook whose signature, timestamp or body does not check out: do not act on it."""

    code = "invalid_webhook_signature"


# ------------------------------------------------------------------------------------------- state


@dataclass(frozen=True)
class PredictionState:
    """What SkyFrame needs from a Replicate prediction, from a poll or a webhook body."""

    id: str
    status: str
    progress: float | None = None
    error: str | None = None
    output_url: str | None = None
    predict_time: float | None = None
    data_removed: bool = False
    created_at: datetime | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    @property
    def succeeded(self) -> bool:
        return self.status == "succeeded"


@dataclass(frozen=True)
class _ModelInfo:
    version_id: str
    schema: dict[str, Any]
    fetched_at: float


# ---------------------------------------------------------------------------------------- provider


class ReplicateProvider:
    """Creates, tracks, cancels and downloads Replicate predictions for catalogue models."""

    def __init__(
        self,
        settings: Settings,
        *,
        retry_attempts: int = 5,
        retry_base_delay: float = 0.5,
        retry_max_delay: float = 20.0,
        schema_ttl: float = SCHEMA_TTL_SECONDS,
    ) -> None:
        self._settings = settings
        self._token = (
            settings.replicate_api_token.get_secret_value() if settings.replicate_api_token else None
        )
        self._retry_attempts = max(1, retry_attempts)
        self._retry_base_delay = retry_base_delay
        self._retry_max_delay = retry_max_delay
        self._schema_ttl = schema_ttl
        self._lock = threading.Lock()
        self._models: dict[str, _ModelInfo] = {}
        self._webhook_secret: str | None = (
            settings.replicate_webhook_secret.get_secret_value()
            if settings.replicate_webhook_secret
            else None
        )
        self._local = threading.local()
        # base_url=None lets the client honour REPLICATE_BASE_URL (tests point it at a fake server).
        self._client = replicate.Client(
            api_token=self._token,
            base_url=getattr(settings, "replicate_base_url", None) or None,
            event_hooks={"response": [self._remember_retry_after]},
        )

    def __repr__(self) -> str:  # never show the token
        return f"ReplicateProvider(token={'set' if self._token else 'unset'})"

    # ------------------------------------------------------------------------------ availability

    def availability(self) -> tuple[bool, str | None]:
        """Whether Replicate models can run here; the reason is shown next to unavailable models."""
        if not self._token:
            return False, TOKEN_MISSING
        return True, None

    # ----------------------------------------------------------------------------------- schema

    def input_schema(self, spec: ModelSpec) -> dict[str, Any]:
        """The model's live ``Input`` JSON schema, with Cog's ``allOf``/``$ref`` enums inlined."""
        return self._model_info(spec).schema

    def latest_version(self, spec: ModelSpec) -> str:
        """The 64-hex id of the model's latest version (what community models are run by)."""
        return self._model_info(spec).version_id

    def _model_info(self, spec: ModelSpec) -> _ModelInfo:
        ref = _model_ref(spec)
        with self._lock:
            cached = self._models.get(ref)
        if cached is not None and time.monotonic() - cached.fetched_at < self._schema_ttl:
            return cached
        self._require_token()
        try:
            model = self._client.models.get(ref)
        except (ReplicateError, httpx.HTTPError) as exc:
            raise self._translate(exc, f"load the schema of {ref}") from exc
        version = model.latest_version
        if version is None or not _VERSION_ID.match(version.id or ""):
            raise ReplicateProviderError(f"Replicate model {ref} has no usable published version.")
        components = (version.openapi_schema or {}).get("components", {}).get("schemas", {})
        raw = components.get("Input")
        if not isinstance(raw, dict) or not isinstance(raw.get("properties"), dict):
            raise ReplicateProviderError(f"Replicate model {ref} does not describe its inputs.")
        schema = {
            **raw,
            "properties": {name: _inline(prop, components) for name, prop in raw["properties"].items()},
        }
        info = _ModelInfo(version_id=version.id, schema=schema, fetched_at=time.monotonic())
        with self._lock:
            self._models[ref] = info
        return info

    # ------------------------------------------------------------------------------------ input

    def build_input(
        self,
        spec: ModelSpec,
        options: EnhanceOptions,
        video_url: str,
        *,
        source_fps: float | None = None,
    ) -> dict[str, Any]:
        """Map SkyFrame options onto the live schema's field names, checked against its enums/ranges.

        ``source_fps``: when the user gave no fps and the model takes one, keep the clip's own rate
        (clamped to the model's range) instead of the model default, which may interpolate (and bill) more.
        """
        schema = self.input_schema(spec)
        props: dict[str, dict[str, Any]] = schema["properties"]
        ref = _model_ref(spec)
        video_field = _first_field(props, _VIDEO_FIELDS)
        if video_field is None:
            raise ReplicateProviderError(
                f"The live schema of {ref} has no video input SkyFrame knows (fields: {', '.join(props)})."
            )
        result: dict[str, Any] = {video_field: video_url}
        if options.scale is not None:
            raise Invalid(
                f"Model {spec.key} takes an output resolution, not a scale. {describe_allowed(spec)}",
                code="invalid_options",
            )

        resolution = options.resolution or spec.default_resolution
        if resolution is not None:
            res_field = _first_field(props, _RESOLUTION_FIELDS)
            if res_field is None:
                raise ReplicateProviderError(
                    f"The live schema of {ref} no longer takes an output resolution."
                )
            allowed = [str(v) for v in props[res_field].get("enum") or []]
            value = _match_resolution(resolution, allowed)
            if value is None:
                offered = [k for k in RESOLUTIONS if _match_resolution(k, allowed)]
                raise Invalid(
                    f"Resolution {resolution!r} is not offered by {ref} now; allowed: "
                    f"{', '.join(offered) or 'none we know'} (Replicate values: {', '.join(allowed)}).",
                    code="invalid_options",
                )
            result[res_field] = value

        fps_field = _first_field(props, _FPS_FIELDS)
        if options.fps is not None:
            if fps_field is None:
                raise Invalid(f"Model {spec.key} does not take an output fps.", code="invalid_options")
            low, high = props[fps_field].get("minimum"), props[fps_field].get("maximum")
            if (low is not None and options.fps < low) or (high is not None and options.fps > high):
                raise Invalid(
                    f"fps must be between {low} and {high} for {spec.key} (Replicate's current limits).",
                    code="invalid_options",
                )
            result[fps_field] = options.fps
        elif fps_field is not None and source_fps:
            low, high = props[fps_field].get("minimum"), props[fps_field].get("maximum")
            fps = round(source_fps)
            fps = max(fps, low) if low is not None else fps
            fps = min(fps, high) if high is not None else fps
            result[fps_field] = int(fps)

        _check_against_schema(ref, schema, result)
        return result

    def check_video_input(self, size: int, *, signed_urls: bool | None = None) -> str:
        """Decide up front how a ``size``-byte video will reach Replicate: "files_api" or "signed_url".

        Raises :class:`Invalid` when it is too big for the files API and no public URL is configured.
        """
        if size <= FILES_API_LIMIT:
            return "files_api"
        if signed_urls if signed_urls is not None else bool(self._settings.public_url):
            return "signed_url"
        raise Invalid(
            f"This video is {size / MiB:.0f} MiB; Replicate's files API takes at most "
            f"{FILES_API_LIMIT // MiB} MiB. Set SKYFRAME_PUBLIC_URL to an address Replicate can reach so it "
            "can fetch the video through a signed link (or put it on storage such as S3 and pass its URL).",
            code="replicate_input_too_large",
            size=size,
            limit=FILES_API_LIMIT,
        )

    def video_input(self, path: Path, signed_url: str | None = None) -> str:
        """URL Replicate will read the video from: files API up to 100 MiB, else ``signed_url``."""
        size = Path(path).stat().st_size
        if self.check_video_input(size, signed_urls=signed_url is not None) == "files_api":
            return self.upload_input(path)
        assert signed_url is not None
        return signed_url

    def upload_input(self, path: Path) -> str:
        """Upload through the files API and return the file's URL; refuse before sending if > 100 MiB."""
        path = Path(path)
        size = path.stat().st_size
        if size > FILES_API_LIMIT:
            raise self._too_large(size)
        content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        try:
            uploaded = self._retrying(
                "upload the video",
                lambda: self._client.files.create(
                    path, content_type=content_type, metadata={"source": "skyframe"}
                ),
            )
        except ReplicateProviderError as exc:
            if exc.details.get("status") == 413:
                raise self._too_large(size) from exc
            raise
        url = (uploaded.urls or {}).get("get")
        if not url:
            raise ReplicateProviderError("Replicate's files API returned no URL for the upload.")
        log.info("uploaded %s (%d bytes) to Replicate as file %s", path.name, size, uploaded.id)
        return url

    @staticmethod
    def _too_large(size: int) -> ReplicateFileTooLarge:
        return ReplicateFileTooLarge(
            f"The video is {size / MiB:.1f} MiB, over the {FILES_API_LIMIT // MiB} MiB limit of Replicate's "
            "files API. Set SKYFRAME_PUBLIC_URL so Replicate can fetch it through a signed link instead.",
            size=size,
            limit=FILES_API_LIMIT,
        )

    # ------------------------------------------------------------------------------ predictions

    def create(self, spec: ModelSpec, input: dict[str, Any], webhook_url: str | None) -> PredictionState:
        """Start a prediction: official models by name, community models by their latest version id."""
        ref = _model_ref(spec)
        self._require_token()
        params: dict[str, Any] = {}
        if webhook_url:
            params = {"webhook": webhook_url, "webhook_events_filter": list(WEBHOOK_EVENTS)}
        if spec.official:
            prediction = self._retrying(
                f"start {ref}",
                lambda: self._client.models.predictions.create(model=ref, input=input, **params),
            )
        else:
            version = self.latest_version(spec)
            prediction = self._retrying(
                f"start {ref}",
                lambda: self._client.predictions.create(version=version, input=input, **params),
            )
        state = self.parse_prediction(prediction.dict())
        log.info("started Replicate prediction %s on %s (%s)", state.id, ref, state.status)
        return state

    def get(self, prediction_id: str) -> PredictionState:
        """Poll one prediction (the client already retries GETs on 429/503/504)."""
        payload = self._retrying(
            "read the prediction", lambda: self._json("GET", f"/v1/predictions/{_check_id(prediction_id)}")
        )
        return self.parse_prediction(payload)

    def cancel(self, prediction_id: str) -> PredictionState:
        """Ask Replicate to stop a prediction (it is still billed for the time it ran)."""
        payload = self._retrying(
            "cancel the prediction",
            lambda: self._json("POST", f"/v1/predictions/{_check_id(prediction_id)}/cancel"),
        )
        state = self.parse_prediction(payload)
        log.info("canceled Replicate prediction %s (now %s)", state.id, state.status)
        return state

    def wait(
        self,
        prediction_id: str,
        *,
        poll_interval: float | None = None,
        timeout: float | None = None,
        on_update: Callable[[PredictionState], None] | None = None,
    ) -> PredictionState:
        """Poll until terminal (for the CLI and tests; the job system mixes polls with webhooks)."""
        interval = poll_interval if poll_interval is not None else self._settings.replicate_poll_interval
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            state = self.get(prediction_id)
            if on_update is not None:
                on_update(state)
            if state.terminal:
                return state
            if deadline is not None and time.monotonic() >= deadline:
                raise ReplicateProviderError(
                    f"Prediction {prediction_id} is still {state.status} after {timeout:.0f} s.",
                    code="replicate_timeout",
                )
            time.sleep(interval)

    def parse_prediction(self, payload: Mapping[str, Any]) -> PredictionState:
        """Prediction JSON (API answer or webhook body) -> :class:`PredictionState`."""
        prediction_id = payload.get("id")
        if not isinstance(prediction_id, str) or not prediction_id:
            raise Invalid("Not a Replicate prediction: no id.", code="invalid_prediction")
        status = str(payload.get("status") or "starting")
        progress = 1.0 if status == "succeeded" else _parse_progress(payload.get("logs"))
        metrics = payload.get("metrics") or {}
        predict_time = metrics.get("predict_time") if isinstance(metrics, Mapping) else None
        return PredictionState(
            id=prediction_id,
            status=status,
            progress=progress,
            error=_error_text(status, payload.get("error")),
            output_url=_output_url(payload.get("output")),
            predict_time=float(predict_time) if isinstance(predict_time, int | float) else None,
            data_removed=bool(payload.get("data_removed")),
            created_at=_parse_time(payload.get("created_at")),
            started_at=_parse_time(payload.get("started_at")),
            completed_at=_parse_time(payload.get("completed_at")),
        )

    # -------------------------------------------------------------------------------- download

    def download_output(self, state: PredictionState, dst: Path) -> int:
        """Stream the output video to ``dst`` (via a temporary name, then rename); return its size."""
        if state.data_removed:
            raise OutputUnavailable(
                f"Replicate has removed the output of prediction {state.id} (API prediction data is kept "
                "for about an hour); run the job again.",
                code="replicate_data_removed",
            )
        if not state.output_url:
            reason = state.error or f"it is {state.status}"
            raise OutputUnavailable(f"Prediction {state.id} has no output to download: {reason}")
        dst = Path(dst)
        dst.parent.mkdir(parents=True, exist_ok=True)
        tmp = dst.with_name(f".{dst.name}.part")
        try:
            if state.output_url.startswith("data:"):
                header, _, data = state.output_url.partition(",")
                raw = base64.b64decode(data) if header.endswith(";base64") else data.encode()
                tmp.write_bytes(raw)
            else:
                self._retrying("download the output", lambda: self._download(state, tmp))
            size = tmp.stat().st_size
            os.replace(tmp, dst)
        finally:
            tmp.unlink(missing_ok=True)
        log.info("downloaded output of %s (%d bytes)", state.id, size)
        return size

    def _download(self, state: PredictionState, tmp: Path) -> None:
        # A plain client on purpose: output hosts are not the API, so the token must not go there.
        assert state.output_url is not None
        timeout = httpx.Timeout(30.0, connect=10.0)
        with httpx.stream("GET", state.output_url, timeout=timeout, follow_redirects=True) as response:
            if response.status_code in (403, 404, 410):
                raise OutputUnavailable(
                    f"The output of prediction {state.id} is no longer available "
                    f"(HTTP {response.status_code}); Replicate deletes it after about an hour.",
                    code="replicate_data_removed",
                )
            if response.status_code >= 400:
                raise ReplicateProviderError(
                    f"Downloading the output of {state.id} failed with HTTP {response.status_code}.",
                    status=response.status_code,
                )
            with tmp.open("wb") as fh:
                for chunk in response.iter_bytes(1024 * 1024):
                    fh.write(chunk)

    # ------------------------------------------------------------------------------------- cost

    def price_per_second(self) -> float | None:
        """Configured price in USD per second of ``predict_time``; no price -> no estimate."""
        return self._settings.replicate_price_per_second

    def estimate_cost(self, state: PredictionState, spec: ModelSpec | None = None) -> float | None:
        """``predict_time`` x the configured price, or None when either is unknown.

        Official models (Topaz) bill per output second, not per GPU second, so they get no estimate.
        """
        price = self.price_per_second()
        if price is None or state.predict_time is None or (spec is not None and spec.official):
            return None
        return state.predict_time * price

    # --------------------------------------------------------------------------------- webhooks

    def webhook_secret(self) -> str:
        """The signing secret: ``SKYFRAME_REPLICATE_WEBHOOK_SECRET`` or, failing that, the account's."""
        if self._webhook_secret:
            return self._webhook_secret
        self._require_token()
        try:
            key = self._client.webhooks.default.secret().key
        except (ReplicateError, httpx.HTTPError) as exc:
            raise self._translate(exc, "read the webhook signing secret") from exc
        self._webhook_secret = key
        return key

    def verify_webhook(self, body: bytes, headers: Mapping[str, str]) -> PredictionState:
        """Verify with this provider's secret and parse the prediction in the body."""
        return self.parse_prediction(verify_webhook(body, headers, self.webhook_secret()))

    # -------------------------------------------------------------------------------- internals

    def _require_token(self) -> None:
        if not self._token:
            raise ReplicateProviderError(
                "Set REPLICATE_API_TOKEN to use Replicate models.", code="replicate_unavailable"
            )

    def _json(self, method: str, path: str) -> dict[str, Any]:
        # ``Client._request`` is the client's own authenticated, retrying transport; we read the raw JSON
        # because its Prediction model drops ``data_removed`` and fails on status "aborted".
        response = self._client._request(method, path)
        payload = response.json()
        if not isinstance(payload, dict):
            raise ReplicateProviderError(f"Unexpected answer from Replicate for {method} {path}.")
        return payload

    def _remember_retry_after(self, response: httpx.Response) -> None:
        if response.status_code in RETRY_STATUSES:
            self._local.retry_after = response.headers.get("Retry-After")

    def _retry_delay(self, attempt: int) -> float:
        retry_after, self._local.retry_after = getattr(self._local, "retry_after", None), None
        if retry_after is not None and retry_after.strip().isdigit():
            return min(float(retry_after), 60.0)
        return min(self._retry_base_delay * 2 ** (attempt - 1), self._retry_max_delay)

    def _retrying(self, action: str, call: Callable[[], T]) -> T:
        """Run ``call``, retrying on 429/5xx and on connections that never reached Replicate."""
        for attempt in range(1, self._retry_attempts + 1):
            self._local.retry_after = None
            try:
                return call()
            except ReplicateError as exc:
                if exc.status not in RETRY_STATUSES or attempt == self._retry_attempts:
                    raise self._translate(exc, action) from exc
                reason = f"HTTP {exc.status}"
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                if attempt == self._retry_attempts:
                    raise self._translate(exc, action) from exc
                reason = type(exc).__name__
            delay = self._retry_delay(attempt)
            log.warning(
                "Replicate: %s got %s (attempt %d); retrying in %.1f s", action, reason, attempt, delay
            )
            time.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    @staticmethod
    def _translate(exc: Exception, action: str) -> SkyframeError:
        """Client/transport errors -> SkyFrame errors with text a person can act on (never the token)."""
        if isinstance(exc, SkyframeError):
            return exc
        if isinstance(exc, httpx.HTTPError):
            return ReplicateProviderError(
                f"Could not {action}: Replicate is unreachable ({type(exc).__name__}).",
                code="replicate_unreachable",
            )
        assert isinstance(exc, ReplicateError)
        status, detail = exc.status, (exc.detail or exc.title or "").strip()
        text = f"Could not {action}: {detail}" if detail else f"Could not {action}"
        if status in (401, 403):
            return ReplicateProviderError(
                f"Could not {action}: Replicate rejected the API token (HTTP {status}). "
                "Check REPLICATE_API_TOKEN.",
                code="replicate_unauthorized",
                status=status,
            )
        if status == 402:
            return ReplicateProviderError(
                f"{text} (HTTP 402: add credit or a payment method on Replicate).",
                code="replicate_payment_required",
                status=status,
            )
        if status == 404:
            return NotFound(f"{text} (HTTP 404).", code="replicate_not_found", status=status)
        if status == 413:
            return ReplicateProviderError(
                f"{text} (HTTP 413).", code="replicate_file_too_large", status=status
            )
        if status == 422:
            return Invalid(f"Replicate rejected the request: {detail}", code="invalid_options", status=status)
        if status == 429:
            return RateLimited(f"{text} (Replicate is rate limiting; try again shortly).", status=status)
        return ReplicateProviderError(f"{text} (HTTP {status}).", status=status)


# ------------------------------------------------------------------------------------ webhooks


def verify_webhook(
    body: bytes, headers: Mapping[str, str], secret: str, tolerance_s: int = 300
) -> dict[str, Any]:
    """Check a Replicate webhook (Standard Webhooks: HMAC-SHA256 over ``id.timestamp.body``).

    Rejects missing headers, timestamps more than ``tolerance_s`` away from now (replays), bad
    signatures and non-JSON bodies with :class:`WebhookVerificationError`; returns the parsed body.
    """
    if not secret:
        raise WebhookVerificationError("No webhook signing secret is configured.")
    lowered = {k.lower(): v for k, v in headers.items()}
    msg_id = lowered.get("webhook-id")
    timestamp = lowered.get("webhook-timestamp")
    signatures = lowered.get("webhook-signature")
    if not (msg_id and timestamp and signatures):
        raise WebhookVerificationError("Webhook signature headers are missing.")
    try:
        sent_at = int(timestamp)
    except ValueError:
        raise WebhookVerificationError("Webhook timestamp is not a number.") from None
    if abs(time.time() - sent_at) > tolerance_s:
        raise WebhookVerificationError("Webhook timestamp is too old or too new (possible replay).")
    try:
        text = body.decode("utf-8")
        signer = Webhook(secret)
    except EmptyWebhookSecretError:
        raise WebhookVerificationError("The webhook signing secret is empty.") from None
    except (UnicodeDecodeError, binascii.Error, ValueError, RuntimeError) as exc:
        raise WebhookVerificationError(f"Cannot verify webhook: {type(exc).__name__}.") from None
    expected = base64.b64decode(
        signer.sign(msg_id=msg_id, timestamp=datetime.fromtimestamp(sent_at, UTC), data=text).split(",", 1)[1]
    )
    for candidate in signatures.split():
        version, _, encoded = candidate.partition(",")
        if version != "v1":
            continue
        try:
            given = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            continue
        if hmac.compare_digest(given, expected):
            break
    else:
        raise WebhookVerificationError("Webhook signature does not match.")
    try:
        payload = json.loads(text)
    except ValueError:
        raise WebhookVerificationError("Webhook body is not JSON.") from None
    if not isinstance(payload, dict):
        raise WebhookVerificationError("Webhook body is not a JSON object.")
    return payload


# ------------------------------------------------------------------------------------- helpers


def _model_ref(spec: ModelSpec) -> str:
    if spec.provider != "replicate" or not spec.replicate_model:
        raise Invalid(f"Model {spec.key} does not run on Replicate.", code="unknown_model")
    return spec.replicate_model


def _check_id(prediction_id: str) -> str:
    if not _PREDICTION_ID.match(prediction_id or ""):
        raise Invalid(f"Not a Replicate prediction id: {prediction_id!r}.", code="invalid_prediction")
    return prediction_id


def _inline(prop: dict[str, Any], components: Mapping[str, Any]) -> dict[str, Any]:
    """Inline Cog's ``allOf: [{"$ref": ...}]`` (and a bare ``$ref``) so enums sit on the property."""
    merged = {k: v for k, v in prop.items() if k not in ("allOf", "$ref")}
    refs = [part.get("$ref") for part in prop.get("allOf", []) if isinstance(part, dict)]
    refs.append(prop.get("$ref"))
    for ref in refs:
        if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
            target = components.get(ref.rsplit("/", 1)[1])
            if isinstance(target, dict):
                merged = {**target, **merged}
    return merged


def _first_field(props: Mapping[str, Any], names: tuple[str, ...]) -> str | None:
    return next((name for name in names if name in props), None)


def _match_resolution(key: str, allowed: list[str]) -> str | None:
    aliases = _RESOLUTION_ALIASES.get(key.lower(), (key.lower(),))
    by_lower = {value.lower(): value for value in allowed}
    return next((by_lower[a] for a in aliases if a in by_lower), None)


def _check_against_schema(ref: str, schema: Mapping[str, Any], values: Mapping[str, Any]) -> None:
    """Last check before spending money: required fields, enums and ranges of the live schema."""
    props = schema.get("properties", {})
    missing = [name for name in schema.get("required", []) if name not in values]
    if missing:
        raise ReplicateProviderError(
            f"{ref} now requires inputs SkyFrame does not set: {', '.join(missing)}.", code="replicate_schema"
        )
    for name, value in values.items():
        prop = props.get(name)
        if prop is None:
            raise ReplicateProviderError(
                f"{ref} no longer has an input named {name!r}.", code="replicate_schema"
            )
        if "enum" in prop and value not in prop["enum"]:
            allowed = ", ".join(map(str, prop["enum"]))
            raise Invalid(f"{name} must be one of {allowed} for {ref}.", code="invalid_options")
        if isinstance(value, int | float) and not isinstance(value, bool):
            low, high = prop.get("minimum"), prop.get("maximum")
            if (low is not None and value < low) or (high is not None and value > high):
                raise Invalid(f"{name} must be between {low} and {high} for {ref}.", code="invalid_options")


def _parse_progress(logs: Any) -> float | None:
    """Last tqdm line in the logs ("  45%|████  | 45/100 [...]") -> 0.45."""
    if not isinstance(logs, str) or not logs:
        return None
    for line in reversed(re.split(r"[\r\n]+", logs)):
        match = _PROGRESS.match(line)
        if match:
            current, total = int(match["cur"]), int(match["total"])
            value = current / total if total else int(match["pct"]) / 100
            return max(0.0, min(1.0, value))
    return None


def _output_url(output: Any) -> str | None:
    """The video URL in ``output`` (a URL string for these models; the last URL if it is a list)."""
    if isinstance(output, str) and output:
        return output
    if isinstance(output, list):
        urls = [item for item in output if isinstance(item, str) and item]
        return urls[-1] if urls else None
    return None


def _error_text(status: str, error: Any) -> str | None:
    detail = str(error).strip() if error else ""
    if status == "failed":
        return f"Replicate prediction failed: {detail}" if detail else "Replicate prediction failed."
    if status == "canceled":
        return (
            f"Replicate prediction was canceled: {detail}" if detail else "Replicate prediction was canceled."
        )
    if status == "aborted":
        return (
            "Replicate aborted the prediction before it started (its deadline passed); it was not charged."
            + (f" {detail}" if detail else "")
        )
    return detail or None


def _parse_time(value: Any) -> datetime | None:
    """Replicate's ISO 8601 times (``Z`` suffix, up to nanoseconds) -> aware datetimes."""
    if not isinstance(value, str) or not value:
        return None
    text = re.sub(r"(\.\d{6})\d+", r"\1", value.strip()).replace("Z", "+00:00")
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


__all__ = [
    "FILES_API_LIMIT",
    "WEBHOOK_EVENTS",
    "OutputUnavailable",
    "PredictionState",
    "ReplicateFileTooLarge",
    "ReplicateProvider",
    "ReplicateProviderError",
    "WebhookVerificationError",
    "verify_webhook",
]
