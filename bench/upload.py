"""Upload throughput: a large file over loopback in 8 MiB Content-Range chunks, against a local file copy.

Starts the real server (``python -m skyframe serve``) on a temporary data dir, streams a file of random
bytes to ``PUT /api/uploads/{id}/file`` chunk by chunk (the client never holds more than one read of
the file), and compares the rate with ``shutil.copyfile`` of the same bytes on the same filesystem,
measured in the same run. Samples the server's RSS while it receives. ``complete`` is not called: the
bytes are not a video, and only the transfer is measured.

    python bench/upload.py [--size-mib 1024] [--chunk-mib 8]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
from common import (
    CpuMeter,
    RssSampler,
    Server,
    cpu_seconds,
    load_line,
    machine_lines,
    percentile,
    proc_status_kib,
    table,
    verdict,
    wait_for_quiet,
)

MiB = 1 << 20
TARGET_MIBS = 200.0  # MB/s target, compared in MiB/s (5% stricter)
TARGET_COPY_RATIO = 0.40
TARGET_RSS_GROWTH_MIB = 100.0
_BLOCK = 16 * MiB  # random block the source file repeats (each copy stamped with its index)
_READ = 1 * MiB  # client read size while streaming one chunk


@dataclass
class UploadResult:
    upload_id: str
    init_s: float
    transfer_s: float
    chunk_s: list[float]
    received_bytes: int
    server_cpu_s: float
    client_cpu_s: float
    rss_before_kib: int
    rss_peak_kib: int
    hwm_before_kib: int
    hwm_after_kib: int
    machine_busy: float

    @property
    def rss_growth_kib(self) -> int:
        peak = self.rss_peak_kib
        if self.hwm_after_kib > self.hwm_before_kib:  # a new high-water mark was set during the upload
            peak = max(peak, self.hwm_after_kib)
        return max(0, peak - self.rss_before_kib)


def make_source(path: Path, size: int) -> None:
    """``size`` bytes: a 16 MiB random block repeated, each copy stamped with its index."""
    block = bytearray(os.urandom(_BLOCK))
    with open(path, "wb") as out:
        written, index = 0, 0
        while written < size:
            block[:8] = index.to_bytes(8, "little")
            n = min(_BLOCK, size - written)
            out.write(memoryview(block)[:n])
            written, index = written + n, index + 1


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while data := handle.read(8 * MiB):
            digest.update(data)
    return digest.hexdigest()


def timed_copy(src: Path, dst: Path) -> float:
    """Seconds for ``shutil.copyfile`` (sendfile on Linux); the copy is removed afterwards."""
    os.sync()
    start = time.perf_counter()
    shutil.copyfile(src, dst)
    elapsed = time.perf_counter() - start
    dst.unlink()
    return elapsed


def file_slice(path: Path, offset: int, length: int) -> Iterator[bytes]:
    """``length`` bytes of ``path`` from ``offset``, in reads of at most 1 MiB."""
    with open(path, "rb") as handle:
        handle.seek(offset)
        remaining = length
        while remaining:
            data = handle.read(min(_READ, remaining))
            if not data:
                raise RuntimeError(f"{path} ended early")
            remaining -= len(data)
            yield data


def upload(server: Server, source: Path, size: int, chunk: int) -> UploadResult:
    """init + one PUT per chunk, timed, with the server's RSS sampled throughout."""
    os.sync()
    rss_before = proc_status_kib(server.pid, "VmRSS")
    hwm_before = proc_status_kib(server.pid, "VmHWM")
    server_cpu0, client_cpu0 = cpu_seconds(server.pid), time.process_time()
    chunk_s: list[float] = []
    meter = CpuMeter()
    with httpx.Client(base_url=server.url, timeout=300) as client, RssSampler(server.pid) as rss:
        start = time.perf_counter()
        init = client.post(
            "/api/uploads/init", json={"filename": "bench.mp4", "size": size, "contentType": "video/mp4"}
        )
        init.raise_for_status()
        upload_id = init.json()["uploadId"]
        transfer_start = time.perf_counter()
        for offset in range(0, size, chunk):
            length = min(chunk, size - offset)
            t0 = time.perf_counter()
            response = client.put(
                f"/api/uploads/{upload_id}/file",
                content=file_slice(source, offset, length),
                headers={
                    "Content-Range": f"bytes {offset}-{offset + length - 1}/{size}",
                    "Content-Length": str(length),
                    "Content-Type": "application/octet-stream",
                },
            )
            chunk_s.append(time.perf_counter() - t0)
            if response.status_code != 200:
                raise RuntimeError(f"PUT at {offset}: {response.status_code} {response.text}")
            if response.json()["receivedBytes"] != offset + length:
                raise RuntimeError(f"PUT at {offset}: receivedBytes {response.json()['receivedBytes']}")
        end = time.perf_counter()
        busy = meter.busy()
        head = client.head(f"/api/uploads/{upload_id}")
    return UploadResult(
        upload_id=upload_id,
        init_s=transfer_start - start,
        transfer_s=end - transfer_start,
        chunk_s=chunk_s,
        received_bytes=int(head.headers["Upload-Offset"]),
        server_cpu_s=cpu_seconds(server.pid) - server_cpu0,
        client_cpu_s=time.process_time() - client_cpu0,
        rss_before_kib=rss_before,
        rss_peak_kib=rss.peak_kib,
        hwm_before_kib=hwm_before,
        hwm_after_kib=proc_status_kib(server.pid, "VmHWM"),
        machine_busy=busy,
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size-mib", type=int, default=1024, help="file size in MiB (default 1024)")
    parser.add_argument("--chunk-mib", type=int, default=8, help="PUT chunk size in MiB (default 8)")
    parser.add_argument("--workdir", type=Path, default=None, help="where temp files go (default: $TMPDIR)")
    parser.add_argument("--no-hash", action="store_true", help="skip the SHA-256 check of the stored bytes")
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=60.0,
        help="wait up to this many s for the machine's CPU use to fall below 15%% first (default 60)",
    )
    args = parser.parse_args()
    size, chunk = args.size_mib * MiB, args.chunk_mib * MiB

    busy = wait_for_quiet(args.wait_quiet, window=1.0)
    print("# SkyFrame upload benchmark\n\n## Machine")
    for line in [*machine_lines(), load_line(busy)]:
        print(line)
    print()
    work = Path(tempfile.mkdtemp(prefix="skyframe-bench-upload-", dir=args.workdir))
    try:
        source = work / "source.bin"
        make_source(source, size)
        copy_s = [timed_copy(source, work / "copy.bin")]
        with Server(work / "data", {"SKYFRAME_EMBEDDED_WORKER": "false"}) as server:
            result = upload(server, source, size, chunk)
            stored = server.data_dir / "files" / "uploads" / result.upload_id / "original.part"
            stored_size = stored.stat().st_size
            same_bytes = None if args.no_hash else sha256_of(stored) == sha256_of(source)
        copy_s.append(timed_copy(source, work / "copy.bin"))
    finally:
        shutil.rmtree(work, ignore_errors=True)

    upload_mibs = size / MiB / (result.init_s + result.transfer_s)
    copy_mibs = size / MiB / min(copy_s)  # the faster copy: the stricter reference
    ratio = upload_mibs / copy_mibs
    growth_mib = result.rss_growth_kib / 1024
    quarter = max(1, len(result.chunk_s) // 4)
    first_q = quarter * chunk / MiB / sum(result.chunk_s[:quarter])
    last_q = quarter * chunk / MiB / sum(result.chunk_s[-quarter:])

    print(f"## Upload of {args.size_mib} MiB in {args.chunk_mib} MiB chunks over loopback\n")
    rows = [
        ["upload (init + PUTs)", f"{upload_mibs:.0f} MiB/s", f">= {TARGET_MIBS:.0f} MB/s", ""],
        ["local copy (shutil.copyfile)", f"{copy_mibs:.0f} MiB/s", "reference", ""],
        ["upload / copy", f"{ratio:.0%}", f">= {TARGET_COPY_RATIO:.0%}", ""],
        ["server peak RSS growth", f"{growth_mib:.1f} MiB", f"< {TARGET_RSS_GROWTH_MIB:.0f} MB", ""],
        ["stored bytes", f"{stored_size}", f"= {size}", ""],
    ]
    rows[0][3] = verdict(upload_mibs >= TARGET_MIBS)
    rows[2][3] = verdict(ratio >= TARGET_COPY_RATIO)
    rows[3][3] = verdict(growth_mib < TARGET_RSS_GROWTH_MIB)
    rows[4][3] = verdict(stored_size == size == result.received_bytes and same_bytes is not False)
    print(table(["metric", "result", "target", ""], rows))
    print()
    details = [
        ["wall: init / transfer", f"{result.init_s * 1000:.0f} ms / {result.transfer_s:.2f} s"],
        ["copy runs (before / after upload)", " / ".join(f"{s:.2f} s" for s in copy_s)],
        [
            "per-chunk PUT p50 / p99 / max",
            " / ".join(f"{percentile(result.chunk_s, q) * 1000:.0f} ms" for q in (50, 99, 100)),
        ],
        ["first / last quarter of chunks", f"{first_q:.0f} / {last_q:.0f} MiB/s"],
        [
            "CPU s: server / client (per GiB)",
            f"{result.server_cpu_s:.2f} / {result.client_cpu_s:.2f} "
            f"({result.server_cpu_s * 1024 / args.size_mib:.2f} / "
            f"{result.client_cpu_s * 1024 / args.size_mib:.2f})",
        ],
        [
            "server RSS before / peak (VmHWM before / after)",
            f"{result.rss_before_kib / 1024:.1f} / {result.rss_peak_kib / 1024:.1f} MiB "
            f"({result.hwm_before_kib / 1024:.1f} / {result.hwm_after_kib / 1024:.1f} MiB)",
        ],
        ["machine CPU during upload (all cores)", f"{result.machine_busy:.0%}"],
        ["receivedBytes (HEAD Upload-Offset)", str(result.received_bytes)],
        ["stored SHA-256 = source", "skipped" if same_bytes is None else str(same_bytes)],
    ]
    print(table(["detail", "value"], details))
    print(
        "\nNotes: page cache cannot be dropped here (no root drop_caches); source, copy and upload all read "
        "a cached source and write into the page cache without fsync (os.sync() runs before each timed "
        "step). Client and server share the same cores. MiB/s = 2^20 bytes/s."
    )
    ok = (
        upload_mibs >= TARGET_MIBS
        and ratio >= TARGET_COPY_RATIO
        and growth_mib < TARGET_RSS_GROWTH_MIB
        and stored_size == size
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
