"""Which input streams an output container can carry unchanged (audio, subtitles, telemetry/data).

Containers differ: MP4 refuses GoPro/DJI data tracks (``gpmd``, ``tmcd``) that MOV keeps, and MKV refuses
some MOV-only codecs. Rather than keep a table that drifts from FFmpeg's, each candidate is tried against
the real muxer by writing a header into memory.
"""

from __future__ import annotations

import io
import logging

import av
import av.error

log = logging.getLogger(__name__)


def can_copy(stream: av.stream.Stream, container_format: str) -> bool:
    """True if ``container_format``'s muxer accepts ``stream`` as a stream copy."""
    buffer = io.BytesIO()
    try:
        with av.open(buffer, "w", format=container_format) as probe:
            probe.add_stream_from_template(stream)
            probe.start_encoding()
    except (av.error.FFmpegError, ValueError, TypeError, NotImplementedError) as exc:
        log.info(
            "stream #%d (%s) cannot be copied into %s: %s", stream.index, stream.type, container_format, exc
        )
        return False
    return True


def copyable_streams(container: av.container.InputContainer, container_format: str) -> list[av.stream.Stream]:
    """Every non-video stream of ``container`` that the output format can keep, in input order."""
    kept = []
    for stream in container.streams:
        if stream.type in ("audio", "subtitle", "data") and can_copy(stream, container_format):
            kept.append(stream)
    return kept
