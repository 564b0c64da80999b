"""Writing the enhanced video: encode the new picture, copy everything else the container accepts.

What is kept from the source, and how:

* timestamps: every frame keeps its source ``pts`` (minus the segment start) in the source time base, so
  29.97 fps, 12.5 fps and variable frame rate clips come out with the same timing and frame count;
* rotation: the source display matrix is written to the new stream (the pixels are not rotated);
* colour: primaries/transfer/matrix/range tags are copied, and RGB<->YUV uses the source matrix and range
  both ways; >8-bit sources are encoded at 10 bit when the encoder supports it;
* audio, subtitle and data streams: packets are remuxed untouched (bit-identical). Streams the output
  muxer refuses (e.g. GoPro ``tmcd``/SOS tracks in MP4) are found by a header dry-run and skipped with a
  log line instead of failing the job;
* container metadata (``creation_time``, ``location`` GPS tag, ...) and per-stream metadata.
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import av.error

from skyframe.media.reader import SourceInfo

log = logging.getLogger(__name__)

#: container keys FFmpeg regenerates itself; copying them would only be misleading
_DROP_KEYS = {"major_brand", "minor_version", "compatible_brands", "encoder", "duration"}

SOFTWARE = {"h264": "libx264", "h265": "libx265"}
#: x264/x265 preset. crf sets the quality; the preset trades file size for encoder CPU. "veryfast" keeps
#: a 1080p encode near 25 ms a frame, under 10% of the CPU model time, so the encoder does not slow the
#: model on a small box ("medium" costs ~50 ms for files ~20-30% smaller at the same crf).
DEFAULT_PRESET = "veryfast"
HARDWARE = {"h264": "h264_nvenc", "h265": "hevc_nvenc"}


@dataclass(frozen=True)
class EncoderChoice:
    name: str
    pix_fmt: str
    options: dict[str, str]
    hardware: bool = False


def _supported_formats(codec_name: str) -> set[str]:
    try:
        return {f.name for f in av.codec.Codec(codec_name, "w").video_formats or ()}
    except (av.error.FFmpegError, ValueError):
        return set()


def _pix_fmt(source: SourceInfo, supported: set[str]) -> str:
    """4:2:0, at 10 bit when the source has more than 8 bits and the encoder can.

    4:2:0 even for 4:2:2/4:4:4 sources: browsers and phones only play 4:2:0 H.264/H.265, and the
    result is meant to be watched (and compared in the web page), not to be an intermediate.
    """
    if source.bit_depth > 8 and "yuv420p10le" in supported:
        return "yuv420p10le"
    return "yuv420p"


def _hardware_ok(name: str, pix_fmt: str, width: int, height: int) -> bool:
    """NVENC is compiled into PyAV's FFmpeg but needs a GPU and driver: try to open it once."""
    try:
        ctx = av.CodecContext.create(name, "w")
        ctx.width, ctx.height, ctx.pix_fmt = width, height, pix_fmt
        ctx.time_base = Fraction(1, 30)
        ctx.open()
        return True
    except Exception as exc:  # any failure means "not here"
        log.info("%s is not usable here (%s); using the software encoder.", name, exc)
        return False


def choose_encoder(
    codec: str,
    crf: int,
    source: SourceInfo,
    width: int,
    height: int,
    *,
    hardware: bool,
    preset: str,
    threads: int = 0,
) -> EncoderChoice:
    """libx264/libx265 with ``crf``; NVENC (constant quality ``cq`` = crf) when ``hardware`` and usable.

    ``threads=1`` makes x264 single-threaded: when a CPU model already keeps every core busy, x264's
    frame threads only add synchronisation (about 20% more encoder CPU per frame, measured), and one
    thread encodes 1080p veryfast in ~45 ms, far ahead of the model.
    """
    if codec not in SOFTWARE:
        raise ValueError(f"unknown codec {codec!r}")
    if hardware:
        name = HARDWARE[codec]
        supported = _supported_formats(name)
        if supported:
            pix_fmt = "p010le" if source.bit_depth > 8 and "p010le" in supported else "yuv420p"
            if _hardware_ok(name, pix_fmt, width, height):
                options = {"preset": "p5", "rc": "vbr", "cq": str(crf), "b": "0"}
                return EncoderChoice(name, pix_fmt, options, hardware=True)
    name = SOFTWARE[codec]
    options = {"crf": str(crf), "preset": preset}
    if threads and codec == "h264":
        options["threads"] = str(threads)
    if codec == "h265":
        options["x265-params"] = "log-level=error"
    return EncoderChoice(name, _pix_fmt(source, _supported_formats(name)), options)


def muxable(templates: list[Any], format_name: str) -> tuple[list[Any], list[str]]:
    """Streams whose packets the ``format_name`` muxer accepts, found by writing a header to memory."""
    kept, notes = [], []
    for stream in templates:
        out = av.open(io.BytesIO(), "w", format=format_name)
        try:
            out.add_stream_from_template(stream)
            out.start_encoding()
            kept.append(stream)
        except (av.error.FFmpegError, ValueError, TypeError) as exc:
            what = stream.metadata.get("handler_name", "").strip() or stream.type
            notes.append(f"stream #{stream.index} ({stream.type}, {what}) refused by {format_name}: {exc}")
        finally:
            with contextlib.suppress(av.error.FFmpegError):
                out.close()
    return kept, notes


class VideoWriter:
    """Owns the output container. :meth:`encode` takes RGB frames at model size and scales them once."""

    def __init__(
        self,
        path: Path,
        source: SourceInfo,
        *,
        width: int,
        height: int,
        codec: str = "h264",
        crf: int = 18,
        templates: list[Any] | None = None,
        origin: float = 0.0,
        hardware: bool = False,
        preset: str = DEFAULT_PRESET,
        encoder_threads: int = 0,
    ) -> None:
        self.path = path
        self.width, self.height = width, height
        self.source = source
        self.origin = origin
        self.container = av.open(str(path), "w")
        fmt = self.container.format.name.split(",")[0]
        self.notes: list[str] = []
        self.container.metadata.update({k: v for k, v in source.metadata.items() if k not in _DROP_KEYS})

        self.encoder = choose_encoder(
            codec, crf, source, width, height, hardware=hardware, preset=preset, threads=encoder_threads
        )
        rate = source.frame_rate or Fraction(30)
        stream = self.container.add_stream(self.encoder.name, rate=rate, options=self.encoder.options)
        stream.width, stream.height = width, height
        stream.pix_fmt = self.encoder.pix_fmt
        cc = stream.codec_context
        cc.time_base = source.time_base
        cc.framerate = rate
        cc.color_range = 2 if source.full_range else 1
        cc.color_primaries = source.color_primaries
        cc.color_trc = source.color_trc
        cc.colorspace = source.colorspace
        if source.sample_aspect_ratio and source.sample_aspect_ratio != 1:
            cc.sample_aspect_ratio = source.sample_aspect_ratio
        if codec == "h265" and fmt in ("mp4", "mov"):
            cc.codec_tag = "hvc1"  # what Apple players require for HEVC in MP4
        if source.display_matrix:
            stream.set_display_matrix(source.display_matrix)
        stream.metadata.update(
            {k: v for k, v in source.video_metadata.items() if k not in _DROP_KEYS and k != "timecode"}
        )
        self.video = stream

        kept, notes = muxable(list(templates or []), fmt)
        for note in notes:
            log.info("Not copied: %s", note)
        self.notes += notes
        self.copies: dict[int, Any] = {}
        for template in kept:
            out = self.container.add_stream_from_template(template)
            out.metadata.update(dict(template.metadata))
            self.copies[template.index] = out
        if fmt in ("mp4", "mov"):
            # faststart: index first, so browsers can play while downloading. movie_timescale: MP4 edit
            # lists (a segment's audio starting a few samples after the video) are stored in the movie
            # timescale, 1/1000 s by default, which would move the copied audio by up to 0.5 ms.
            dens = [source.time_base.denominator] + [t.time_base.denominator for t in kept if t.time_base]
            timescale = math.lcm(*dens)
            options = {"movflags": "+faststart"}
            if timescale < 2**31:
                options["movie_timescale"] = str(timescale)
            self.container.options.update(options)
        self._shift: dict[int, int] = {}
        self.frames = 0

    @property
    def copied_streams(self) -> list[int]:
        return list(self.copies)

    def encode(self, frame: av.VideoFrame) -> None:
        """Scale an RGB (``gbrp``/``gbrp16le``) model output to the output size and encode it.

        ``frame.pts`` must already be in the source time base, relative to the segment start.
        """
        src = self.source
        out = frame.reformat(
            width=self.width,
            height=self.height,
            format=self.encoder.pix_fmt,
            src_color_range=2,
            dst_colorspace=src.sws_colorspace,
            dst_color_range=2 if src.full_range else 1,
            interpolation="LANCZOS",
        )
        out.pts = frame.pts
        out.time_base = src.time_base
        out.duration = frame.duration
        out.colorspace = src.colorspace
        out.color_primaries = src.color_primaries
        out.color_trc = src.color_trc
        self.container.mux(self.video.encode(out))
        self.frames += 1

    def mux_packet(self, packet: av.Packet) -> None:
        """Remux a packet of a copied stream unchanged, only shifted by the segment start."""
        stream = self.copies.get(packet.stream.index)
        if stream is None:
            return
        shift = self._shift.get(packet.stream.index)
        if shift is None:
            shift = self._shift[packet.stream.index] = round(self.origin / packet.time_base)
        if shift:
            if packet.pts is not None:
                packet.pts -= shift
            if packet.dts is not None:
                packet.dts -= shift
        packet.stream = stream
        self.container.mux(packet)

    def finish(self) -> None:
        """Flush the encoder and write the trailer (with faststart, this rewrites the file once)."""
        self.container.mux(self.video.encode(None))
        self.container.close()

    def abort(self) -> None:
        try:
            self.container.close()
        except Exception:  # the file is deleted anyway
            log.debug("closing an aborted output failed", exc_info=True)
