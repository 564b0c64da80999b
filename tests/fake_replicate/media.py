"""Video helpers for the fake Replicate server: tiny test clips and a fast PyAV rescale.

The fake does the same kind of work as the real models (decode, resize, encode, keep audio) so that
tests exercise real files end to end, but with bicubic swscale instead of a neural network.
"""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import av
import numpy as np


class RescaleCanceled(Exception):
    """Raised from inside :func:`rescale_video` when ``should_stop`` says so."""


def make_clip(
    path: Path,
    *,
    width: int = 64,
    height: int = 36,
    frames: int = 10,
    fps: int = 10,
    audio: bool = True,
) -> Path:
    """Write a small H.264/AAC MP4 with a moving gradient (and a sine tone) for tests."""
    path = Path(path)
    with av.open(str(path), "w", format="mp4") as out:
        vs = out.add_stream("libx264", rate=fps)
        vs.width, vs.height, vs.pix_fmt = width, height, "yuv420p"
        vs.options = {"preset": "ultrafast", "crf": "23"}
        aus = None
        if audio:
            aus = out.add_stream("aac", rate=16000)
            aus.layout = "mono"
        yy, xx = np.mgrid[0:height, 0:width]
        for i in range(frames):
            rgb = np.zeros((height, width, 3), np.uint8)
            rgb[..., 0] = (xx * 255 // max(1, width - 1) + i * 10) % 256
            rgb[..., 1] = yy * 255 // max(1, height - 1)
            rgb[..., 2] = (i * 25) % 256
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = i
            frame.time_base = Fraction(1, fps)
            for packet in vs.encode(frame):
                out.mux(packet)
        for packet in vs.encode():
            out.mux(packet)
        if aus is not None:
            rate, samples_per_frame = 16000, 1024
            total = int(rate * frames / fps)
            t = np.arange(total) / rate
            tone = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
            for start in range(0, total, samples_per_frame):
                chunk = tone[start : start + samples_per_frame]
                aframe = av.AudioFrame.from_ndarray(chunk.reshape(1, -1), format="fltp", layout="mono")
                aframe.sample_rate = rate
                aframe.pts = start
                aframe.time_base = Fraction(1, rate)
                for packet in aus.encode(aframe):
                    out.mux(packet)
            for packet in aus.encode():
                out.mux(packet)
    return path


def fit_box(width: int, height: int, box: tuple[int, int]) -> tuple[int, int]:
    """Largest even size with the clip's aspect ratio inside ``box`` (portrait clips use the rotated box)."""
    box_w, box_h = box
    if height > width:
        box_w, box_h = box_h, box_w
    factor = min(box_w / width, box_h / height)
    return max(2, round(width * factor / 2) * 2), max(2, round(height * factor / 2) * 2)


def rescale_video(
    src: Path,
    dst: Path,
    box: tuple[int, int],
    *,
    on_progress: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> tuple[int, int, int]:
    """Resize every frame of ``src`` to fit ``box`` and write ``dst`` (H.264 + remuxed audio).

    Returns (width, height, frames). Frame count and timestamps are kept; audio packets are copied.
    """
    with av.open(str(src)) as inp, av.open(str(dst), "w", format="mp4") as out:
        vin = inp.streams.video[0]
        ain = inp.streams.audio[0] if inp.streams.audio else None
        width, height = fit_box(vin.codec_context.width, vin.codec_context.height, box)
        total = vin.frames or 0
        vout = out.add_stream("libx264", rate=vin.average_rate or 25)
        vout.width, vout.height, vout.pix_fmt = width, height, "yuv420p"
        vout.time_base = vin.time_base
        vout.codec_context.time_base = vin.time_base
        vout.options = {"preset": "ultrafast", "crf": "23"}
        aout = out.add_stream_from_template(ain) if ain is not None else None
        done = 0
        streams = [vin] + ([ain] if ain is not None else [])
        for packet in inp.demux(*streams):
            if packet.stream is ain:
                if packet.dts is None:
                    continue
                packet.stream = aout
                out.mux(packet)
                continue
            for frame in packet.decode():
                if should_stop is not None and should_stop():
                    raise RescaleCanceled()
                scaled = frame.reformat(width, height, format="yuv420p", interpolation="BICUBIC")
                scaled.pts, scaled.time_base = frame.pts, frame.time_base
                for out_packet in vout.encode(scaled):
                    out.mux(out_packet)
                done += 1
                if on_progress is not None:
                    on_progress(done, max(total, done))
        for out_packet in vout.encode():
            out.mux(out_packet)
    return width, height, done


def probe(path: Path) -> dict[str, object]:
    """Width, height, frame count (decoded) and whether there is audio: what tests assert on outputs."""
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        frames = sum(1 for _ in container.decode(video))
        return {
            "width": video.codec_context.width,
            "height": video.codec_context.height,
            "frames": frames,
            "has_audio": bool(container.streams.audio),
        }
