"""ReplicateProvider against the fake Replicate server: real HTTP, the real client, real video files."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from skyframe.catalogue import EnhanceOptions, get_model, validate_options
from skyframe.config import Settings
from skyframe.errors import Invalid, RateLimited
from skyframe.providers.replicate import (
    FILES_API_LIMIT,
    OutputUnavailable,
    PredictionState,
    ReplicateFileTooLarge,
    ReplicateProvider,
    ReplicateProviderError,
    WebhookVerificationError,
    verify_webhook,
)
from tests.fake_replicate import FakeReplicate, make_clip, probe

UPSCALE = get_model("upscale")
PREMIUM = get_model("upscale_premium")


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_clip(tmp_path_factory.mktemp("clips") / "clip.mp4", width=64, height=36, frames=10, fps=10)


@pytest.fixture
def fake() -> Iterator[FakeReplicate]:
    with FakeReplicate() as server:
        yield server


def make_provider(
    fake: FakeReplicate, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, **kwargs: object
) -> ReplicateProvider:
    monkeypatch.setenv("REPLICATE_BASE_URL", fake.url)
    settings = Settings(
        _env_file=None,
        replicate_api_token=fake.token,
        replicate_webhook_secret=None,
        public_url=None,
        data_dir=tmp_path / "data",
    )
    kwargs.setdefault("retry_base_delay", 0.01)
    return ReplicateProvider(settings, **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def provider(fake: FakeReplicate, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> ReplicateProvider:
    return make_provider(fake, monkeypatch, tmp_path)


def run_to_end(provider: ReplicateProvider, state: PredictionState) -> PredictionState:
    return provider.wait(state.id, poll_interval=0.05, timeout=30)


# ----------------------------------------------------------------------------------- happy paths


def test_community_model_runs_on_its_latest_version(
    provider: ReplicateProvider, fake: FakeReplicate, clip: Path, tmp_path: Path
) -> None:
    options = validate_options(UPSCALE, {"resolution": "fhd"})
    url = provider.video_input(clip)
    assert url.startswith(fake.url + "/v1/files/")

    payload = provider.build_input(UPSCALE, options, url)
    assert payload == {"video_path": url, "resolution": "FHD"}

    started = provider.create(UPSCALE, payload, None)
    assert started.status == "starting" and not started.terminal
    seen: list[PredictionState] = []
    final = provider.wait(started.id, poll_interval=0.05, timeout=30, on_update=seen.append)

    assert final.status == "succeeded" and final.terminal and final.error is None
    assert final.progress == 1.0 and final.predict_time and final.predict_time > 0
    assert final.created_at and final.started_at and final.completed_at
    assert final.completed_at >= final.started_at >= final.created_at

    out = tmp_path / "out" / "result.mp4"
    size = provider.download_output(final, out)
    assert size == out.stat().st_size > 0
    assert not list(out.parent.glob("*.part"))
    assert probe(out) == {"width": 1920, "height": 1080, "frames": 10, "has_audio": True}

    (create,) = fake.requests_to("POST /v1/predictions")
    assert create.json["version"] == provider.latest_version(UPSCALE)
    assert len(create.json["version"]) == 64 and "webhook" not in create.json
    assert not fake.requests_to("POST /v1/models/{owner}/{name}/predictions")


def test_official_model_runs_by_name_with_webhooks(
    provider: ReplicateProvider, fake: FakeReplicate, clip: Path, tmp_path: Path
) -> None:
    options = validate_options(PREMIUM, {"resolution": "hd"})
    url = provider.upload_input(clip)
    payload = provider.build_input(PREMIUM, options, url, source_fps=10)
    # fps follows the source, clamped into the live range, instead of the model's default 60
    assert payload == {"video": url, "target_resolution": "720p", "target_fps": 15}

    started = provider.create(PREMIUM, payload, fake.webhook_sink_url + "?job=abc")
    final = run_to_end(provider, started)
    assert final.status == "succeeded"
    assert provider.download_output(final, tmp_path / "premium.mp4") > 0
    assert probe(tmp_path / "premium.mp4")["width"] == 1280

    (create,) = fake.requests_to("POST /v1/models/topazlabs/video-upscale/predictions")
    assert "version" not in create.json
    assert create.json["webhook_events_filter"] == ["start", "completed"]

    fake.wait_for_deliveries(started.id, "completed")
    events = [d.event for d in fake.deliveries if d.prediction_id == started.id]
    assert events == ["start", "completed"]
    states = [provider.verify_webhook(r.body, r.headers) for r in fake.sink_received]
    assert [s.status for s in states] == ["starting", "succeeded"]
    assert states[-1].output_url == final.output_url
    assert all(r.query == "job=abc" for r in fake.sink_received)


# ------------------------------------------------------------------------------------ validation


def test_options_are_checked_against_the_live_schema(
    provider: ReplicateProvider, fake: FakeReplicate, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    url = "https://example.com/in.mp4"
    with pytest.raises(Invalid, match=r"fhd, 2k, 4k"):
        provider.build_input(UPSCALE, EnhanceOptions(resolution="hd"), url)
    with pytest.raises(Invalid, match=r"between 15 and 120"):
        provider.build_input(PREMIUM, EnhanceOptions(resolution="fhd", fps=200), url)
    with pytest.raises(Invalid, match=r"does not take an output fps"):
        provider.build_input(UPSCALE, EnhanceOptions(resolution="fhd", fps=30), url)
    with pytest.raises(Invalid, match=r"not a scale"):
        provider.build_input(UPSCALE, EnhanceOptions(scale=4), url)
    assert provider.build_input(PREMIUM, EnhanceOptions(fps=120), url) == {
        "video": url,
        "target_resolution": "1080p",
        "target_fps": 120,
    }
    schema = provider.input_schema(PREMIUM)
    assert schema["properties"]["target_resolution"]["enum"] == ["720p", "1080p", "4k"]
    # one GET per model thanks to the cache
    assert len(fake.requests_to("GET /v1/models/{owner}/{name}")) == 2

    # Replicate changes the model: a fresh provider sees it and refuses what is gone.
    enum = fake.models["topazlabs/video-upscale"].openapi_schema["components"]["schemas"]["target_resolution"]
    enum["enum"] = ["720p", "1080p"]
    fresh = make_provider(fake, monkeypatch, tmp_path)
    with pytest.raises(Invalid, match=r"'4k' is not offered .* allowed: hd, fhd"):
        fresh.build_input(PREMIUM, EnhanceOptions(resolution="4k"), url)


def test_replicate_rejecting_input_is_invalid(provider: ReplicateProvider) -> None:
    with pytest.raises(Invalid, match=r"resolution must be one of"):
        provider.create(UPSCALE, {"video_path": "https://example.com/a.mp4", "resolution": "8k"}, None)


# --------------------------------------------------------------------------- retries and failures


def test_create_is_retried_on_429_and_5xx(provider: ReplicateProvider, fake: FakeReplicate) -> None:
    fake.throttle("POST /v1/predictions", count=2, retry_after=0)
    fake.inject_status("POST /v1/models/{owner}/{name}/predictions", 503, count=1)
    url = "data:video/mp4;base64,AAAA"
    state = provider.create(UPSCALE, {"video_path": url}, None)
    assert [r.status for r in fake.requests_to("POST /v1/predictions")] == [429, 429, 201]
    premium = provider.create(PREMIUM, {"video": url}, None)
    assert [r.status for r in fake.requests_to("POST /v1/models/{owner}/{name}/predictions")] == [503, 201]
    assert sorted(fake.prediction_ids()) == sorted([state.id, premium.id])  # no duplicates


def test_create_gives_up_after_persistent_429(
    fake: FakeReplicate, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    provider = make_provider(fake, monkeypatch, tmp_path, retry_attempts=3)
    fake.throttle("POST /v1/predictions", count=10, retry_after=0)
    with pytest.raises(RateLimited, match="rate limiting"):
        provider.create(UPSCALE, {"video_path": "https://example.com/a.mp4"}, None)
    assert len(fake.requests_to("POST /v1/predictions")) == 3
    assert fake.prediction_ids() == []


def test_failed_prediction_carries_replicate_error(
    provider: ReplicateProvider, fake: FakeReplicate, clip: Path, tmp_path: Path
) -> None:
    fake.fail_next("CUDA out of memory. Tried to allocate 2.00 GiB", after_frames=3)
    url = provider.upload_input(clip)
    final = run_to_end(provider, provider.create(UPSCALE, {"video_path": url}, None))
    assert final.status == "failed"
    assert final.error == "Replicate prediction failed: CUDA out of memory. Tried to allocate 2.00 GiB"
    assert final.progress == pytest.approx(0.3)
    with pytest.raises(OutputUnavailable, match="CUDA out of memory"):
        provider.download_output(final, tmp_path / "x.mp4")
    assert not (tmp_path / "x.mp4").exists()


def test_cancel_reaches_replicate(provider: ReplicateProvider, fake: FakeReplicate, clip: Path) -> None:
    fake.set_step_delay(0.1)
    url = provider.upload_input(clip)
    started = provider.create(UPSCALE, {"video_path": url}, fake.webhook_sink_url)
    fake.wait_for_status(started.id, "processing")
    fake.throttle("POST /v1/predictions/{id}/cancel", count=1, retry_after=0)

    canceled = provider.cancel(started.id)
    assert canceled.status == "canceled" and canceled.terminal
    assert canceled.error == "Replicate prediction was canceled."
    assert [r.status for r in fake.requests_to("POST /v1/predictions/{id}/cancel")] == [429, 200]
    fake.wait_idle()
    final = provider.get(started.id)
    assert final.status == "canceled" and final.output_url is None
    (completed,) = fake.wait_for_deliveries(started.id, "completed")
    assert completed.payload["status"] == "canceled"


def test_removed_data_is_a_clear_error(
    provider: ReplicateProvider, fake: FakeReplicate, clip: Path, tmp_path: Path
) -> None:
    final = run_to_end(provider, provider.create(UPSCALE, {"video_path": provider.upload_input(clip)}, None))
    fake.remove_data(final.id)
    with pytest.raises(OutputUnavailable, match="no longer available") as stale:
        provider.download_output(final, tmp_path / "late.mp4")  # state from before the removal
    assert stale.value.code == "replicate_data_removed"
    removed = provider.get(final.id)
    assert removed.data_removed and removed.output_url is None
    with pytest.raises(OutputUnavailable, match="removed the output"):
        provider.download_output(removed, tmp_path / "late.mp4")


# --------------------------------------------------------------------------------- input routing


def test_files_api_413_is_a_dedicated_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, clip: Path
) -> None:
    with FakeReplicate(files_limit=1024) as small:
        provider = make_provider(small, monkeypatch, tmp_path)
        assert clip.stat().st_size > 1024
        with pytest.raises(ReplicateFileTooLarge, match="SKYFRAME_PUBLIC_URL"):
            provider.upload_input(clip)
        assert [r.status for r in small.requests_to("POST /v1/files")] == [413]


def test_over_100_mib_never_uploads(provider: ReplicateProvider, fake: FakeReplicate, tmp_path: Path) -> None:
    big = tmp_path / "big.mp4"
    with big.open("wb") as fh:  # sparse: no real disk use
        fh.truncate(FILES_API_LIMIT + 1)
    with pytest.raises(ReplicateFileTooLarge):
        provider.upload_input(big)
    with pytest.raises(Invalid, match="SKYFRAME_PUBLIC_URL"):
        provider.video_input(big)
    with pytest.raises(Invalid, match="SKYFRAME_PUBLIC_URL"):
        provider.check_video_input(FILES_API_LIMIT + 1)
    signed = "https://skyframe.example.com/api/signed/abc?sig=1"
    assert provider.video_input(big, signed_url=signed) == signed
    assert provider.check_video_input(FILES_API_LIMIT) == "files_api"
    assert provider.check_video_input(FILES_API_LIMIT + 1, signed_urls=True) == "signed_url"
    assert fake.requests_to("POST /v1/files") == []


# -------------------------------------------------------------------------------------- webhooks


def test_webhook_signatures(provider: ReplicateProvider, fake: FakeReplicate, clip: Path) -> None:
    started = provider.create(UPSCALE, {"video_path": provider.upload_input(clip)}, fake.webhook_sink_url)
    (delivery,) = fake.wait_for_deliveries(started.id, "completed")
    secret = provider.webhook_secret()
    assert secret == fake.webhook_secret  # fetched from /v1/webhooks/default/secret

    assert verify_webhook(delivery.body, delivery.headers, secret)["id"] == started.id

    tampered = delivery.body.replace(b'"succeeded"', b'"failed"')
    with pytest.raises(WebhookVerificationError, match="does not match"):
        verify_webhook(tampered, delivery.headers, secret)

    other = FakeReplicate()  # another secret, same scheme: a forger without our key
    forged = {**delivery.headers, **other.sign(delivery.body, webhook_id=delivery.webhook_id)}
    with pytest.raises(WebhookVerificationError, match="does not match"):
        verify_webhook(delivery.body, forged, secret)

    stale = fake.sign(delivery.body, timestamp=int(time.time()) - 600)
    with pytest.raises(WebhookVerificationError, match="too old"):
        verify_webhook(delivery.body, stale, secret)
    future = fake.sign(delivery.body, timestamp=int(time.time()) + 600)
    with pytest.raises(WebhookVerificationError):
        verify_webhook(delivery.body, future, secret)
    with pytest.raises(WebhookVerificationError, match="missing"):
        verify_webhook(delivery.body, {"webhook-id": delivery.webhook_id}, secret)

    # rotation: several signatures, one valid, is accepted
    rotated = dict(delivery.headers)
    rotated["webhook-signature"] = "v1,AAAA " + delivery.headers["webhook-signature"]
    assert verify_webhook(delivery.body, rotated, secret)["status"] == "succeeded"

    # an exact replay is still validly signed: the caller dedups on webhook-id
    replay = fake.redeliver(delivery, url=fake.webhook_sink_url)
    assert (replay.webhook_id, replay.body) == (delivery.webhook_id, delivery.body)
    assert fake.sink_received[-1].headers["webhook-id"] == delivery.webhook_id


def test_terminal_webhook_is_retried(provider: ReplicateProvider, fake: FakeReplicate) -> None:
    fake.fail_sink(count=3, status=500)  # start (not retried) + two failed completed attempts
    started = provider.create(UPSCALE, {"video_path": "https://127.0.0.1:9/none.mp4"}, fake.webhook_sink_url)
    fake.wait_for_deliveries(started.id, "completed", count=3)
    fake.wait_idle()
    attempts = [(d.event, d.attempt, d.status_code) for d in fake.deliveries]
    assert attempts == [
        ("start", 1, 500),
        ("completed", 1, 500),
        ("completed", 2, 500),
        ("completed", 3, 200),
    ]
    final = provider.parse_prediction(json.loads(fake.deliveries[-1].body))
    assert final.status == "failed" and "Failed to download input video" in (final.error or "")


# ---------------------------------------------------------------------------- small pure behaviour


def test_parse_prediction_handles_aborted_progress_and_times(provider: ReplicateProvider) -> None:
    state = provider.parse_prediction(
        {
            "id": "abc123",
            "status": "aborted",
            "logs": "loading\n  12%|█         | 12/100 [00:01<00:09]\r  45%|████      | 45/100 [00:02<00:02]",
            "error": None,
            "output": None,
            "created_at": "2025-01-01T10:00:00.123456789Z",
            "metrics": {},
        }
    )
    assert state.terminal and state.progress == 0.45
    assert state.error is not None and "not charged" in state.error
    assert state.created_at is not None and state.created_at.microsecond == 123456
    assert (
        provider.parse_prediction({"id": "x", "status": "processing", "output": ["a", "b"]}).output_url == "b"
    )
    with pytest.raises(Invalid):
        provider.parse_prediction({"status": "succeeded"})


def test_cost_only_with_a_configured_price(provider: ReplicateProvider) -> None:
    state = PredictionState(id="p", status="succeeded", predict_time=12.5)
    assert provider.estimate_cost(state, UPSCALE) is None
    priced = ReplicateProvider(provider._settings.model_copy(update={"replicate_price_per_second": 0.000725}))
    assert priced.estimate_cost(state, UPSCALE) == pytest.approx(0.0090625)
    assert priced.estimate_cost(state, PREMIUM) is None  # billed per output second, not GPU time
    assert priced.estimate_cost(PredictionState(id="p", status="failed"), UPSCALE) is None


def test_availability_and_token_handling(
    fake: FakeReplicate, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv("REPLICATE_API_TOKEN", raising=False)
    monkeypatch.delenv("SKYFRAME_REPLICATE_API_TOKEN", raising=False)
    none = ReplicateProvider(Settings(_env_file=None, replicate_api_token=None))
    assert none.availability() == (False, "Set REPLICATE_API_TOKEN to use Replicate models.")
    with pytest.raises(ReplicateProviderError, match="REPLICATE_API_TOKEN"):
        none.create(UPSCALE, {"video_path": "https://example.com/a.mp4"}, None)

    caplog.set_level(logging.DEBUG)
    good = make_provider(fake, monkeypatch, tmp_path)
    assert good.availability() == (True, None)
    good.create(UPSCALE, {"video_path": "data:video/mp4;base64,AAAA"}, None)
    monkeypatch.setenv("REPLICATE_BASE_URL", fake.url)
    wrong = ReplicateProvider(Settings(_env_file=None, replicate_api_token="r8_wrong_token_value"))
    with pytest.raises(ReplicateProviderError, match="rejected the API token") as exc:
        wrong.input_schema(UPSCALE)
    assert "r8_wrong_token_value" not in str(exc.value) and "r8_wrong" not in repr(wrong)
    assert fake.token not in caplog.text and fake.token not in repr(good)
