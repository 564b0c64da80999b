"""A fake Replicate API server for tests (real HTTP on 127.0.0.1, real video work, signed webhooks).

Typical use::

    with FakeReplicate() as fake:                       # or FakeReplicate(files_limit=1024, step_delay=0.1)
        monkeypatch.setenv("REPLICATE_BASE_URL", fake.url)
        monkeypatch.setenv("REPLICATE_API_TOKEN", fake.token)
        ...                                             # SkyFrame / the replicate client talk real HTTP
        fake.fail_next("CUDA out of memory")            # next prediction fails with that error
        fake.throttle("POST /v1/predictions", count=2)  # next 2 creates answer 429 (Retry-After: 0)
        fake.inject_status("GET /v1/predictions/{id}", 503)
        fake.set_step_delay(0.2)                        # slow steps, to cancel mid-run
        fake.remove_data(prediction_id)                 # output null, data_removed true, file gone
        fake.requests_to("POST /v1/predictions/{id}/cancel")   # what reached the fake
        fake.deliveries / fake.redeliver(d) / fake.webhook_duplicates = 1
        fake.webhook_sink_url, fake.sink_received, fake.fail_sink(2)   # a webhook receiver on the fake
        fake.wait_for_status(pid, "processing"); fake.wait_idle()

``fake.webhook_secret`` signs every webhook; :func:`make_clip` writes tiny test videos and :func:`probe`
reads back size, frame count and audio.
"""

from .media import fit_box, make_clip, probe, rescale_video
from .server import (
    FILES_API_LIMIT,
    FakeModel,
    FakeReplicate,
    RecordedRequest,
    SinkRequest,
    WebhookDelivery,
    default_models,
    running_fake,
    validate_input,
)

__all__ = [
    "FILES_API_LIMIT",
    "FakeModel",
    "FakeReplicate",
    "RecordedRequest",
    "SinkRequest",
    "WebhookDelivery",
    "default_models",
    "fit_box",
    "make_clip",
    "probe",
    "rescale_video",
    "running_fake",
    "validate_input",
]
