"""The web app in a real browser (Debian Chromium via Playwright) against a real ``skyframe serve``.

1. Full flow: upload a real clip through the file input, check the card's metadata, enhance a short
   segment with the local engine, follow live progress, compare (wipe, sync, still frame) and download.
2. Resume: an upload interrupted by a page reload continues from the server's ``receivedBytes``.
3. Errors: the server's message for refused files; Replicate models are disabled without a token;
   live progress falls back to polling when the event stream fails.
4. Layout: no horizontal overflow on a phone-sized window, visible keyboard focus.

Screenshots go to ``test-artifacts/``; with ``SKYFRAME_UPDATE_SCREENSHOTS=1`` the library, running-job
and compare shots are also written to ``docs/screenshots/``.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import time
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.conftest import ServerProcess
from tests.web.conftest import REPO, VIDEO_DIR, ConsoleWatch

pytestmark = [pytest.mark.browser]

RUN_CLIP = VIDEO_DIR / "libopenshot_run.mp4"  # 720x400, 29.97 fps, 5 s, 150 frames
KARMA_CLIP = VIDEO_DIR / "gpmf_karma.mp4"  # ~4 MB
CHUNK = 256 * 1024
DOCS_SCREENSHOTS = REPO / "docs" / "screenshots"
TERMINAL = {"completed", "failed", "canceled"}
TIMES = "\N{MULTIPLICATION SIGN}"  # the page writes sizes as "720<TIMES>400"
# Expected 4xx answers are logged by Chromium as "Failed to load resource" console errors.
HTTP_4XX = r"Failed to load resource: the server responded with a status of 4\d\d"


def wait_ready(page: Page) -> None:
    page.wait_for_selector("body[data-ready='true']", state="attached")


def shoot(page: Page, artifacts: Path, name: str, **kwargs: object) -> None:
    """Screenshot without transient toasts, pointer hover or a focus ring on the picture."""
    page.evaluate("document.getElementById('toasts').replaceChildren(); document.activeElement?.blur()")
    page.mouse.move(0, 0)
    path = artifacts / f"{name}.png"
    page.screenshot(path=str(path), **kwargs)
    if os.environ.get("SKYFRAME_UPDATE_SCREENSHOTS") == "1":
        DOCS_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, DOCS_SCREENSHOTS / path.name)


def card_for(page: Page, filename: str):  # type: ignore[no-untyped-def]
    return page.get_by_test_id("upload-card").filter(has_text=filename).first


def choose(page: Page, testid: str) -> None:
    """Click the label of a visually hidden radio/checkbox, the way a user does."""
    page.locator(f"label:has([data-testid='{testid}'])").click()
    expect(page.get_by_test_id(testid)).to_be_checked()


def upload_through_page(page: Page, path: Path) -> None:
    page.get_by_test_id("file-input").set_input_files(str(path))
    expect(card_for(page, path.name)).to_be_visible(timeout=120_000)


# ---- 1. Full flow -------------------------------------------------------------------------------------


@pytest.mark.slow
def test_upload_enhance_compare_download(page: Page, web_server: ServerProcess, artifacts: Path) -> None:
    page.goto("/?preview=1")  # "Preview (1 s)": keep the CPU job short
    wait_ready(page)
    expect(page.get_by_test_id("preview-toggle")).not_to_be_checked()
    expect(page.locator("#preview-label")).to_have_text("Preview (1 s)")

    upload_through_page(page, RUN_CLIP)
    card = card_for(page, RUN_CLIP.name)
    expect(card.get_by_test_id("card-resolution")).to_have_text(f"720{TIMES}400")
    expect(card.get_by_test_id("card-fps")).to_have_text("29.97 fps")
    expect(card.get_by_test_id("card-duration")).to_have_text("5.0 s")
    card.locator("img").evaluate("img => img.decode()")  # the thumbnail loads

    card.click()
    expect(card).to_have_attribute("aria-pressed", "true")
    expect(page.get_by_test_id("details-name")).to_have_text(RUN_CLIP.name)
    expect(page.get_by_test_id("meta-resolution")).to_have_text(f"720{TIMES}400")
    expect(page.get_by_test_id("meta-fps")).to_have_text("29.97 fps")
    expect(page.get_by_test_id("meta-duration")).to_have_text("5.0 s")
    expect(page.get_by_test_id("meta-frames")).to_have_text("150")
    player = page.get_by_test_id("original-player")
    expect(player).to_have_attribute("src", re.compile(r"/api/uploads/[^/]+/download$"))
    # A settled frame for the picture (a fresh player shows a loading spinner), then back to 0:00.
    seek = "(v, t) => new Promise((ok) => { v.onseeked = ok; v.currentTime = t; })"
    page.wait_for_function("document.querySelector('[data-testid=original-player]').readyState >= 1")
    player.evaluate(seek, 1.0)
    page.wait_for_timeout(500)
    shoot(page, artifacts, "library")
    player.evaluate(seek, 0)

    # Enhance: local_fast, 2x, a 1-second preview segment.
    choose(page, "model-radio-local_fast")
    expect(page.get_by_test_id("model-hint")).to_contain_text("offline")
    choose(page, "size-scale-2")
    expect(page.locator("label:has([data-testid='size-scale-2'])")).to_contain_text(f"1440{TIMES}800")
    choose(page, "preview-toggle")
    with page.expect_response(lambda r: r.url.endswith("/api/jobs/create")) as created:
        page.get_by_test_id("enhance-button").click()
    assert created.value.status == 201, created.value.text()
    sent = created.value.request.post_data_json
    assert sent["model"] == "local_fast"
    assert sent["options"]["scale"] == 2
    assert sent["options"]["start"] == 0
    assert sent["options"]["duration"] == 1
    job_id = created.value.json()["jobId"]

    job = page.locator(f"[data-testid='job-item'][data-job-id='{job_id}']")
    expect(job).to_be_visible()
    bar = job.get_by_test_id("job-progress")
    seen: list[float] = []
    shot = 0.0
    deadline = time.monotonic() + 600
    status = job.get_attribute("data-status")
    while status not in TERMINAL and time.monotonic() < deadline:
        value = float(bar.get_attribute("aria-valuenow") or 0)
        if status == "running" and (not seen or value != seen[-1]):
            seen.append(value)
        if status == "running" and 0 < value < 100 and (not shot or (shot < 30 <= value)):
            # The first intermediate state, then once more past 30% for a more telling picture.
            expect(job.get_by_test_id("job-stage")).not_to_be_empty()
            expect(job.get_by_test_id("job-percent")).to_have_text(re.compile(r"^\d+%$"))
            shoot(page, artifacts, "job-running")
            shot = value
        page.wait_for_timeout(200)
        status = job.get_attribute("data-status")
    assert status == "completed", job.inner_text() + "\n" + web_server.log_tail()
    assert any(0 < v < 100 for v in seen), f"no intermediate progress seen: {seen}"
    assert seen == sorted(seen), f"progress went backwards: {seen}"
    expect(job.get_by_test_id("job-cancel")).to_be_hidden()
    expect(job.get_by_test_id("job-download")).to_be_visible()

    # Compare: opens by itself for a job started here; the button opens it too.
    job.get_by_test_id("job-compare").click()
    compare = page.get_by_test_id("compare")
    expect(compare).to_have_attribute("data-ready", "true", timeout=30_000)
    sizes = page.evaluate(
        """() => {
            const o = document.querySelector('[data-testid=compare-original]');
            const e = document.querySelector('[data-testid=compare-enhanced]');
            return {o: [o.videoWidth, o.videoHeight], e: [e.videoWidth, e.videoHeight],
                    oSrc: o.currentSrc, eSrc: e.currentSrc, eDur: e.duration};
        }"""
    )
    assert sizes["o"] == [720, 400]
    assert sizes["e"] == [1440, 800]
    assert sizes["eSrc"].endswith(f"/api/jobs/{job_id}/download")
    assert 0.5 < sizes["eDur"] < 1.6

    # The wipe follows the pointer...
    layer = page.get_by_test_id("compare-enhanced-layer")
    slider = page.get_by_test_id("compare-slider")
    before = layer.evaluate("el => el.style.clipPath")
    assert before == "inset(0px 0px 0px 50%)"
    frame = page.get_by_test_id("compare-frame").bounding_box()
    assert frame
    y = frame["y"] + frame["height"] / 2
    page.mouse.move(frame["x"] + frame["width"] * 0.5, y)
    page.mouse.down()
    page.mouse.move(frame["x"] + frame["width"] * 0.3, y, steps=5)
    page.mouse.move(frame["x"] + frame["width"] * 0.25, y, steps=5)
    page.mouse.up()
    after = layer.evaluate("el => el.style.clipPath")
    assert after != before
    assert abs(float(compare.get_attribute("data-wipe") or 0) - 25) < 1.5
    handle_box = slider.bounding_box()
    assert handle_box
    assert abs(handle_box["x"] + handle_box["width"] / 2 - (frame["x"] + frame["width"] * 0.25)) < 3
    # ... and the keyboard.
    slider.focus()
    start = int(slider.get_attribute("aria-valuenow") or 0)
    for _ in range(5):
        page.keyboard.press("ArrowRight")
    expect(slider).to_have_attribute("aria-valuenow", str(start + 5))
    page.keyboard.press("Shift+ArrowLeft")
    expect(slider).to_have_attribute("aria-valuenow", str(start - 5))
    page.keyboard.press("End")
    expect(slider).to_have_attribute("aria-valuenow", "100")
    expect(layer).to_have_attribute("style", re.compile(r"inset\(0px 0px 0px 100%\)"))
    page.keyboard.press("Home")
    expect(slider).to_have_attribute("aria-valuenow", "0")

    # Play, pause and seek drive both videos.
    offset = sent["options"]["start"]
    play = page.get_by_test_id("compare-play")
    play.click()
    expect(compare).to_have_attribute("data-playing", "true")
    page.wait_for_timeout(600)
    state = page.evaluate(
        """() => {
            const o = document.querySelector('[data-testid=compare-original]');
            const e = document.querySelector('[data-testid=compare-enhanced]');
            return {op: o.paused, ep: e.paused, ot: o.currentTime, et: e.currentTime};
        }"""
    )
    assert state["et"] > 0.1 or state["ep"], state  # a 1-second clip may already have ended
    if not state["ep"]:
        assert not state["op"], state
        assert abs(state["ot"] - (state["et"] + offset)) < 0.3, state
    if compare.get_attribute("data-playing") == "true":
        play.click()
    expect(compare).to_have_attribute("data-playing", "false")
    page.get_by_test_id("compare-seek").fill("0.5")
    page.wait_for_function(
        """(offset) => {
            const o = document.querySelector('[data-testid=compare-original]');
            const e = document.querySelector('[data-testid=compare-enhanced]');
            return !o.seeking && !e.seeking && Math.abs(e.currentTime - 0.5) < 0.05
                && Math.abs(o.currentTime - (0.5 + offset)) < 0.05;
        }""",
        arg=offset,
    )
    expect(page.get_by_test_id("compare-time")).to_contain_text("0:00.5")

    slider.focus()
    page.keyboard.press("Home")
    for _ in range(5):
        page.keyboard.press("PageUp")
    expect(slider).to_have_attribute("aria-valuenow", "50")
    page.locator("#viewer").scroll_into_view_if_needed()
    shoot(page, artifacts, "compare")

    # Still frame: both frames drawn to canvases at the enhanced size; zoom is in whole pixels.
    page.get_by_test_id("mode-still").click()
    expect(page.get_by_test_id("still-view")).to_be_visible()
    expect(compare).to_have_attribute("data-still", re.compile(r"^1440x800@"))
    drawn = page.evaluate(
        """() => ['still-original', 'still-enhanced'].map((id) => {
            const c = document.querySelector(`[data-testid=${id}]`);
            const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
            let sum = 0, sq = 0, n = 0;
            for (let i = 0; i < d.length; i += 4 * 97) {
                const v = d[i] + d[i + 1] + d[i + 2];
                sum += v; sq += v * v; n++;
            }
            const mean = sum / n;
            return {w: c.width, h: c.height, mean, std: Math.sqrt(sq / n - mean * mean)};
        })"""
    )
    for canvas in drawn:
        assert (canvas["w"], canvas["h"]) == (1440, 800)
        assert canvas["std"] > 10, f"canvas looks blank: {canvas}"
    assert abs(drawn[0]["mean"] - drawn[1]["mean"]) < 60, "the two stills show different frames"
    page.get_by_test_id("zoom-2").click()
    expect(page.get_by_test_id("zoom-2")).to_have_attribute("aria-pressed", "true")
    stage_width = page.evaluate("document.querySelector('.still-stage').getBoundingClientRect().width")
    dpr = page.evaluate("devicePixelRatio")
    assert abs(stage_width - 2 * 1440 / dpr) < 1
    viewport = page.get_by_test_id("still-viewport")
    scroll_before = viewport.evaluate("el => el.scrollLeft")
    box = viewport.bounding_box()
    assert box
    page.mouse.move(box["x"] + box["width"] * 0.3, box["y"] + box["height"] * 0.5)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.1, box["y"] + box["height"] * 0.4, steps=4)
    page.mouse.up()
    assert viewport.evaluate("el => el.scrollLeft") > scroll_before, "dragging did not pan"
    page.get_by_test_id("scaling-smooth").click()
    expect(page.get_by_test_id("scaling-smooth")).to_have_attribute("aria-pressed", "true")
    shoot(page, artifacts, "compare-still")
    page.get_by_test_id("mode-video").click()
    expect(page.get_by_test_id("compare-frame")).to_be_visible()

    # Downloads: the enhanced result and the original.
    href = job.get_by_test_id("job-download").get_attribute("href")
    assert href == f"/api/jobs/{job_id}/download"
    response = page.request.get(href)
    assert response.status == 200
    assert response.headers["content-type"].startswith("video/")
    body = response.body()
    assert len(body) > 10_000 and body[4:8] == b"ftyp"
    original = page.request.get(page.get_by_test_id("download-original").get_attribute("href") or "")
    assert original.status == 200
    assert original.body() == RUN_CLIP.read_bytes()

    # The selection survives a reload through the URL hash.
    page.reload()
    wait_ready(page)
    expect(page.get_by_test_id("compare")).to_have_attribute("data-ready", "true", timeout=30_000)
    expect(page.get_by_test_id("details-name")).to_have_text(RUN_CLIP.name)


# ---- 2. Resume after a reload -------------------------------------------------------------------------


def content_range_start(header: str | None) -> int:
    match = re.match(r"bytes (\d+)-(\d+)/(\d+)", header or "")
    assert match, f"bad Content-Range {header!r}"
    return int(match[1])


def test_upload_resumes_after_reload(page: Page, web_server: ServerProcess) -> None:
    size = KARMA_CLIP.stat().st_size
    sent_before = 5
    page.on("dialog", lambda dialog: dialog.accept())  # "leave the page while uploading?"
    page.goto(f"/?chunk={CHUNK}")
    wait_ready(page)

    held = []
    passed = []
    starts: list[int] = []  # Content-Range starts sent after the reload
    phase = {"stalled": True}

    def network(route) -> None:  # type: ignore[no-untyped-def]
        if route.request.method != "PUT":
            route.continue_()
            return
        start = content_range_start(route.request.headers.get("content-range"))
        if not phase["stalled"]:
            starts.append(start)
            route.continue_()
        elif len(passed) < sent_before:
            passed.append(start)
            route.continue_()
        else:
            held.append(route)  # never reaches the server: the connection stalls here

    page.route("**/api/uploads/*/file", network)
    page.get_by_test_id("file-input").set_input_files(str(KARMA_CLIP))
    deadline = time.monotonic() + 60
    while not held and time.monotonic() < deadline:
        page.wait_for_timeout(100)
    assert held, "the upload never reached its 6th chunk"
    assert passed == [i * CHUNK for i in range(sent_before)]
    item = page.get_by_test_id("upload-item").filter(has_text=KARMA_CLIP.name)
    expect(item).to_have_attribute("data-state", "uploading")

    upload_id = page.evaluate(
        "() => Object.values(JSON.parse(localStorage.getItem('skyframe.pendingUploads')))[0].uploadId"
    )
    with web_server.client() as client:
        stored = client.get(f"/api/uploads/{upload_id}").json()
    assert stored["status"] == "pending"
    assert stored["receivedBytes"] == sent_before * CHUNK

    # Reload while the 6th chunk hangs (the page drops it), then pick the same file again.
    phase["stalled"] = False
    page.reload()
    wait_ready(page)
    pending = page.get_by_test_id("pending-upload").filter(has_text=KARMA_CLIP.name)
    expect(pending).to_be_visible()
    expect(pending).to_have_attribute("data-upload-id", upload_id)
    expect(pending.get_by_test_id("upload-status")).to_contain_text("Interrupted at 31%")
    assert starts == []

    page.get_by_test_id("file-input").set_input_files(str(KARMA_CLIP))
    expect(card_for(page, KARMA_CLIP.name)).to_be_visible(timeout=60_000)
    expect(pending).to_have_count(0)

    received = stored["receivedBytes"]
    assert starts, "no chunk was sent after the reload"
    assert starts[0] == received, f"resumed at {starts[0]}, server had {received}"
    assert min(starts) >= received, f"bytes below {received} were sent again: {starts}"
    assert starts == sorted(set(starts))
    assert len(starts) == math.ceil((size - received) / CHUNK)

    with web_server.client() as client:
        done = client.get(f"/api/uploads/{upload_id}").json()
    assert done["status"] == "ready"
    assert done["size"] == done["receivedBytes"] == size
    assert page.evaluate("localStorage.getItem('skyframe.pendingUploads')") == "{}"
    assert card_for(page, KARMA_CLIP.name).get_attribute("data-upload-id") == upload_id


# ---- 3. Errors ----------------------------------------------------------------------------------------


def test_refused_files_and_unavailable_models(
    page: Page, web_server: ServerProcess, console: ConsoleWatch, tmp_path: Path
) -> None:
    console.allow(HTTP_4XX)  # the refusals below are 4xx answers by design
    fake = tmp_path / "clip.mp4"
    fake.write_text("This is a text file pretending to be a video.\n" * 50)
    notes = tmp_path / "notes.txt"
    notes.write_text("not a video either\n")

    page.goto("/")
    wait_ready(page)
    refusals: dict[str, dict] = {}

    def record(response) -> None:  # type: ignore[no-untyped-def]
        if "/api/uploads" in response.url and response.status >= 400:
            body = response.json()
            refusals[response.url] = {"status": response.status, **body["error"]}

    page.on("response", record)
    page.get_by_test_id("file-input").set_input_files([str(fake), str(notes)])

    fake_item = page.get_by_test_id("upload-item").filter(has_text="clip.mp4")
    notes_item = page.get_by_test_id("upload-item").filter(has_text="notes.txt")
    expect(fake_item).to_have_attribute("data-state", "error", timeout=30_000)
    expect(notes_item).to_have_attribute("data-state", "error")

    not_video = [r for url, r in refusals.items() if url.endswith("/complete")]
    assert len(not_video) == 1 and not_video[0]["status"] == 422, refusals
    expect(fake_item.get_by_test_id("upload-error")).to_have_text(not_video[0]["message"])
    bad_type = [r for url, r in refusals.items() if url.endswith("/init")]
    assert len(bad_type) == 1 and bad_type[0]["status"] == 415, refusals
    expect(notes_item.get_by_test_id("upload-error")).to_have_text(bad_type[0]["message"])
    expect(card_for(page, "clip.mp4")).to_have_count(0)
    # A refused file is forgotten: nothing left to "resume".
    assert page.evaluate("localStorage.getItem('skyframe.pendingUploads')") in (None, "{}")

    # Replicate models are listed but disabled, with the server's reason, and cannot be chosen.
    with httpx.Client(base_url=web_server.url) as client:
        models = {m["key"]: m for m in client.get("/api/models").json()["models"]}
    assert not models["upscale"]["available"]
    option = page.locator("[data-testid='model-option'][data-model='upscale']")
    radio = page.get_by_test_id("model-radio-upscale")
    expect(radio).to_be_disabled()
    expect(option.get_by_test_id("model-unavailable-reason")).to_contain_text(
        models["upscale"]["unavailableReason"]
    )
    option.click(force=True)
    expect(radio).not_to_be_checked()
    expect(page.get_by_test_id("model-radio-local_fast")).to_be_checked()
    # Without a selected clip nothing can start at all.
    expect(page.get_by_test_id("enhance-button")).to_be_disabled()
    expect(page.get_by_test_id("enhance-help")).to_have_text("Select a clip first.")

    # With a clip selected the button enables, for the available model only.
    cards = page.get_by_test_id("upload-card")
    if cards.count():
        cards.first.click()
        option.click(force=True)
        expect(radio).not_to_be_checked()
        expect(page.get_by_test_id("model-radio-local_fast")).to_be_checked()
        expect(page.get_by_test_id("enhance-button")).to_be_enabled()


# ---- 3b. Live progress falls back to polling ----------------------------------------------------------


def api_upload(server: ServerProcess, path: Path) -> dict:
    """Upload a clip straight through the API (init, one PUT, complete)."""
    data = path.read_bytes()
    with server.client() as client:
        init = client.post("/api/uploads/init", json={"filename": path.name, "size": len(data)})
        assert init.status_code == 201, init.text
        upload_id = init.json()["uploadId"]
        put = client.put(f"/api/uploads/{upload_id}/file", content=data)
        assert put.status_code == 200, put.text
        done = client.post(f"/api/uploads/{upload_id}/complete")
        assert done.status_code == 200, done.text
        return done.json()


def test_job_progress_falls_back_to_polling(
    page: Page, web_server: ServerProcess, console: ConsoleWatch
) -> None:
    console.allow(r"net::ERR_FAILED")  # the event stream is cut on purpose
    upload = api_upload(web_server, RUN_CLIP)
    page.route("**/api/jobs/*/events", lambda route: route.abort())
    polls: list[str] = []
    page.on("request", lambda r: polls.append(r.url) if re.search(r"/api/jobs/[^/]+$", r.url) else None)

    page.goto(f"/?preview=1#upload={upload['uploadId']}")
    wait_ready(page)
    expect(page.get_by_test_id("details-name")).to_have_text(RUN_CLIP.name)
    choose(page, "size-scale-2")
    choose(page, "preview-toggle")
    with page.expect_response(lambda r: r.url.endswith("/api/jobs/create")) as created:
        page.get_by_test_id("enhance-button").click()
    job_id = created.value.json()["jobId"]
    with web_server.client() as client:
        client.post(f"/api/jobs/{job_id}/cancel")
        final = client.get(f"/api/jobs/{job_id}").json()["status"]
    assert final in TERMINAL
    job = page.locator(f"[data-testid='job-item'][data-job-id='{job_id}']")
    expect(job).to_have_attribute("data-status", final, timeout=15_000)
    assert any(url.endswith(f"/api/jobs/{job_id}") for url in polls), polls
    if final == "canceled":
        expect(job.get_by_test_id("job-retry")).to_be_visible()
        expect(job.get_by_test_id("job-cancel")).to_be_hidden()


# ---- 4. Layout and keyboard ---------------------------------------------------------------------------


def test_phone_layout_and_keyboard_focus(page: Page, artifacts: Path) -> None:
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto("/")
    wait_ready(page)
    cards = page.get_by_test_id("upload-card")
    if cards.count():
        cards.first.click()
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"page is {overflow}px wider than a phone screen"
    for testid in ("dropzone", "enhance-button", "library-grid"):
        box = page.get_by_test_id(testid).bounding_box()
        assert box and box["x"] >= 0 and box["x"] + box["width"] <= 390
    shoot(page, artifacts, "phone", full_page=True)

    # Keyboard: the skip link comes first, then the upload button; focus is visible.
    page.goto("/")
    wait_ready(page)
    page.keyboard.press("Tab")
    expect(page.locator(".skip-link")).to_be_focused()
    page.keyboard.press("Tab")
    expect(page.get_by_test_id("upload-button")).to_be_focused()
    outline = page.get_by_test_id("upload-button").evaluate("el => getComputedStyle(el).outlineStyle")
    assert outline != "none"
    page.keyboard.press("Tab")
    expect(page.get_by_test_id("file-input")).to_be_focused()
    ring = page.get_by_test_id("dropzone").evaluate("el => getComputedStyle(el).outlineStyle")
    assert ring != "none", "the drop zone shows no focus ring when its input is focused"
