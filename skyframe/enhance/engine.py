"""Choosing and loading a runtime for a local model.

``auto`` picks PyTorch only when a CUDA GPU is usable, otherwise ncnn. The check looks for an NVIDIA
driver first (``/proc/driver/nvidia`` or ``/dev/nvidia0``) so that a CPU-only machine never imports torch
(about 1 s and hundreds of MB) just to learn it has no GPU.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from skyframe.catalogue import ModelSpec, get_model
from skyframe.enhance.base import Upscaler
from skyframe.errors import Invalid

RUNTIMES = ("auto", "ncnn", "torch")


def usable_cores() -> int:
    """CPU cores this process may run on (cgroup/affinity aware where the OS says so)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def torch_installed() -> bool:
    return importlib.util.find_spec("torch") is not None


def cuda_available() -> bool:
    """True when an NVIDIA GPU is usable from torch; imports torch only if a driver is present."""
    if not (Path("/proc/driver/nvidia/version").exists() or Path("/dev/nvidia0").exists()):
        return False
    if not torch_installed():
        return False
    import torch

    return bool(torch.cuda.is_available())


def resolve_runtime(runtime: str = "auto") -> str:
    """``"ncnn"`` or ``"torch"`` for a requested runtime; raises :class:`Invalid` if it cannot run here."""
    if runtime not in RUNTIMES:
        raise Invalid(f"Unknown runtime {runtime!r}. Valid: {', '.join(RUNTIMES)}.", code="invalid_options")
    if runtime == "auto":
        return "torch" if cuda_available() else "ncnn"
    if runtime == "torch" and not torch_installed():
        raise Invalid(
            "The torch runtime needs PyTorch: pip install 'skyframe[torch]'"
            " (CPU only: pip install torch==2.13.0).",
            code="invalid_options",
        )
    return runtime


def load_upscaler(
    model: str | ModelSpec = "local_fast",
    runtime: str = "auto",
    threads: int = 0,
    *,
    precision: str = "auto",
    device: str | None = None,
    weights: str | Path | None = None,
) -> Upscaler:
    """Load ``model`` on the chosen runtime; ``auto``/``0`` fall back to the settings (``SKYFRAME_RUNTIME``,
    ``SKYFRAME_THREADS``), whose defaults mean "CUDA if usable, else ncnn" and "all usable cores".

    ``precision``: ``auto`` = fp32 on CPU, fp16 on CUDA; ``bf16`` is an opt-in CPU speed-up.
    ``weights`` (torch only): a ``.pth`` path, URL, or ``"official"``; default = the shipped ncnn weights.
    """
    spec = get_model(model) if isinstance(model, str) else model
    if spec.provider != "local" or spec.weights is None:
        raise Invalid(f"Model {spec.key} does not run on this machine.", code="invalid_options")
    if runtime == "auto" or not threads:
        from skyframe.config import get_settings

        settings = get_settings()
        runtime = settings.runtime if runtime == "auto" else runtime
        threads = threads or settings.threads
    threads = threads or usable_cores()
    chosen = resolve_runtime(runtime)
    if chosen == "ncnn":
        if weights is not None:
            raise Invalid("Custom weights need the torch runtime.", code="invalid_options")
        from skyframe.enhance.ncnn_runtime import NcnnUpscaler

        return NcnnUpscaler(spec, threads, "fp32" if precision in ("auto", "fp32") else precision)
    from skyframe.enhance.torch_runtime import TorchUpscaler

    return TorchUpscaler(spec, threads=threads, device=device, precision=precision, weights=weights)
