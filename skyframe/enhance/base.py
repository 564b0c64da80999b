"""What every runtime shares: reflect pre-padding, tiling with overlap, and float→integer output.

Why tiling: memory. ncnn's RRDBNet needs about 12 KB per input pixel in its trunk and 3 KB per *output*
pixel in its 4x tail, so a 1080p input in one piece would need ~25 GB. Each tile is run with ``context``
extra input pixels on every side and only its core is kept. For SRVGGNetCompact (18 3x3 convs, receptive
radius 18 px) a context of 20 makes tiled output equal to untiled output up to float rounding. RRDBNet's
theoretical receptive field is far larger (~350 px), but its effective one is small. Measured on a real
frame (tiled vs untiled, 255-scale): 8 px of context 46 dB (max error 68), 16 px 50 dB, 24 px 55 dB,
32 px 61 dB (max 7), 48 px 68 dB (max 2). We use 40 px: seams are invisible (see
``tests/enhance/test_runtimes.py``), and the trunk tiles are large enough that the overlap costs little.

Why 10 px reflect padding: the models were trained on crops, and zero padding at the frame border makes
the outermost ~12 px visibly wrong. Reflect padding is also what the upstream ncnn tool does.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from skyframe.errors import SkyframeError


class Cancelled(SkyframeError):
    """The caller asked to stop; no output was produced."""

    code = "canceled"


@dataclass(frozen=True)
class Tile:
    """A model input window ``[x0, x1) x [y0, y1)`` and the core ``[cx0, cx1) x [cy0, cy1)`` it owns."""

    x0: int
    y0: int
    x1: int
    y1: int
    cx0: int
    cy0: int
    cx1: int
    cy1: int


def _span(n: int, total: int, context: int) -> int:
    """Largest tile extent when ``total`` is cut into ``n`` cores (edge tiles have context on one side)."""
    if n == 1:
        return total
    return min(total, math.ceil(total / n) + (context if n == 2 else 2 * context))


def plan_tiles(width: int, height: int, max_pixels: int, context: int) -> list[Tile]:
    """Split a ``width`` x ``height`` image into tiles of at most ``max_pixels`` (context included).

    Among the grids that fit, picks the one that processes the fewest pixels in total (least overlap).
    """
    if width * height <= max_pixels:
        return [Tile(0, 0, width, height, 0, 0, width, height)]
    best: tuple[int, int, int] | None = None
    for nx in range(1, width + 1):
        tile_w = _span(nx, width, context)
        if best is not None and math.ceil(width / nx) <= context:
            break  # thinner cores only add overlap
        for ny in range(1, height + 1):
            tile_h = _span(ny, height, context)
            if tile_w * tile_h <= max_pixels:
                cost = nx * ny * tile_w * tile_h
                if best is None or cost < best[0]:
                    best = (cost, nx, ny)
                break
            if best is not None and math.ceil(height / ny) <= context:
                break
    if best is None:
        raise ValueError(f"cannot tile {width}x{height} with {max_pixels} px tiles and context {context}")
    _, nx, ny = best
    xs = [round(i * width / nx) for i in range(nx + 1)]
    ys = [round(j * height / ny) for j in range(ny + 1)]
    tiles = []
    for j in range(ny):
        for i in range(nx):
            cx0, cx1, cy0, cy1 = xs[i], xs[i + 1], ys[j], ys[j + 1]
            tiles.append(
                Tile(
                    max(0, cx0 - context),
                    max(0, cy0 - context),
                    min(width, cx1 + context),
                    min(height, cy1 + context),
                    cx0,
                    cy0,
                    cx1,
                    cy1,
                )
            )
    return tiles


class Upscaler(ABC):
    """A loaded x4 model. :meth:`upscale` takes an ``HxWx3`` RGB image (uint8, or uint16 for >8-bit video)
    and returns planar ``3 x 4H x 4W`` RGB of the same dtype (or writes it into ``out``)."""

    scale: int = 4
    pad: int = 10
    #: input pixels of overlap on each side of a tile
    context: int = 20
    #: largest tile (model input pixels, context included); bounds memory
    max_tile_pixels: int = 600_000
    #: label for results and benchmarks, e.g. "ncnn", "torch-cpu", "torch-cuda-fp16"
    runtime: str = "?"
    model_key: str = "?"
    #: ``_run`` already returns ``clip(x * 255 + 0.5, 0, 255)`` for uint8 tiles (done inside the graph,
    #: on the model's threads), so only a truncating copy is left to do here
    prescaled_u8: bool = False

    @abstractmethod
    def _run(self, tile: np.ndarray, should_stop: Callable[[], bool] | None) -> np.ndarray:
        """Model on one contiguous ``h x w x 3`` tile → ``3 x 4h x 4w`` float32 in [0, 1] (or already
        quantised to the input's integer dtype). Slow runtimes poll ``should_stop`` inside a tile."""

    def upscale(
        self,
        image: np.ndarray,
        out: Sequence[np.ndarray] | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> np.ndarray | None:
        """Upscale ``image``; ``out`` is three ``4H x 4W`` planes (R, G, B) to fill, e.g. a frame's planes.

        ``should_stop`` is polled between tiles so a slow model can be cancelled mid-frame.
        """
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype not in (np.uint8, np.uint16):
            raise ValueError(f"expected HxWx3 uint8/uint16, got {image.shape} {image.dtype}")
        h, w = image.shape[:2]
        s = self.scale
        result: np.ndarray | None = None
        if out is None:
            result = np.empty((3, h * s, w * s), image.dtype)
            out = [result[0], result[1], result[2]]
        pad_y, pad_x = min(self.pad, h - 1), min(self.pad, w - 1)
        padded = np.pad(image, ((pad_y, pad_y), (pad_x, pad_x), (0, 0)), mode="reflect")
        ph, pw = padded.shape[:2]
        maxval = 255.0 if image.dtype == np.uint8 else 65535.0
        scratch: np.ndarray | None = None
        for tile in plan_tiles(pw, ph, self.max_tile_pixels, self.context):
            if should_stop is not None and should_stop():
                raise Cancelled("Stopped on request.")
            # the part of the core that lies inside the real image, in image coordinates
            ix0, ix1 = max(tile.cx0, pad_x) - pad_x, min(tile.cx1, pad_x + w) - pad_x
            iy0, iy1 = max(tile.cy0, pad_y) - pad_y, min(tile.cy1, pad_y + h) - pad_y
            if ix1 <= ix0 or iy1 <= iy0:
                continue
            res = self._run(np.ascontiguousarray(padded[tile.y0 : tile.y1, tile.x0 : tile.x1]), should_stop)
            # crop: output of image pixel (x, y) sits at ((x + pad_x - tile.x0) * s, ...)
            ry0, rx0 = (iy0 + pad_y - tile.y0) * s, (ix0 + pad_x - tile.x0) * s
            rh, rw = (iy1 - iy0) * s, (ix1 - ix0) * s
            for c in range(3):
                src = res[c, ry0 : ry0 + rh, rx0 : rx0 + rw]
                dst = out[c][iy0 * s : iy1 * s, ix0 * s : ix1 * s]
                if src.dtype == dst.dtype or (self.prescaled_u8 and dst.dtype == np.uint8):
                    np.copyto(dst, src, casting="unsafe")
                    continue
                if scratch is None or scratch.shape != src.shape:
                    scratch = np.empty(src.shape, np.float32)
                quantise(src, dst, maxval, scratch)
        return result


def quantise(src: np.ndarray, dst: np.ndarray, maxval: float, scratch: np.ndarray) -> None:
    """``dst = clip(round(src * maxval))`` in place, without temporaries the size of a 4K plane."""
    np.multiply(src, maxval, out=scratch)
    np.add(scratch, 0.5, out=scratch)
    np.clip(scratch, 0.0, maxval, out=scratch)
    np.copyto(dst, scratch, casting="unsafe")  # truncation of x + 0.5 = round half up
