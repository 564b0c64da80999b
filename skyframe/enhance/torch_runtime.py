"""The PyTorch runtime: reference implementation for correctness, and the CUDA path.

* Weights come from the shipped ncnn files (parsed by :mod:`skyframe.enhance.weights`) or from an official
  ``.pth`` (local path or URL, checksum-verified), so both runtimes can run exactly the same numbers.
* On CUDA the network runs in fp16 (``model.half()``, channels_last), as upstream Real-ESRGAN does; the
  float→uint8 conversion also happens on the GPU so only bytes cross the bus. Not verified on a real GPU in
  this repository's CI (no GPU there); it is built only from device-agnostic torch calls.
* On CPU it runs fp32 channels_last (2x faster than NCHW on the measured box). bf16 is available
  (``precision="bf16"``) but only on request: 52-56 dB against fp32 and only faster on CPUs with native
  bf16 (avx512_bf16/AMX).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from skyframe.catalogue import ModelSpec
from skyframe.enhance.base import Upscaler
from skyframe.enhance.models.arch import build
from skyframe.enhance.weights import (
    ArchConfig,
    WeightsError,
    download_weights,
    infer_config,
    load_pth,
    ncnn_state_dict,
    official_url,
)


def load_state(
    spec: ModelSpec,
    weights: str | Path | None = None,
    *,
    cache_dir: Path | None = None,
    sha256: str | None = None,
) -> tuple[ArchConfig, dict[str, torch.Tensor]]:
    """Weights for ``spec``: the shipped ncnn files (``weights=None``), a ``.pth`` path, a URL, or
    ``"official"`` (the official release file, downloaded into ``cache_dir`` and checksum-verified)."""
    if weights is None:
        if spec.weights is None:
            raise WeightsError(f"Model {spec.key} is not a local model.")
        config, arrays = ncnn_state_dict(spec.weights)
        return config, {k: torch.from_numpy(v) for k, v in arrays.items()}
    text = str(weights)
    if text == "official" or text.startswith(("http://", "https://")):
        if text == "official":
            text, sha256 = official_url(spec)
        if cache_dir is None:
            from skyframe.config import get_settings

            cache_dir = get_settings().data_dir / "models"
        path = download_weights(text, cache_dir, sha256)
    else:
        path = Path(text)
    state: dict[str, Any] = load_pth(path)
    return infer_config(state), {k: v.float() for k, v in state.items()}


class TorchUpscaler(Upscaler):
    """Real-ESRGAN in PyTorch on ``device`` (``"cuda"``/``"cpu"``; default: CUDA when available)."""

    def __init__(
        self,
        spec: ModelSpec,
        *,
        threads: int = 0,
        device: str | None = None,
        precision: str = "auto",
        weights: str | Path | None = None,
        cache_dir: Path | None = None,
        sha256: str | None = None,
    ) -> None:
        config, state = load_state(spec, weights, cache_dir=cache_dir, sha256=sha256)
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        if precision == "auto":
            precision = "fp16" if self.device.type == "cuda" else "fp32"
        self.dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[precision]
        if self.device.type == "cpu" and self.dtype == torch.float16:
            raise ValueError("fp16 is for CUDA; use fp32 or bf16 on CPU")
        if self.device.type == "cpu" and threads > 0:
            torch.set_num_threads(threads)
        model = build(config)
        missing, unexpected = model.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise WeightsError(
                f"Weights do not fit {config.arch}: missing {missing[:3]}, unexpected {unexpected[:3]}."
            )
        self.model = model.eval().to(self.device, self.dtype, memory_format=torch.channels_last)
        self.model_key = spec.key
        self.config = config
        self.runtime = f"torch-{self.device.type}" + ("" if precision == "fp32" else f"-{precision}")
        # same overlap as ncnn (exact for SRVGG, ~65 dB for RRDB); tiles sized by memory
        if config.arch == "rrdb":
            self.context = 40
            self.max_tile_pixels = 512 * 512 if self.device.type == "cuda" else 320 * 320
        else:
            self.context = 20
            self.max_tile_pixels = 2_100_000 if self.device.type == "cuda" else 600_000

    @torch.inference_mode()
    def _run(self, tile: np.ndarray, should_stop: Callable[[], bool] | None) -> np.ndarray:
        maxval = 255.0 if tile.dtype == np.uint8 else 65535.0
        raw = torch.from_numpy(tile.astype(np.int32) if tile.dtype == np.uint16 else tile)
        x = raw.to(self.device, non_blocking=True).permute(2, 0, 1).unsqueeze(0)
        x = (x.float() / maxval).to(self.dtype).contiguous(memory_format=torch.channels_last)
        y = self.model(x)[0].float()
        if self.device.type == "cuda":  # quantise on the GPU: 4x less to copy back
            q = (y * maxval + 0.5).clamp_(0, maxval)
            if tile.dtype == np.uint8:
                return q.to(torch.uint8).contiguous().cpu().numpy()
            return q.to(torch.int32).contiguous().cpu().numpy().astype(np.uint16)
        return y.contiguous().numpy()
