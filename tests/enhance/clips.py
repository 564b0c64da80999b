"""Small synthetic clips for engine tests, written with PyAV (odd sizes, rotation, VFR, 10-bit, subtitles)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

VIDEO_DIR = Path(__file__).resolve().parents[3] / "shared" / "testdata" / "video"


def frame_image(i: int, width: int, height: int) -> np.ndarray:
    """A moving colour pattern with edges and texture, so encoders and the model have real work."""
    y, x = np.mgrid[0:height, 0:width]
    r = (x * 3 + i * 7) % 256
    g = (y * 5 + i * 3) % 256
    b = ((x // 8 + y // 8 + i) % 2) * 200 + 20
    return np.stack([r, g, b], axis=-1).astype(np.uint8)


def make_clip(
    path: Path,
    width: int = 160,
    height: int = 90,
    frames: int = 10,
    *,
    rate: int = 30,
    pix_fmt: str = "yuv420p",
    codec: str = "libx264",
    rotation: float | None = None,
    pts: list[int] | None = None,
    time_base: Fraction | None = None,
    audio: bool = False,
    subtitles: list[tuple[int, int, str]] | None = None,
    faststart: bool = False,
) -> Path:
    """Write a test clip. ``pts`` (in ``time_base``) makes it variable frame rate; ``subtitles`` are
    ``(start_ms, duration_ms, text)``, written as subrip (mkv) or mov_text (mp4/mov)."""
    options = {"movflags": "+faststart"} if faststart else {}
    out = av.open(str(path), "w", options=options)
    video = out.add_stream(codec, rate=rate, options={"preset": "ultrafast"} if codec == "libx264" else {})
    video.width, video.height, video.pix_fmt = width, height, pix_fmt
    tb = time_base or Fraction(1, rate)
    video.codec_context.time_base = tb
    if rotation is not None:
        video.set_display_rotation(rotation)
    sub_stream = None
    if subtitles:
        sub_stream = out.add_mux_stream("subrip" if path.suffix == ".mkv" else "mov_text")
        sub_stream.time_base = Fraction(1, 1000)
    audio_stream = out.add_stream("aac", rate=48000) if audio else None
    fmt = "rgb48le" if "10" in pix_fmt else "rgb24"
    for i in range(frames):
        img = frame_image(i, width, height)
        if fmt == "rgb48le":
            img = img.astype(np.uint16) * 257
        frame = av.VideoFrame.from_ndarray(img, format=fmt)
        frame.pts = pts[i] if pts is not None else i
        frame.time_base = tb
        out.mux(video.encode(frame))
    out.mux(video.encode(None))
    if audio_stream is not None:
        seconds = frames / rate
        n = int(48000 * seconds)
        t = np.arange(n) / 48000
        samples = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
        for start in range(0, n, 1024):
            chunk = np.stack([samples[start : start + 1024]] * 2)
            aframe = av.AudioFrame.from_ndarray(np.ascontiguousarray(chunk), format="fltp", layout="stereo")
            aframe.sample_rate = 48000
            aframe.pts = start
            out.mux(audio_stream.encode(aframe))
        out.mux(audio_stream.encode(None))
    for start_ms, dur_ms, text in subtitles or []:
        data = text.encode()
        if sub_stream is not None and path.suffix != ".mkv":
            data = len(data).to_bytes(2, "big") + data
        packet = av.Packet(data)
        packet.stream = sub_stream
        packet.pts = packet.dts = start_ms
        packet.duration = dur_ms
        packet.time_base = Fraction(1, 1000)
        out.mux(packet)
    out.close()
    return path


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def real_frame(name: str = "gpmf_karma.mp4", index: int = 60) -> np.ndarray:
    """One decoded RGB frame of a testdata clip."""
    with av.open(str(VIDEO_DIR / name)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i == index:
                return frame.to_ndarray(format="rgb24")
    raise AssertionError(f"{name} has fewer than {index + 1} frames")


def video_packets(path: Path, kind: str, index: int | None = None) -> list[tuple[float, bytes]]:
    """``(time, payload)`` of every packet of the first stream of ``kind`` (audios/subtitles/data), or of
    stream ``index``."""
    with av.open(str(path)) as container:
        stream = container.streams[index] if index is not None else getattr(container.streams, kind)[0]
        return [
            (float(p.pts * p.time_base), bytes(p))
            for p in container.demux(stream)
            if p.size and p.pts is not None
        ]
