"""The video pipeline and the CLI on real testdata clips and small generated ones."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from fractions import Fraction
from pathlib import Path

import av
import pytest

from skyframe.catalogue import EnhanceOptions
from skyframe.enhance.engine import load_upscaler
from skyframe.enhance.pipeline import Cancelled, Progress, enhance_video, plan_sizes
from skyframe.errors import Invalid
from skyframe.media.reader import probe_source
from tests.enhance.clips import VIDEO_DIR, make_clip, video_packets

KARMA = VIDEO_DIR / "gpmf_karma.mp4"


@pytest.fixture(scope="module")
def fast():  # one loaded model for the whole module: loading is cheap, but not free on 2 busy cores
    return load_upscaler("local_fast", "ncnn")


def _video(path: Path) -> tuple[av.container.InputContainer, av.video.stream.VideoStream]:
    container = av.open(str(path))
    return container, container.streams.video[0]


def _frame_times(path: Path) -> list[float]:
    with av.open(str(path)) as container:
        return [float(f.pts * f.time_base) for f in container.decode(video=0)]


def _no_leftovers(folder: Path) -> None:
    assert [p.name for p in folder.iterdir() if ".partial" in p.name] == []


def test_cli_real_clip_segment_keeps_frames_rate_audio_data_and_tags(tmp_path: Path) -> None:
    """``skyframe enhance`` on 0.15 s of the GoPro Karma clip: size, frame count, 29.97 fps, audio packets
    bit-identical, the GPMF telemetry track and the container/colour tags kept. (Short: each 854x480
    frame costs ~1 s of both cores.)"""
    out = tmp_path / "karma-x2.mp4"
    start, duration = 2.0, 0.15
    proc = subprocess.run(
        [sys.executable, "-m", "skyframe", "enhance", str(KARMA), "-o", str(out), "--scale", "2",
         "--start", str(start), "--duration", str(duration)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    src_times = [t for t in _frame_times(KARMA) if start - 1e-6 <= t < start + duration - 1e-6]
    out_times = _frame_times(out)
    assert len(out_times) == len(src_times) == 5
    assert [round(t + start, 4) for t in out_times] == [round(t, 4) for t in src_times]
    container, video = _video(out)
    with container:
        assert (video.codec_context.width, video.codec_context.height) == (1708, 960)
        assert video.average_rate == Fraction(30000, 1001)
        assert container.metadata["creation_time"] == "2017-04-17T19:27:57.000000Z"
        assert [s.metadata.get("handler_name", "").strip() for s in container.streams.data] == ["GoPro MET"]
        frame = next(container.decode(video=0))
        assert (frame.color_range, frame.colorspace, frame.color_primaries) == (2, 1, 1)  # full range BT.709
    src_audio = [(round(t - start, 6), data) for t, data in video_packets(KARMA, "audio")]
    src_audio = [(t, d) for t, d in src_audio if 0 <= t < duration]
    out_audio = [(round(t, 6), d) for t, d in video_packets(out, "audio")]
    assert len(out_audio) == len(src_audio) >= 6
    assert out_audio == src_audio
    out_gpmf = video_packets(out, "data")
    assert out_gpmf and all(d in [d for _, d in video_packets(KARMA, "data", 3)] for _, d in out_gpmf)
    _no_leftovers(tmp_path)


def test_gps_location_and_creation_time_are_kept(tmp_path: Path, fast) -> None:
    src = VIDEO_DIR / "gpmf_max-heromode.mp4"  # GoPro MAX clip with a GPS position in its udta
    dst = tmp_path / "gps.mp4"
    result = enhance_video(src, dst, options=EnhanceOptions(scale=2, start=1.0, duration=0.05), upscaler=fast)
    assert result.frames == 2
    with av.open(str(dst)) as out, av.open(str(src)) as original:
        assert out.metadata["location"] == original.metadata["location"] == "+33.1268-117.3273/"
        assert out.metadata["creation_time"] == original.metadata["creation_time"]


@pytest.mark.parametrize("suffix", [".mkv", ".mp4"])
def test_subtitles_and_audio_are_copied(tmp_path: Path, fast, suffix: str) -> None:
    subs = [(0, 300, "first line"), (400, 300, "second line")]
    src = make_clip(tmp_path / f"sub{suffix}", 96, 54, 24, rate=30, audio=True, subtitles=subs)
    dst = tmp_path / f"out{suffix}"
    result = enhance_video(src, dst, options=EnhanceOptions(scale=2), upscaler=fast)
    assert (result.width, result.height, result.frames) == (192, 108, 24)

    # MP4 (mov_text) fills gaps between cues with empty samples, which its muxer writes itself
    def cues(path: Path) -> list[tuple[float, bytes]]:
        return [(t, d) for t, d in video_packets(path, "subtitles") if len(d) > 2]

    assert len(cues(src)) == 2
    assert cues(dst) == cues(src)
    assert video_packets(dst, "audio") == video_packets(src, "audio")


@pytest.mark.parametrize(
    ("size", "options", "expected"),
    [
        ((161, 91), {"scale": 2}, (322, 182)),
        ((161, 91), {"scale": 4}, (644, 364)),
        ((161, 91), {"resolution": "fhd"}, (1910, 1080)),
        ((91, 161), {"resolution": "hd"}, (720, 1274)),
    ],
)
def test_odd_sizes_give_even_outputs(tmp_path: Path, fast, size, options, expected) -> None:
    src = make_clip(tmp_path / "odd.mkv", *size, frames=3, pix_fmt="yuv444p")
    dst = tmp_path / "odd-out.mp4"
    result = enhance_video(src, dst, options=EnhanceOptions(**options), upscaler=fast)
    container, video = _video(dst)
    with container:
        assert (video.codec_context.width, video.codec_context.height) == expected
        assert (result.width, result.height) == expected
        assert len(list(container.decode(video=0))) == 3


def test_rotation_is_kept_as_metadata(tmp_path: Path, fast) -> None:
    """A phone-style clip stored 160x90 but shown rotated 90°: target 'fhd' fits the portrait box."""
    src = make_clip(tmp_path / "rot.mp4", 160, 90, frames=3, rotation=90)
    info = probe_source(src)
    assert info.rotation == 90 and info.display_size == (90, 160)
    plan = plan_sizes(info, EnhanceOptions(resolution="fhd"))
    assert (plan.out_width, plan.out_height) == (1920, 1080)  # coded; displayed as 1080x1920
    dst = tmp_path / "rot-out.mp4"
    enhance_video(src, dst, options=EnhanceOptions(resolution="fhd"), upscaler=fast)
    with av.open(str(dst)) as container:
        frame = next(container.decode(video=0))
        assert (frame.width, frame.height, frame.rotation) == (1920, 1080, 90)


def test_variable_frame_rate_timestamps_survive(tmp_path: Path, fast) -> None:
    pts = [0, 33, 100, 133, 250, 283, 400, 500]
    src = make_clip(tmp_path / "vfr.mkv", 64, 36, len(pts), pts=pts, time_base=Fraction(1, 1000))
    dst = tmp_path / "vfr-out.mkv"
    enhance_video(src, dst, options=EnhanceOptions(scale=2), upscaler=fast)
    assert _frame_times(dst) == pytest.approx(_frame_times(src), abs=1e-3)


def test_ten_bit_stays_ten_bit(tmp_path: Path, fast) -> None:
    src = make_clip(tmp_path / "10bit.mp4", 64, 36, frames=3, pix_fmt="yuv420p10le")
    dst = tmp_path / "10bit-out.mp4"
    enhance_video(src, dst, options=EnhanceOptions(scale=2), upscaler=fast)
    container, video = _video(dst)
    with container:
        assert video.codec_context.pix_fmt == "yuv420p10le"


def test_h265_output(tmp_path: Path, fast) -> None:
    src = make_clip(tmp_path / "h.mp4", 64, 36, frames=4)
    dst = tmp_path / "h265.mp4"
    enhance_video(src, dst, options=EnhanceOptions(scale=2, codec="h265", crf=28), upscaler=fast)
    container, video = _video(dst)
    with container:
        assert video.codec_context.name == "hevc"
        assert len(list(container.decode(video=0))) == 4


def test_downscale_before_model_when_target_is_smaller() -> None:
    class Info:  # the parts of SourceInfo that plan_sizes reads
        width, height, quarter_turn, display_size = 3840, 2160, False, (3840, 2160)

    plan = plan_sizes(Info(), EnhanceOptions(resolution="fhd"))  # type: ignore[arg-type]
    assert (plan.model_width, plan.model_height, plan.out_width, plan.out_height) == (1920, 1080, 1920, 1080)
    plan = plan_sizes(Info(), EnhanceOptions(scale=2))  # type: ignore[arg-type]
    assert (plan.model_width, plan.out_width) == (3840, 7680)


def test_progress_and_cancel_leave_no_output(tmp_path: Path, fast) -> None:
    src = make_clip(tmp_path / "long.mp4", 320, 180, frames=150)
    dst = tmp_path / "never.mp4"
    seen: list[Progress] = []
    asked: list[float] = []

    def should_cancel() -> bool:
        if any(p.frames_done >= 2 for p in seen):
            asked.append(asked[0] if asked else time.monotonic())
            return True
        return False

    with pytest.raises(Cancelled):
        enhance_video(src, dst, options=EnhanceOptions(scale=2), progress=seen.append,
                      should_cancel=should_cancel, upscaler=fast)  # fmt: skip
    assert time.monotonic() - asked[0] < 5.0
    assert not dst.exists()
    _no_leftovers(tmp_path)
    assert {p.stage for p in seen} >= {"decoding", "enhancing"}
    assert all(p.frames_total >= 150 for p in seen)
    assert not [t for t in threading.enumerate() if t.name.startswith("enhance-")]


def test_cancel_inside_a_slow_frame(tmp_path: Path) -> None:
    """local_detail needs tens of seconds per frame on 2 cores; cancel must not wait for the frame."""
    src = make_clip(tmp_path / "one.mp4", 320, 180, frames=2)
    started = time.monotonic()
    ask_at = [0.0]

    def should_cancel() -> bool:
        return ask_at[0] > 0 and time.monotonic() >= ask_at[0]

    def on_progress(p: Progress) -> None:
        if p.stage == "enhancing" and not ask_at[0]:
            ask_at[0] = time.monotonic() + 1.0

    with pytest.raises(Cancelled):
        enhance_video(src, tmp_path / "x.mp4", "local_detail", EnhanceOptions(scale=4),
                      progress=on_progress, should_cancel=should_cancel, runtime="ncnn")  # fmt: skip
    assert ask_at[0] and time.monotonic() - ask_at[0] < 8.0, time.monotonic() - started
    _no_leftovers(tmp_path)


def test_corrupt_and_truncated_inputs_fail_clearly(tmp_path: Path, fast) -> None:
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(bytes(range(256)) * 2000)
    truncated_tail = tmp_path / "karma-cut.mp4"  # GoPro writes the index (moov) last: cut it off
    truncated_tail.write_bytes(KARMA.read_bytes()[:1_500_000])
    whole = make_clip(tmp_path / "whole.mp4", 64, 36, frames=90, faststart=True)
    truncated_data = tmp_path / "cut.mp4"  # index first, media data cut at about a third
    truncated_data.write_bytes(whole.read_bytes()[: whole.stat().st_size // 3])
    for bad, words in [
        (garbage, "not a video file"),
        (truncated_tail, "not a video file"),
        (truncated_data, "truncated"),
        (tmp_path / "missing.mp4", "does not exist"),
    ]:
        with pytest.raises(Invalid) as info:
            enhance_video(bad, tmp_path / "out.mp4", upscaler=fast)
        assert info.value.code == "bad_input"
        assert words in info.value.message, info.value.message
        assert not (tmp_path / "out.mp4").exists()
    _no_leftovers(tmp_path)
    proc = subprocess.run(
        [sys.executable, "-m", "skyframe", "enhance", str(garbage), "-o", str(tmp_path / "o.mp4")],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr + proc.stdout
    assert "garbage.mp4" in proc.stderr and "not a video file" in proc.stderr


def test_cli_batch_preview_and_models(tmp_path: Path) -> None:
    a = make_clip(tmp_path / "a.mp4", 64, 36, frames=150)  # 5 s: preview takes 3 s from the middle
    b = make_clip(tmp_path / "b.mkv", 48, 28, frames=20)
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "skyframe", "enhance", str(a), str(b), "-o", str(out), "--preview",
         "--scale", "2", "--runtime", "ncnn"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert len(_frame_times(out / "a-enhanced.mp4")) == 90
    assert len(_frame_times(out / "b-enhanced.mkv")) == 20
    listing = subprocess.run(
        [sys.executable, "-m", "skyframe", "models"], capture_output=True, text=True, timeout=120
    )
    assert listing.returncode == 0 and "local_fast" in listing.stdout and "local_detail" in listing.stdout
