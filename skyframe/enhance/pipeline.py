"""The video pipeline: decode → (pre-scale) → model → resize → encode → mux, three threads deep.

Decode, inference and encode each run in their own thread joined by small bounded queues, so the model
(the slowest step by 10-100x) never waits on IO, and memory stays flat however long the clip is. The
model thread releases the GIL inside ncnn/PyTorch, so the other two get the remaining CPU.

What the user shot is kept: every frame with its original timestamp (29.97, 12.5 fps or variable frame
rate alike), the rotation (display matrix), colour tags and range, and the container metadata (creation
time, GPS location). Audio, subtitle and data (telemetry) streams are copied packet for packet when the
output container accepts them (MOV keeps GoPro/DJI data tracks that MP4 refuses; see
:mod:`skyframe.media.remux`).

Output size rule. The networks are x4. When the requested output is less than x4 of the input, the input
is first shrunk (area filter) so that the model's x4 output lands on the target, but never by more than
half per axis: ``model_input = input * max(factor / 4, 1/2)``. A x2 upscale therefore runs the model on a
half-size input (4x cheaper than running it at full size and shrinking its output), and 1080p → 4K (x2)
costs what 540p → 1080p does. Drone video at the bitrates cameras record carries little detail at the
single-pixel level (4:2:0 chroma, H.264/H.265 quantisation), and a 2x area shrink keeps what it has while
removing compression noise the model would otherwise sharpen; shrinking further would throw real detail
away, so below x2 the model output is resized down instead. The last resize to the exact (even) target
uses bicubic filtering.

The output is written under a temporary name beside ``dst`` and renamed only when complete: a canceled or
failed run leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import av.error
import numpy as np

from skyframe.catalogue import EnhanceOptions, get_model
from skyframe.enhance.base import Cancelled, Upscaler
from skyframe.enhance.engine import load_upscaler
from skyframe.errors import Invalid, SkyframeError
from skyframe.media.remux import copyable_streams

log = logging.getLogger(__name__)

__all__ = ["Cancelled", "EnhanceResult", "Progress", "enhance_video", "plan_sizes"]

_QUEUE_FRAMES = 4
_MIN_PRESCALE = 0.5
_ENCODERS = {"h264": "libx264", "h265": "libx265"}
_NVENC = {"h264": "h264_nvenc", "h265": "hevc_nvenc"}
_CONTAINER_BY_SUFFIX = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska"}
_END = object()


@dataclass(frozen=True)
class Progress:
    stage: str
    frames_done: int
    frames_total: int
    fps: float
    eta_seconds: float | None


@dataclass(frozen=True)
class EnhanceResult:
    width: int
    height: int
    frames: int
    seconds: float
    fps: float
    runtime: str
    model: str
    model_input: tuple[int, int]


@dataclass(frozen=True)
class SizePlan:
    """Sizes in coded (stored) orientation: model input, model output, final output."""

    model_in: tuple[int, int]
    model_out: tuple[int, int]
    output: tuple[int, int]


def plan_sizes(width: int, height: int, rotation: int, options: EnhanceOptions, scale: int = 4) -> SizePlan:
    """Apply the output size rule (module docstring) to a ``width``x``height`` coded frame."""
    rotated = rotation % 180 == 90
    display_w, display_h = (height, width) if rotated else (width, height)
    out_w, out_h = options.target_size(display_w, display_h)
    if rotated:
        out_w, out_h = out_h, out_w
    factor = min(out_w / width, out_h / height)
    prescale = min(1.0, max(factor / scale, _MIN_PRESCALE))
    in_w = max(2, min(width, math.ceil(width * prescale)))
    in_h = max(2, min(height, math.ceil(height * prescale)))
    return SizePlan((in_w, in_h), (in_w * scale, in_h * scale), (out_w, out_h))


def enhance_video(
    src: Path,
    dst: Path,
    model: str = "local_fast",
    options: EnhanceOptions | None = None,
    *,
    progress: Callable[[Progress], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
    runtime: str = "auto",
    threads: int = 0,
    upscaler: Upscaler | None = None,
) -> EnhanceResult:
    """Enhance ``src`` into ``dst`` (container from its suffix). Raises :class:`Cancelled` when asked to
    stop and :class:`~skyframe.errors.Invalid` for input that cannot be decoded."""
    options = options or EnhanceOptions()
    spec = get_model(model)
    src, dst = Path(src), Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.stem}.{os.getpid()}.partial{dst.suffix}")
    try:
        with _open_input(src) as container:
            job = _Run(container, tmp, options, progress, should_cancel)
            net = upscaler or load_upscaler(spec, runtime, threads)
            result = job.run(net)
        os.replace(tmp, dst)
    finally:
        tmp.unlink(missing_ok=True)
    return EnhanceResult(
        width=result[0],
        height=result[1],
        frames=result[2],
        seconds=result[3],
        fps=result[2] / result[3] if result[3] > 0 else 0.0,
        runtime=net.runtime,
        model=spec.key,
        model_input=job.sizes.model_in,
    )


@contextlib.contextmanager
def _open_input(src: Path) -> Iterator[av.container.InputContainer]:
    try:
        container = av.open(str(src), metadata_errors="ignore")
    except FileNotFoundError:
        raise Invalid(f"{src}: no such file.", code="bad_input") from None
    except (av.error.FFmpegError, UnicodeDecodeError) as exc:
        raise Invalid(f"{src.name} cannot be read as a video ({_reason(exc)}).", code="bad_input") from None
    with container:
        if not container.streams.video:
            raise Invalid(f"{src.name} has no video stream.", code="bad_input")
        yield container


def _reason(exc: BaseException) -> str:
    return (getattr(exc, "strerror", None) or str(exc)).rstrip(".")


class _Run:
    """One enhancement: owns the threads, the queues and the output container."""

    def __init__(
        self,
        container: av.container.InputContainer,
        tmp: Path,
        options: EnhanceOptions,
        progress: Callable[[Progress], None] | None,
        should_cancel: Callable[[], bool] | None,
    ) -> None:
        self.input = container
        self.video = container.streams.video[0]
        self.tmp = tmp
        self.options = options
        self.on_progress = progress
        self.should_cancel = should_cancel or (lambda: False)
        self.stop = threading.Event()
        self.errors: list[BaseException] = []
        first = self._first_frame()
        self.rotation = int(first.rotation or 0) % 360
        self.sizes = plan_sizes(first.width, first.height, self.rotation, options)
        ctx = self.video.codec_context
        self.ten_bit = any(tag in (ctx.pix_fmt or "") for tag in ("10", "12", "16"))
        self.full_range = (ctx.pix_fmt or "").startswith("yuvj") or int(ctx.color_range or 0) == 2
        self.colorspace = "ITU709" if int(ctx.colorspace or 2) == 1 else None
        self.start = options.start or 0.0
        self.end = self.start + options.duration if options.duration else None
        self.frames_total = self._estimate_frames()

    # -- set-up ------------------------------------------------------------------------------------

    def _first_frame(self) -> av.VideoFrame:
        try:
            for frame in self.input.decode(self.video):
                return frame
        except av.error.FFmpegError as exc:
            raise Invalid(f"The video cannot be decoded ({_reason(exc)}).", code="bad_input") from None
        raise Invalid("The video stream holds no decodable frame.", code="bad_input")

    def _estimate_frames(self) -> int:
        rate = self.video.average_rate or self.video.guessed_rate
        total = self.video.frames
        duration = float(self.video.duration * self.video.time_base) if self.video.duration else None
        if duration is None and self.input.duration:
            duration = self.input.duration / av.time_base
        if not total and duration and rate:
            total = round(duration * float(rate))
        if (self.start or self.end) and rate:
            available = (duration or 0) - self.start
            wanted = (self.end - self.start) if self.end else available
            total = max(1, round(min(wanted, available) * float(rate)))
        return max(1, int(total or 1))

    def _open_output(
        self,
    ) -> tuple[av.container.OutputContainer, av.video.stream.VideoStream, dict[int, object]]:
        fmt = _CONTAINER_BY_SUFFIX.get(self.tmp.suffix.lower(), "mp4")
        copies = copyable_streams(self.input, fmt)
        out = av.open(str(self.tmp), "w", format=fmt)
        out.metadata.update(
            {k: v for k, v in self.input.metadata.items() if k not in ("encoder", "major_brand")}
        )
        codec = self._encoder_name()
        rate = self.video.average_rate or self.video.guessed_rate or Fraction(30)
        stream = out.add_stream(codec, rate=rate)
        width, height = self.sizes.output
        stream.width, stream.height = width, height
        stream.pix_fmt = self._pix_fmt(codec)
        stream.time_base = self.video.time_base
        stream.codec_context.time_base = self.video.time_base
        ctx, src = stream.codec_context, self.video.codec_context
        for tag in ("color_primaries", "color_trc", "colorspace", "color_range"):
            with contextlib.suppress(AttributeError, ValueError, TypeError):
                value = getattr(src, tag)
                if value is not None:
                    setattr(ctx, tag, value)
        if codec.startswith("lib"):
            ctx.options = {"crf": str(self.options.crf), "preset": "medium" if codec == "libx264" else "fast"}
        else:
            ctx.options = {"cq": str(self.options.crf), "preset": "p5"}
        if self.rotation:
            stream.set_display_rotation(self.rotation)
        for key in ("language", "handler_name"):
            if key in self.video.metadata:
                stream.metadata[key] = self.video.metadata[key].strip()
        mapping = {s.index: out.add_stream_from_template(s) for s in copies}
        return out, stream, mapping

    def _encoder_name(self) -> str:
        nvenc = _NVENC[self.options.codec]
        if Path("/dev/nvidia0").exists():
            with contextlib.suppress(Exception):
                av.codec.Codec(nvenc, "w")
                return nvenc
        return _ENCODERS[self.options.codec]

    def _pix_fmt(self, codec: str) -> str:
        if self.ten_bit:
            wanted = "p010le" if codec.endswith("nvenc") else "yuv420p10le"
            if wanted in {f.name for f in av.codec.Codec(codec, "w").video_formats}:
                return wanted
        if self.full_range and codec.startswith("lib"):
            return "yuvj420p"
        return "yuv420p"

    # -- the three stages ---------------------------------------------------------------------------

    def run(self, net: Upscaler) -> tuple[int, int, int, float]:
        decoded: queue.Queue[object] = queue.Queue(_QUEUE_FRAMES)
        enhanced: queue.Queue[object] = queue.Queue(_QUEUE_FRAMES)
        out, stream, mapping = self._open_output()
        started = time.monotonic()
        self.done = 0
        workers = [
            threading.Thread(target=self._guard, args=(self._decode, decoded, mapping), name="decode"),
            threading.Thread(target=self._guard, args=(self._infer, net, decoded, enhanced), name="infer"),
        ]
        for worker in workers:
            worker.start()
        try:
            self._guard(self._encode, out, stream, mapping, enhanced, started)
        finally:
            self.stop.set()
            for q in (decoded, enhanced):
                _drain(q)
            for worker in workers:
                worker.join()
            try:
                out.close()
            except av.error.FFmpegError as exc:
                if not self.errors and not self.stop_requested:
                    self.errors.append(exc)
        if self.stop_requested:
            raise Cancelled("Stopped on request; no output was written.")
        if self.errors:
            error = self.errors[0]
            if isinstance(error, SkyframeError):
                raise error
            if isinstance(error, av.error.FFmpegError):
                raise Invalid(
                    f"The video could not be processed ({_reason(error)}).", code="bad_input"
                ) from error
            raise error
        elapsed = time.monotonic() - started
        if self.done == 0:
            raise Invalid("No video frames fall inside the requested segment.", code="bad_input")
        return (*self.sizes.output, self.done, elapsed)

    stop_requested = False

    def _guard(self, fn: Callable[..., None], *args: object) -> None:
        try:
            fn(*args)
        except Cancelled:
            self.stop_requested = True
            self.stop.set()
        except BaseException as exc:  # surfaced by run()
            if not self.stop.is_set():
                self.errors.append(exc)
            self.stop.set()

    def _put(self, q: queue.Queue[object], item: object) -> bool:
        while not self.stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _get(self, q: queue.Queue[object]) -> object:
        while True:
            try:
                return q.get(timeout=0.1)
            except queue.Empty:
                if self.stop.is_set():
                    return _END

    def _decode(self, q: queue.Queue[object], mapping: dict[int, object]) -> None:
        container, video = self.input, self.video
        container.seek(0)
        if self.start:
            container.seek(int(self.start / video.time_base), stream=video, backward=True)
        start_pts = {s.index: round(self.start / s.time_base) for s in container.streams if s.time_base}
        first_video_pts: int | None = None
        streams = [video, *(container.streams[i] for i in mapping)]
        for packet in container.demux(streams):
            if self.stop.is_set():
                return
            stream = packet.stream
            if stream.index != video.index:
                if packet.pts is None or packet.size == 0:
                    continue
                seconds = float(packet.pts * stream.time_base)
                if seconds < self.start or (self.end is not None and seconds >= self.end):
                    continue
                shift = start_pts.get(stream.index, 0)
                packet.pts -= shift
                if packet.dts is not None:
                    packet.dts -= shift
                if not self._put(q, ("packet", packet)):
                    return
                continue
            for frame in packet.decode():
                if frame.pts is None:
                    continue
                seconds = float(frame.pts * video.time_base)
                if seconds < self.start - 1e-6:
                    continue
                if self.end is not None and seconds >= self.end - 1e-6:
                    self._put(q, _END)
                    return
                if first_video_pts is None:
                    first_video_pts = start_pts.get(video.index, 0) if self.start else 0
                image = self._to_model_input(frame)
                if not self._put(q, ("frame", frame.pts - first_video_pts, image)):
                    return
        for frame in video.codec_context.decode(None):  # flush delayed frames
            if frame.pts is None:
                continue
            seconds = float(frame.pts * video.time_base)
            if seconds < self.start - 1e-6 or (self.end is not None and seconds >= self.end - 1e-6):
                continue
            if not self._put(q, ("frame", frame.pts - (first_video_pts or 0), self._to_model_input(frame))):
                return
        self._put(q, _END)

    def _to_model_input(self, frame: av.VideoFrame) -> np.ndarray:
        width, height = self.sizes.model_in
        rgb = frame.reformat(
            width=width,
            height=height,
            format="rgb48le" if self.ten_bit else "rgb24",
            src_colorspace=self.colorspace,
            interpolation="AREA",
        )
        return rgb.to_ndarray()

    def _infer(self, net: Upscaler, inbox: queue.Queue[object], outbox: queue.Queue[object]) -> None:
        width, height = self.sizes.model_out
        fmt = "gbrp16le" if self.ten_bit else "gbrp"
        dtype = np.uint16 if self.ten_bit else np.uint8
        while True:
            item = self._get(inbox)
            if item is _END:
                self._put(outbox, _END)
                return
            if item[0] == "packet":  # type: ignore[index]
                if not self._put(outbox, item):
                    return
                continue
            if self.should_cancel():
                raise Cancelled("Stopped on request.")
            _, pts, image = item  # type: ignore[misc]
            frame = av.VideoFrame(width, height, fmt)
            planes = [_plane_array(frame.planes[i], dtype) for i in (2, 0, 1)]  # gbrp stores G, B, R
            net.upscale(image, out=planes, should_stop=self.should_cancel)
            if not self._put(outbox, ("frame", pts, frame)):
                return

    def _encode(
        self,
        out: av.container.OutputContainer,
        stream: av.video.stream.VideoStream,
        mapping: dict[int, object],
        inbox: queue.Queue[object],
        started: float,
    ) -> None:
        width, height = self.sizes.output
        resize = self.sizes.model_out != self.sizes.output
        while True:
            item = self._get(inbox)
            if item is _END:
                break
            kind = item[0]  # type: ignore[index]
            if kind == "packet":
                packet = item[1]  # type: ignore[index]
                packet.stream = mapping[packet.stream.index]  # type: ignore[index]
                out.mux(packet)
                continue
            _, pts, frame = item  # type: ignore[misc]
            final = frame.reformat(
                width=width if resize else None,
                height=height if resize else None,
                format=stream.pix_fmt,
                dst_colorspace=self.colorspace,
                interpolation="BICUBIC",
            )
            final.pts = pts
            final.time_base = self.video.time_base
            for packet in stream.encode(final):
                out.mux(packet)
            self.done += 1
            self._report(started, "enhancing")
        if self.stop.is_set():
            return
        self._report(started, "finalizing", force=True)
        for packet in stream.encode(None):
            out.mux(packet)

    def _report(self, started: float, stage: str, force: bool = False) -> None:
        if self.on_progress is None:
            return
        elapsed = max(1e-6, time.monotonic() - started)
        fps = self.done / elapsed
        total = max(self.frames_total, self.done)
        eta = (total - self.done) / fps if fps > 0 else None
        self.on_progress(Progress(stage, self.done, total, fps, eta))


def _plane_array(plane: av.video.plane.VideoPlane, dtype: type[np.generic]) -> np.ndarray:
    """A writable numpy view of one plane, without its line padding."""
    itemsize = np.dtype(dtype).itemsize
    rows = np.frombuffer(plane, dtype=dtype).reshape(plane.height, plane.line_size // itemsize)
    return rows[:, : plane.width]


def _drain(q: queue.Queue[object]) -> None:
    with contextlib.suppress(queue.Empty):
        while True:
            q.get_nowait()
