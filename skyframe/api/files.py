"""Serving stored files with HTTP Range support, so a browser <video> can seek."""

from __future__ import annotations

import re
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import Response, StreamingResponse
from starlette.concurrency import iterate_in_threadpool

from skyframe.errors import BadRange, NotFound
from skyframe.storage import Storage

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def content_disposition(filename: str, inline: bool = False) -> str:
    """RFC 6266/5987: an ASCII fallback plus the exact UTF-8 name."""
    fallback = re.sub(r"[^A-Za-z0-9._ -]", "_", filename) or "download"
    kind = "inline" if inline else "attachment"
    return f"{kind}; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """One byte range (inclusive) or None for the whole file. Multi-range requests get the whole file."""
    if not header or "," in header:
        return None
    match = _RANGE.match(header.strip())
    if not match or (not match[1] and not match[2]):
        raise BadRange(f"Malformed Range header {header!r}.", code="bad_range", size=size)
    if not match[1]:
        length = int(match[2])
        if length == 0:
            raise BadRange("Empty suffix range.", code="bad_range", size=size)
        return max(0, size - length), size - 1
    start = int(match[1])
    end = min(int(match[2]), size - 1) if match[2] else size - 1
    if start >= size or end < start:
        raise BadRange(f"Range {header!r} is outside the {size}-byte file.", code="bad_range", size=size)
    return start, end


def stored_file_response(
    request: Request,
    storage: Storage,
    key: str,
    media_type: str,
    filename: str | None = None,
    inline: bool = True,
) -> Response:
    size = storage.size(key)
    if size is None:
        raise NotFound("The file is not available.", code="file_not_found")
    headers = {"Accept-Ranges": "bytes", "Cache-Control": "private, max-age=0"}
    if filename:
        headers["Content-Disposition"] = content_disposition(filename, inline=inline)
    try:
        byte_range = parse_range(request.headers.get("range"), size)
    except BadRange:
        return Response(
            status_code=416,
            headers={"Content-Range": f"bytes */{size}"},
            content=b'{"error":{"code":"bad_range","message":"Requested range not satisfiable."}}',
            media_type="application/json",
        )
    start, end, status = 0, size - 1, 200
    if byte_range is not None:
        start, end = byte_range
        status = 206
        headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    headers["Content-Length"] = str(end - start + 1 if size else 0)
    if request.method == "HEAD" or size == 0:
        return Response(status_code=status, headers=headers, media_type=media_type)
    body = iterate_in_threadpool(storage.read(key, start, end))
    return StreamingResponse(body, status_code=status, headers=headers, media_type=media_type)
