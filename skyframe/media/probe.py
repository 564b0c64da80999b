"""Probe uploaded files with PyAV: what a user shot, and whether it really is a decodable video."""

from __future__ import annotations

import logging
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import av.error

from skyframe.errors import Invalid

log = logging.getLogger(__name__)

THUMBNAIL_WIDTH = 480


def _not_a_video(reason: str) -> Invalid:
    return Invalid(f"This file is not a decodable video: {reason}", code="not_a_video")


def _fps(stream: av.video.stream.VideoStream) -> float | None:
    rate: Fraction | None = stream.average_rate or stream.guessed_rate or stream.base_rate
    return round(float(rate), 3) if rate else None


def probe(path: Path) -> dict[str, Any]:
    """Describe the container and its streams (camelCase keys, as the API shows them).

    Every video packet is demuxed (fast: no decoding) so the frame count is exact and a truncated file,
    whose index promises more samples than the bytes hold, is caught here and not halfway through a job.
    """
    try:
        container = av.open(str(path), metadata_errors="ignore")
    except (av.error.FFmpegError, UnicodeDecodeError) as exc:
        raise _not_a_video(
            f"its container cannot be read ({_describe(exc).rstrip('.')}). "
            "The file may be truncated, damaged, or not a video at all."
        ) from None
    with container:
        if not container.streams.video:
            raise _not_a_video("it has no video stream.")
        video = container.streams.video[0]
        ctx = video.codec_context
        if not ctx.name or not ctx.width or not ctx.height:
            raise _not_a_video("the video stream's codec or frame size is unknown.")
        indexed_frames = video.frames or 0
        first_frame = _first_frame(container, video)
        rotation = int(first_frame.rotation or 0) % 360
        packets = _count_packets(path, video.index)
        if packets == 0:
            raise _not_a_video("no video frames could be read.")
        if indexed_frames and packets < indexed_frames:
            raise _not_a_video(
                f"the file is truncated ({packets} of {indexed_frames} frames are present). "
                "Upload the complete file."
            )
        duration = _duration(container, video, packets)
        audio = container.streams.audio[0] if container.streams.audio else None
        width, height = ctx.width, ctx.height
        display = (height, width) if rotation in (90, 270) else (width, height)
        return {
            "container": container.format.name.split(",")[0],
            "videoCodec": ctx.name,
            "profile": video.profile,
            "width": width,
            "height": height,
            "displayWidth": display[0],
            "displayHeight": display[1],
            "fps": _fps(video),
            "frameCount": packets,
            "duration": round(duration, 3) if duration else None,
            "bitRate": container.bit_rate or None,
            "rotation": rotation,
            "pixelFormat": ctx.pix_fmt,
            "colorPrimaries": _tag(_PRIMARIES, ctx.color_primaries),
            "colorTransfer": _tag(_TRANSFER, ctx.color_trc),
            "colorSpace": _tag(_MATRIX, ctx.colorspace),
            "colorRange": _tag(_RANGE, ctx.color_range),
            "hasAudio": audio is not None,
            "audioCodec": audio.codec_context.name if audio is not None else None,
            "creationTime": container.metadata.get("creation_time"),
            "location": container.metadata.get("location") or container.metadata.get("location-eng"),
            "streams": [
                {
                    "index": s.index,
                    "type": s.type,
                    "codec": (s.codec_context.name if s.codec_context else None)
                    or s.metadata.get("codec_tag"),
                    "name": (s.metadata.get("handler_name") or "").strip() or None,
                }
                for s in container.streams
            ],
        }


def _describe(exc: BaseException) -> str:
    text = getattr(exc, "strerror", None) or str(exc)
    return text.rstrip(".") + "."


# FFmpeg's names for the ISO/IEC 23091-2 code points seen in practice; 2 means "unspecified".
_PRIMARIES = {
    1: "bt709",
    4: "bt470m",
    5: "bt470bg",
    6: "smpte170m",
    7: "smpte240m",
    9: "bt2020",
    12: "smpte432",
}
_TRANSFER = {
    1: "bt709",
    4: "gamma22",
    5: "gamma28",
    6: "smpte170m",
    8: "linear",
    13: "iec61966-2-1",
    14: "bt2020-10",
    15: "bt2020-12",
    16: "smpte2084",
    18: "arib-std-b67",
}
_MATRIX = {0: "gbr", 1: "bt709", 5: "bt470bg", 6: "smpte170m", 9: "bt2020nc", 10: "bt2020c"}
_RANGE = {1: "tv", 2: "pc"}


def _tag(table: dict[int, str], value: Any) -> str | None:
    if value is None:
        return None
    return table.get(int(value))


def _first_frame(container: av.container.InputContainer, video: av.video.stream.VideoStream) -> av.VideoFrame:
    try:
        for frame in container.decode(video):
            return frame
    except av.error.FFmpegError as exc:
        raise _not_a_video(f"the first frame cannot be decoded ({_describe(exc)})") from None
    raise _not_a_video("no video frame could be decoded.")


def _count_packets(path: Path, index: int) -> int:
    count = 0
    try:
        with av.open(str(path), metadata_errors="ignore") as container:
            for packet in container.demux(container.streams[index]):
                if packet.size:
                    count += 1
    except av.error.FFmpegError as exc:
        log.info("demux stopped early on %s: %s", path, exc)
    return count


def _duration(
    container: av.container.InputContainer, video: av.video.stream.VideoStream, frames: int
) -> float | None:
    if video.duration and video.time_base:
        return float(video.duration * video.time_base)
    if container.duration:
        return container.duration / av.time_base
    fps = _fps(video)
    return frames / fps if fps else None


def thumbnail_jpeg(path: Path, width: int = THUMBNAIL_WIDTH) -> bytes:
    """A JPEG of a frame about 10% into the clip (the first frame is often black), display-oriented."""
    with av.open(str(path), metadata_errors="ignore") as container:
        video = container.streams.video[0]
        if container.duration and container.duration > 0:
            try:
                container.seek(int(container.duration * 0.1), backward=True)
            except av.error.FFmpegError:
                container.seek(0)
        frame = next(container.decode(video))
        rotation = int(frame.rotation or 0) % 360
        image = frame.to_ndarray(format="rgb24")
    if rotation:
        import numpy as np

        # The display matrix rotates counter-clockwise by `rotation` degrees.
        image = np.ascontiguousarray(np.rot90(image, k=rotation // 90))
    src = av.VideoFrame.from_ndarray(image, format="rgb24")
    height = max(2, round(src.height * width / src.width / 2) * 2)
    scaled = src.reformat(width=width, height=height, format="yuvj420p", interpolation="AREA")
    encoder = av.CodecContext.create("mjpeg", "w")
    encoder.width, encoder.height, encoder.pix_fmt = width, height, "yuvj420p"
    encoder.time_base = Fraction(1, 25)
    encoder.options = {"qmin": "2", "qmax": "4"}
    packets = [*encoder.encode(scaled), *encoder.encode(None)]
    return b"".join(bytes(p) for p in packets)
