"""Local engine benchmark: model-only speed, wrapper overhead, end-to-end speed, memory, cost per minute.

Not a test. Runs in a few minutes on 2 cores and prints one table plus the machine it ran on:

1. model-only fps of our ncnn path (``NcnnUpscaler.upscale``: reflect padding, tiling, planar uint8 out)
   against a bare ncnn loop (``from_pixels`` + ``extract`` on the same padded frame, nothing else),
   interleaved in the same run; the cost of the 10 px padding itself is shown separately;
2. the PyTorch CPU path (fp32 channels_last, and opt-in bf16) against ncnn on the same frame;
3. end-to-end ``enhance_video`` fps (decode, model, resize, x264 encode, mux) against model-only fps;
4. peak RSS of a 4K-output run in a fresh process, for two clip lengths (must be flat);
5. seconds of compute per output minute of 1080p (30 fps) for each local model.

Runs of the things being compared are interleaved and the best run of each is compared (the run
least disturbed by other work); end-to-end runs alternate with model-only runs and adjacent pairs are
compared. The load average is printed: other work on the box shows there.

    python bench/engine.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import av
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from common import cpu_model  # noqa: E402  (bench/ is on sys.path when run as a script)

from skyframe.catalogue import EnhanceOptions, get_model  # noqa: E402
from skyframe.enhance.engine import load_upscaler, usable_cores  # noqa: E402
from skyframe.enhance.pipeline import enhance_video  # noqa: E402
from skyframe.enhance.weights import ncnn_files  # noqa: E402
from skyframe.media.writer import DEFAULT_PRESET  # noqa: E402

VIDEO = ROOT.parent / "shared" / "testdata" / "video"
SOURCE = VIDEO / "libopenshot_run.mp4"  # fine detail: runners, road markings


def versions() -> str:
    import ncnn

    parts = [f"python {platform.python_version()}", f"ncnn {ncnn.__version__}", f"av {av.__version__}"]
    parts.append(f"numpy {np.__version__}")
    try:
        import torch

        parts.append(f"torch {torch.__version__}")
    except ImportError:
        parts.append("torch not installed")
    return ", ".join(parts)


def real_frames(width: int, height: int, count: int) -> list[np.ndarray]:
    """Frames of the marathon clip, resized (area) to ``width`` x ``height``."""
    out = []
    with av.open(str(SOURCE)) as container:
        for frame in container.decode(video=0):
            small = frame.reformat(width=width, height=height, format="rgb24", interpolation="AREA")
            out.append(small.to_ndarray())
            if len(out) == count:
                break
    return out


def make_clip(path: Path, width: int, height: int, count: int) -> Path:
    """A clip of real footage at ``width`` x ``height`` (x264, crf 16) for the end-to-end runs."""
    frames = real_frames(width, height, count)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=30, options={"crf": "16", "preset": "fast"})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i, img in enumerate(frames * (count // len(frames) + 1)):
            if i == count:
                break
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def interleaved(fns: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Best (minimum) seconds per call of each function, calls interleaved (ABC ABC ...) after a
    warm-up. The minimum is the run least disturbed by other work on the machine; on a shared box the
    median mostly measures the neighbours."""
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for key, fn in fns.items():
            times[key].append(timed(fn))
    return {k: min(v) for k, v in times.items()}


class Bare:
    """The least code that runs the model: ncnn options as ours, from_pixels + normalize + extract."""

    def __init__(self, stem: str, threads: int) -> None:
        import ncnn

        self.ncnn = ncnn
        param, binary = ncnn_files(stem)
        self.net = ncnn.Net()
        opt = self.net.opt
        opt.num_threads, opt.use_vulkan_compute, opt.lightmode = threads, False, True
        opt.use_fp16_packed = opt.use_fp16_storage = opt.use_fp16_arithmetic = False
        self.net.load_param(str(param))
        self.net.load_model(str(binary))

    def __call__(self, img: np.ndarray) -> object:
        ncnn = self.ncnn
        mat = ncnn.Mat.from_pixels(img, ncnn.Mat.PixelType.PIXEL_RGB, img.shape[1], img.shape[0])
        mat.substract_mean_normalize([], [1 / 255.0] * 3)
        ex = self.net.create_extractor()
        ex.input("data", mat)
        return ex.extract("output")[1]


def in_thread(fn: Callable[[], object]) -> None:
    """Run ``fn`` in a fresh thread, like the pipeline's model thread (OpenMP pools are per thread)."""
    worker = threading.Thread(target=fn)
    worker.start()
    worker.join()


def cpu_seconds() -> float:
    """CPU time of this process (all threads): robust to other work on the box, unlike wall time."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def steady_fps(marks: list[tuple[float, int]]) -> float:
    """Frames per second between the first and last change of ``frames_done`` (no start-up, no flush)."""
    changes = [(t, n) for i, (t, n) in enumerate(marks) if n > 0 and (i == 0 or marks[i - 1][1] != n)]
    if len(changes) < 2:
        return 0.0
    (t0, n0), (t1, n1) = changes[0], changes[-1]
    return (n1 - n0) / (t1 - t0) if t1 > t0 else 0.0


def pad(img: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.pad(img, ((10, 10), (10, 10), (0, 0)), mode="reflect"))


def rss_child(clip: Path, out: Path, target: str) -> dict[str, float]:
    """Run one enhancement in a fresh interpreter; returns its peak RSS and fps.

    Peak RSS is the child's ``VmHWM``: ``ru_maxrss`` would include the parent's RSS at fork time,
    because Linux carries the pre-exec high-water mark over ``execve``.
    """
    code = (
        "import json\n"
        "from pathlib import Path\n"
        "from skyframe.catalogue import EnhanceOptions\n"
        "from skyframe.enhance.pipeline import enhance_video\n"
        f"r = enhance_video(Path({str(clip)!r}), Path({str(out)!r}), 'local_fast',"
        f" EnhanceOptions(resolution={target!r}), runtime='ncnn')\n"
        "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1]\n"
        "print(json.dumps({'rss': int(hwm) / 1024,"
        " 'fps': r.fps, 'frames': r.frames, 'size': [r.width, r.height]}))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True, timeout=1800
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats and frames (smoke run)")
    parser.add_argument("--sections", default="1,2,3,4,5", help="which numbered sections to run")
    args = parser.parse_args()
    sections = {int(x) for x in args.sections.split(",")}
    threads = usable_cores()
    repeats = 2 if args.quick else 5
    rows: list[tuple[str, str, str]] = []

    def row(what: str, value: str, note: str = "") -> None:
        rows.append((what, value, note))
        print(f"  {what:<58} {value:>14}  {note}", flush=True)

    load_before = os.getloadavg()
    print(f"machine: {cpu_model()}, {threads} usable cores, {os.cpu_count()} online")
    print(f"software: {versions()}")
    print(f"load average at start: {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}\n")

    # 1. our ncnn path vs a bare ncnn loop ------------------------------------------------------------
    ours = load_upscaler("local_fast", "ncnn", threads)
    bare = Bare(get_model("local_fast").weights or "", threads)
    model_fps: dict[tuple[int, int], float] = {}
    for w, h in [(480, 270), (960, 540)] if 1 in sections else []:
        img = real_frames(w, h, 1)[0]
        padded = pad(img)
        t = interleaved(
            {"ours": lambda img=img: ours.upscale(img), "bare_padded": lambda p=padded: bare(p),
             "bare_unpadded": lambda img=img: bare(img)},
            repeats,
        )  # fmt: skip
        model_fps[(w, h)] = 1 / t["ours"]
        out = f"{w * 4}x{h * 4}"
        row(f"local_fast ncnn, {w}x{h} -> {out}: ours fps", f"{1 / t['ours']:.3f}")
        row("  bare ncnn loop, same padded frame: fps", f"{1 / t['bare_padded']:.3f}")
        row(
            "  ours / bare (target >= 0.95)",
            f"{t['bare_padded'] / t['ours']:.3f}",
            f"padding itself costs {100 * (t['bare_padded'] / t['bare_unpadded'] - 1):.1f}% "
            f"(bare unpadded {1 / t['bare_unpadded']:.3f} fps)",
        )

    # 2. PyTorch CPU path vs ncnn ---------------------------------------------------------------------
    try:
        if 2 not in sections:
            raise ImportError
        import torch  # noqa: F401

        img = real_frames(480, 270, 1)[0]
        fp32 = load_upscaler("local_fast", "torch", threads)
        bf16 = load_upscaler("local_fast", "torch", threads, precision="bf16")
        t = interleaved(
            {"ncnn": lambda: ours.upscale(img), "torch": lambda: fp32.upscale(img),
             "bf16": lambda: bf16.upscale(img)},
            max(2, repeats - 2),
        )  # fmt: skip
        row("torch fp32 channels_last, 480x270: fps", f"{1 / t['torch']:.3f}", f"ncnn {1 / t['ncnn']:.3f}")
        row("  torch fp32 / ncnn", f"{t['ncnn'] / t['torch']:.3f}")
        row("  torch bf16 (opt-in) / ncnn", f"{t['ncnn'] / t['bf16']:.3f}")
    except ImportError:
        if 2 in sections:
            row("torch", "not installed", "")

    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        # 3. end to end vs model only ---------------------------------------------------------------
        # Short alternating blocks (model-only N frames, then enhance_video on an N-frame clip) and the
        # median of each adjacent pair's ratio: load from other work on the box drifts over minutes,
        # so only measurements taken close together compare fairly.
        frames, pairs = (8, 2) if args.quick else (12, 4)
        clip = make_clip(tmp / "e2e.mp4", 480, 270, frames)
        img = real_frames(480, 270, 1)[0]
        ratios: dict[str, list[float]] = {"steady": [], "overall": [], "cpu": []}
        fps_e2e: list[float] = []
        fps_model: list[float] = []
        steady_all: list[float] = []
        m = e = 0.0
        for _ in range(pairs if 3 in sections else 0):
            c0, t0 = cpu_seconds(), time.perf_counter()
            in_thread(lambda: [ours.upscale(img) for _ in range(frames)])  # as the pipeline runs it
            model_fps_now = frames / (time.perf_counter() - t0)
            model_cpu = (cpu_seconds() - c0) / frames
            marks: list[tuple[float, int]] = []
            c0 = cpu_seconds()
            result = enhance_video(
                clip, tmp / "e2e-out.mp4", "local_fast", EnhanceOptions(resolution="fhd"), upscaler=ours,
                progress=lambda p, marks=marks: marks.append((time.perf_counter(), p.frames_done)),
            )  # fmt: skip
            e2e_cpu = (cpu_seconds() - c0) / result.frames
            fps_model.append(model_fps_now)
            fps_e2e.append(result.fps)
            steady_all.append(steady_fps(marks))
            ratios["steady"].append(steady_all[-1] / model_fps_now)
            ratios["overall"].append(result.fps / model_fps_now)
            ratios["cpu"].append(model_cpu / e2e_cpu)
        if 3 in sections:
            m, e = statistics.median(fps_model), statistics.median(fps_e2e)
            med = {k: statistics.median(v) for k, v in ratios.items()}
            best = max(steady_all) / max(fps_model) if steady_all else 0.0
            each = ", ".join(f"{r:.2f}" for r in ratios["steady"])
            what = f"end-to-end 480x270 -> 1920x1080, x264 {DEFAULT_PRESET} crf18"
            row(f"{what}: fps", f"{e:.3f}", f"{pairs} runs of {frames} frames")
            row("  model-only fps, same frame, alternating with the runs", f"{m:.3f}")
            row("  end-to-end / model-only, steady state (target >= 0.90)", f"{med['steady']:.3f}",
                f"median of adjacent pairs: {each}")  # fmt: skip
            row("  best steady end-to-end fps / best model-only fps", f"{best:.3f}")
            row("  end-to-end / model-only, incl. start-up and flush", f"{med['overall']:.3f}",
                f"{frames}-frame clips; the fixed cost shrinks with clip length")  # fmt: skip
            row("  end-to-end / model-only, CPU seconds per frame", f"{med['cpu']:.3f}")

        # 4. peak RSS for a 4K output, two lengths ----------------------------------------------------
        lengths = (3, 6) if args.quick else (15, 30)  # x264 buffers ~13 frames: compare past that
        for n in lengths if 4 in sections else ():
            clip4k = make_clip(tmp / f"rss{n}.mp4", 960, 540, n)
            r = rss_child(clip4k, tmp / f"rss{n}-out.mp4", "4k")
            row(
                f"peak RSS, 960x540 -> {r['size'][0]}x{r['size'][1]}, {n} frames",
                f"{r['rss'] / 1024:.2f} GiB",
                f"{r['fps']:.3f} fps (target < 3 GiB, flat)",
            )

        # 5. seconds per output minute of 1080p30, per model -----------------------------------------
        for key in ("local_fast", "local_anime", "local_detail") if 5 in sections else ():
            up = ours if key == "local_fast" else load_upscaler(key, "ncnn", threads)
            if key == "local_detail":
                # ~12 s a frame on 2 cores: one full 480x270 frame after a small warm-up
                up.upscale(img[:40, :40])
                per_frame = timed(lambda up=up: up.upscale(img))
                note = "extrapolated from 1 frame"
            elif key == "local_anime":
                up.upscale(img[:40, :40])
                per_frame = statistics.median(timed(lambda up=up: up.upscale(img)) for _ in range(2))
                note = "extrapolated from 2 frames"
            else:
                per_frame = 1 / model_fps[(480, 270)] if model_fps else timed(lambda up=up: up.upscale(img))
                note = f"model only; end to end takes {m / e:.2f}x this" if e else "model only"
            row(f"{key}: s of compute per output minute 1080p30 (480x270 in)", f"{per_frame * 1800:.0f} s",
                f"{per_frame:.2f} s/frame; {note}")  # fmt: skip

    load_after = os.getloadavg()
    print(f"\nload average at end: {load_after[0]:.2f} {load_after[1]:.2f} {load_after[2]:.2f}")
    print(f"peak RSS of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
    print("\n| measurement | value | note |\n|---|---:|---|")
    for what, value, note in rows:
        print(f"| {what.strip()} | {value} | {note} |")


if __name__ == "__main__":
    main()
