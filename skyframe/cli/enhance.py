"""``skyframe enhance`` and ``skyframe models`` (owned by the local engine work).

Runs the local engine in this process with a Rich progress bar. Bad input or options print one red line
and exit with status 1 (never a traceback); Ctrl-C cancels cleanly (no partial output) with status 130.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from skyframe.catalogue import MODELS, RESOLUTIONS, get_model, validate_options
from skyframe.cli import app
from skyframe.errors import SkyframeError

if TYPE_CHECKING:
    from skyframe.catalogue import EnhanceOptions
    from skyframe.enhance.base import Upscaler
    from skyframe.enhance.pipeline import EnhanceResult

console = Console(stderr=True)
out_console = Console()

PREVIEW_SECONDS = 3.0
_CONTAINERS = {".mp4", ".mov", ".mkv", ".m4v"}


def _output_for(src: Path, out: Path, batch: bool) -> Path:
    """``OUT`` itself for one input (unless it is a folder), else ``OUT/<name>-enhanced<ext>``."""
    if not batch and not out.is_dir() and out.suffix:
        return out
    suffix = src.suffix.lower() if src.suffix.lower() in _CONTAINERS else ".mp4"
    return out / f"{src.stem}-enhanced{suffix}"


def _preview_window(src: Path) -> tuple[float, float]:
    """A 3 s window from the middle of the clip (the whole clip if it is shorter)."""
    from skyframe.media.reader import probe_source

    info = probe_source(src)
    length = info.duration_seconds or PREVIEW_SECONDS
    if length <= PREVIEW_SECONDS:
        return 0.0, length
    return max(0.0, length / 2 - PREVIEW_SECONDS / 2), PREVIEW_SECONDS


@app.command()
def enhance(
    inputs: list[Path] = typer.Argument(
        ..., help="Video file(s). Several files are a batch.", show_default=False
    ),
    output: Path = typer.Option(
        ..., "-o", "--output", help="Output file, or a folder (required for a batch).", show_default=False
    ),
    model: str = typer.Option("local_fast", "--model", "-m", help="Model key (see `skyframe models`)."),
    scale: int | None = typer.Option(None, "--scale", "-s", help="Upscale factor: 2 or 4."),
    target: str | None = typer.Option(None, "--target", "-t", help="Output resolution: hd, fhd, 2k or 4k."),
    codec: str = typer.Option("h264", "--codec", help="h264 or h265."),
    crf: int = typer.Option(18, "--crf", help="Constant quality 0-51 (lower = better, bigger)."),
    start: float | None = typer.Option(None, "--start", help="Start of the segment, in seconds."),
    duration: float | None = typer.Option(None, "--duration", help="Length of the segment, in seconds."),
    preview: bool = typer.Option(False, "--preview", help="Only a 3 s segment from the middle."),
    runtime: str = typer.Option("auto", "--runtime", help="auto, ncnn or torch."),
    threads: int = typer.Option(0, "--threads", help="Inference threads; 0 = all usable cores."),
    precision: str = typer.Option("auto", "--precision", help="auto, fp32 or bf16 (opt-in CPU speed-up)."),
) -> None:
    """Upscale video(s) on this machine with a local Real-ESRGAN model."""
    from skyframe.enhance.engine import load_upscaler

    batch = len(inputs) > 1
    try:
        if preview and (start is not None or duration is not None):
            raise SkyframeError("--preview picks its own segment; leave out --start/--duration.")
        if batch and output.suffix and not output.is_dir():
            raise SkyframeError(f"With several inputs, OUTPUT must be a folder, not {output}.")
        spec = get_model(model)
        if spec.provider != "local":
            raise SkyframeError(f"{model} runs on Replicate; `skyframe enhance` runs local models only.")
        raw = {"scale": scale, "resolution": target, "codec": codec, "crf": crf}
        validate_options(spec, {k: v for k, v in raw.items() if v is not None})  # fail before loading
        if batch:
            output.mkdir(parents=True, exist_ok=True)
        with console.status("Loading model..."):
            upscaler = load_upscaler(spec, runtime, threads, precision=precision)
    except SkyframeError as exc:
        console.print(f"[red]Error:[/red] {exc.message}")
        raise typer.Exit(1) from None
    console.print(f"Model [bold]{spec.key}[/bold] on [bold]{upscaler.runtime}[/bold]")

    failed = 0
    for src in inputs:
        dst = _output_for(src, output, batch)
        try:
            seg_start, seg_duration = _preview_window(src) if preview else (start, duration)
            options = validate_options(
                spec,
                {
                    k: v
                    for k, v in {**raw, "start": seg_start, "duration": seg_duration}.items()
                    if v is not None
                },
            )
            result = _run_one(src, dst, spec.key, options, upscaler)
        except KeyboardInterrupt:
            console.print(f"[yellow]Cancelled[/yellow] {src.name}; no output written.")
            raise typer.Exit(130) from None
        except SkyframeError as exc:
            console.print(f"[red]Error:[/red] {exc.message}")
            failed += 1
            continue
        console.print(
            f"[green]Done[/green] {dst}  {result.width}x{result.height}, {result.frames} frames, "
            f"{result.seconds:.1f} s ({result.fps:.2f} fps)"
        )
        for note in result.notes:
            console.print(f"  [dim]note: {note}[/dim]")
    if failed:
        raise typer.Exit(1)


def _run_one(src: Path, dst: Path, model: str, options: EnhanceOptions, upscaler: Upscaler) -> EnhanceResult:
    from skyframe.enhance.pipeline import Progress as EngineProgress
    from skyframe.enhance.pipeline import enhance_video

    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[stage]}"),
        TextColumn("{task.fields[fps]:.2f} fps"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=False) as bar:
        task: TaskID = bar.add_task(src.name, total=None, stage="starting", fps=0.0)
        last = [0.0]

        def on_progress(p: EngineProgress) -> None:
            now = time.monotonic()
            if now - last[0] < 0.2 and p.stage == "enhancing":
                return
            last[0] = now
            bar.update(task, completed=p.frames_done, total=p.frames_total, stage=p.stage, fps=p.fps)

        result = enhance_video(src, dst, model, options, progress=on_progress, upscaler=upscaler)
        bar.update(task, completed=result.frames, total=result.frames, stage="done", fps=result.fps)
    return result


@app.command()
def models() -> None:
    """List the models: key, where it runs, and the sizes it can produce."""
    from skyframe.enhance.weights import WeightsError, ncnn_files

    table = Table(title="SkyFrame models")
    table.add_column("key", no_wrap=True, style="bold")
    for column in ("title", "runs on", "scales", "resolutions", "available", "notes"):
        table.add_column(column, overflow="fold")
    for spec in MODELS.values():
        available = "yes"
        if spec.provider == "local":
            try:
                ncnn_files(spec.weights or "")
            except WeightsError as exc:
                available = f"no: {exc.message}"
        else:
            available = "needs REPLICATE_API_TOKEN"
        table.add_row(
            spec.key,
            spec.title,
            "this machine" if spec.provider == "local" else "Replicate (paid)",
            ", ".join(f"x{s}" for s in spec.scales) or "-",
            ", ".join(spec.resolutions) or "-",
            available,
            spec.hint,
        )
    out_console.print(table)
    sizes = ", ".join(f"{key} = {w}x{h}" for key, (w, h) in RESOLUTIONS.items())
    out_console.print(f"[dim]Resolutions fit the frame inside: {sizes} (aspect kept).[/dim]")
