"""The local provider: our own engine, on this worker's CPU or GPU."""

from __future__ import annotations

from typing import Any

from skyframe.jobs.runner import JobCanceled, JobContext, JobInterrupted
from skyframe.jobs.service import output_key
from skyframe.uploads.service import original_key


def run_local(ctx: JobContext) -> dict[str, Any]:
    from skyframe.enhance.pipeline import Cancelled, Progress, enhance_video

    def on_progress(p: Progress) -> None:
        percent = 100.0 * p.frames_done / p.frames_total if p.frames_total else None
        ctx.report(
            stage=p.stage,
            progress=percent,
            frames_done=p.frames_done,
            frames_total=p.frames_total,
            fps=p.fps,
            eta_seconds=p.eta_seconds,
        )

    ctx.report(stage="loading model", progress=0.0, force=True)
    key = output_key(ctx.job_id)
    try:
        with ctx.storage.local_file(original_key(ctx.job.upload_id)) as src, ctx.storage.writer(key) as dst:
            result = enhance_video(
                src,
                dst,
                ctx.spec.key,
                ctx.options,
                progress=on_progress,
                should_cancel=ctx.should_stop,
                runtime=ctx.settings.runtime,
                threads=ctx.settings.threads,
            )
    except Cancelled:
        if ctx.cancel_requested():
            raise JobCanceled() from None
        raise JobInterrupted() from None
    except FileNotFoundError:
        from skyframe.errors import Invalid

        raise Invalid("The original upload is gone (was it deleted?).", code="input_missing") from None
    return {
        "output_size": ctx.storage.size(key),
        "output_width": result.width,
        "output_height": result.height,
        "frames_done": result.frames,
        "frames_total": result.frames,
    }
