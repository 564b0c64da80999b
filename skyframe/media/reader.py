"""Reading a source video for the enhancement pipeline: probe once, then demux + decode in one pass.

The probe decodes the first frame because some properties only show up on frames in PyAV/FFmpeg: the
display matrix (rotation/flip) and the actual colour range (``yuvj420p`` GoPro files say "full" only
there). Any FFmpeg failure while opening or decoding becomes :class:`~skyframe.errors.Invalid` with code
``bad_input`` and a sentence a person can act on, never a traceback.

:meth:`SourceReader.items` yields, in file order, decoded video frames of the selected segment and the
untouched packets of the other streams that should be copied, so the writer can interleave them without
buffering a whole clip.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import av.error
import numpy as np

from skyframe.errors import Invalid

log = logging.getLogger(__name__)

#: swscale colourspace codes (SWS_CS_*) for FFmpeg AVColorSpace values; unknown -> BT.601 (FFmpeg default)
_SWS_CS = {1: 1, 4: 4, 5: 5, 6: 5, 7: 7, 9: 9, 10: 9}


def bad_input(path: Path, why: str) -> Invalid:
    return Invalid(f"Cannot read {path.name}: {why}", code="bad_input", path=str(path))


@dataclass
class StreamInfo:
    index: int
    type: str
    codec: str | None
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass
class SourceInfo:
    """What the pipeline needs to know about a source before it starts."""

    path: Path
    format_name: str
    video_index: int
    width: int  # coded (stored) size
    height: int
    display_matrix: list[int] | None
    rotation: int  # counter-clockwise degrees, -180..180
    time_base: Fraction
    frame_rate: Fraction | None
    start_seconds: float  # container start, usually 0
    duration_seconds: float | None
    frames: int | None  # frame count in the header, if any
    pix_fmt: str
    bit_depth: int
    color_range: int  # AVColorRange: 1 limited, 2 full, 0 unknown
    color_primaries: int
    color_trc: int
    colorspace: int
    sample_aspect_ratio: Fraction | None
    metadata: dict[str, str]
    video_metadata: dict[str, str]
    streams: list[StreamInfo]

    @property
    def quarter_turn(self) -> bool:
        """Rotated by 90/270 degrees: display width and height are swapped."""
        return abs(self.rotation) % 180 == 90

    @property
    def display_size(self) -> tuple[int, int]:
        return (self.height, self.width) if self.quarter_turn else (self.width, self.height)

    @property
    def sws_colorspace(self) -> int:
        """Matrix for YUV<->RGB; the same one is used both ways so colours survive untagged clips."""
        return _SWS_CS.get(self.colorspace, 5)

    @property
    def full_range(self) -> bool:
        return self.color_range == 2 or self.pix_fmt.startswith("yuvj")

    def estimate_frames(self, start: float = 0.0, duration: float | None = None) -> int:
        """Frames expected in ``[start, start + duration)``; a progress estimate, not a promise."""
        total = self.frames
        rate = float(self.frame_rate) if self.frame_rate else None
        if not total and rate and self.duration_seconds:
            total = round(self.duration_seconds * rate)
        if rate is None:
            return max(1, total or 1)
        length = self.duration_seconds if self.duration_seconds is not None else (total or 0) / rate
        remaining = max(0.0, length - start)
        span = remaining if duration is None else min(duration, remaining)
        estimate = math.ceil(span * rate - 1e-6)
        return max(1, min(estimate, total) if total else estimate)


def _open(path: Path) -> Any:
    if not path.is_file():
        raise bad_input(path, "the file does not exist.")
    if path.stat().st_size == 0:
        raise bad_input(path, "the file is empty.")
    try:
        return av.open(str(path), metadata_errors="replace")
    except (av.error.FFmpegError, UnicodeDecodeError) as exc:
        raise bad_input(path, f"it is not a video file FFmpeg can open ({_reason(exc)}).") from None


def _reason(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__


def probe_source(path: Path) -> SourceInfo:
    """Open ``path``, check it has a decodable video stream, and collect what the pipeline needs."""
    path = Path(path)
    container = _open(path)
    try:
        if not container.streams.video:
            raise bad_input(path, "it has no video stream.")
        stream = container.streams.video[0]
        ctx = stream.codec_context
        if ctx is None or not ctx.width or not ctx.height:
            raise bad_input(path, "the video stream has no decoder or no picture size.")
        first = None
        try:
            for frame in container.decode(stream):
                first = frame
                break
        except av.error.FFmpegError as exc:
            raise bad_input(path, f"the video could not be decoded ({_reason(exc)}).") from None
        if first is None:
            raise bad_input(path, "no video frame could be decoded (truncated or corrupt file?).")
        matrix = None
        for side in first.side_data:
            if str(side.type).endswith("DISPLAYMATRIX"):
                matrix = [int(v) for v in np.frombuffer(bytes(side), "<i4", 9)]
        fmt = first.format
        bit_depth = max(c.bits for c in fmt.components) if fmt.components else 8
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        duration = None
        if stream.duration is not None and stream.time_base:
            duration = float(stream.duration * stream.time_base)
        elif container.duration:
            duration = container.duration / 1_000_000
        start = (container.start_time or 0) / 1_000_000
        streams = [
            StreamInfo(
                s.index,
                s.type,
                s.codec_context.name if s.codec_context is not None else None,
                dict(s.metadata),
            )
            for s in container.streams
        ]
        return SourceInfo(
            path=path,
            format_name=container.format.name,
            video_index=stream.index,
            width=first.width,
            height=first.height,
            display_matrix=matrix,
            rotation=round(first.rotation or 0),
            time_base=stream.time_base or Fraction(1, 90000),
            frame_rate=Fraction(rate) if rate else None,
            start_seconds=start,
            duration_seconds=duration,
            frames=stream.frames or None,
            pix_fmt=fmt.name,
            bit_depth=bit_depth,
            color_range=int(first.color_range),
            color_primaries=int(first.color_primaries),
            color_trc=int(first.color_trc),
            colorspace=int(first.colorspace),
            sample_aspect_ratio=stream.sample_aspect_ratio,
            metadata=dict(container.metadata),
            video_metadata=dict(stream.metadata),
            streams=streams,
        )
    finally:
        container.close()


class SourceReader:
    """Demuxes the source once: video frames of the segment, plus packets of ``copy_streams``.

    ``start``/``duration`` are seconds from the beginning of the clip. Packets of copied streams are kept
    when their timestamp lies in the segment; they are never decoded or changed.
    """

    def __init__(
        self,
        info: SourceInfo,
        copy_streams: list[int],
        start: float | None = None,
        duration: float | None = None,
    ) -> None:
        self.info = info
        self.copy_streams = copy_streams
        self.start = start or 0.0
        self.duration = duration
        self.container = _open(info.path)
        self.video = self.container.streams.video[0]
        self.video.thread_type = "AUTO"  # frame threads: the decoder keeps up with no effort
        #: absolute time (seconds) of the segment start; subtract it from every timestamp
        self.origin = info.start_seconds + self.start if (start or duration) else 0.0
        self.end = None if duration is None else info.start_seconds + self.start + duration

    def close(self) -> None:
        self.container.close()

    def items(self, should_stop: Callable[[], bool] = lambda: False) -> Iterator[av.VideoFrame | av.Packet]:
        """Frames (with ``pts`` in the video time base, not yet shifted) and copy-stream packets."""
        path = self.info.path
        streams = [self.video] + [self.container.streams[i] for i in self.copy_streams]
        seek_to = self.info.start_seconds + self.start
        if self.start > 0:
            try:
                self.container.seek(int(seek_to / self.video.time_base), stream=self.video, backward=True)
            except av.error.FFmpegError as exc:
                raise bad_input(path, f"cannot seek to {self.start:.2f} s ({_reason(exc)}).") from None
        tb = self.video.time_base
        last_pts: int | None = None
        step = round(1 / (float(self.info.frame_rate) * tb)) if self.info.frame_rate else 1
        video_done = False
        frames = 0
        last_t = -math.inf
        failure: str | None = None
        try:
            for packet in self.container.demux(streams):
                if should_stop():
                    return
                if packet.stream.index != self.video.index:
                    ts = packet.pts if packet.pts is not None else packet.dts
                    if ts is None or packet.size == 0:
                        continue
                    t = float(ts * packet.time_base)
                    if t < self.origin - 1e-6 and (self.start or self.duration):
                        continue
                    if self.end is not None and t >= self.end:
                        if video_done and t >= self.end + 1.0:
                            return
                        continue
                    yield packet
                    continue
                if video_done:
                    continue
                try:
                    decoded = packet.decode()
                except av.error.FFmpegError as exc:
                    if frames == 0:
                        raise bad_input(path, f"the video could not be decoded ({_reason(exc)}).") from None
                    log.warning("%s: skipping undecodable packet after frame %d: %s", path.name, frames, exc)
                    continue
                for frame in decoded:
                    if frame.pts is None:  # some AVI/raw streams: synthesize from the rate
                        frame.pts = 0 if last_pts is None else last_pts + step
                    last_pts = frame.pts
                    t = float(frame.pts * tb)
                    if t < seek_to - 1e-6 and (self.start or self.duration):
                        continue
                    if self.end is not None and t >= self.end - 1e-6:
                        video_done = True
                        break
                    frames += 1
                    last_t = t
                    yield frame
                if video_done and not self.copy_streams:
                    return
        except av.error.FFmpegError as exc:
            failure = _reason(exc)
        if video_done:
            return
        if frames == 0:
            hint = ""
            if self.info.duration_seconds and self.start < self.info.duration_seconds:
                hint = (
                    f" although the file says it lasts {self.info.duration_seconds:.1f} s;"
                    " it looks truncated or damaged"
                )
            raise bad_input(
                path, f"no video frame from {self.start:.1f} s on could be decoded{hint}{_why(failure)}."
            )
        # The data ran out: fine at the real end of the clip, an error well before it (truncated file).
        expected_end = self.end
        if self.info.duration_seconds:
            clip_end = self.info.start_seconds + self.info.duration_seconds
            expected_end = clip_end if expected_end is None else min(expected_end, clip_end)
        rate = float(self.info.frame_rate) if self.info.frame_rate else 1.0
        if expected_end is not None and last_t < expected_end - max(1.0, 5 / rate):
            raise bad_input(
                path,
                f"the video ends at {last_t - self.info.start_seconds:.1f} s but should last until "
                f"{expected_end - self.info.start_seconds:.1f} s; the file looks truncated or damaged"
                f"{_why(failure)}.",
            )


def _why(failure: str | None) -> str:
    return f" ({failure})" if failure else ""
