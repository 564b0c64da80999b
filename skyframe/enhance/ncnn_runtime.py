"""The CPU default: the pip ``ncnn`` package running the shipped ``.param``/``.bin`` files in fp32.

Why ncnn: on the measured 2-core box it is the fastest fp32 runtime for these models (about the machine's
fp32 limit), needs no conversion step, and has no Vulkan/OpenMP system dependencies (see
``/work/shared/notes/engine-measurements.md``). ``Extractor.extract`` releases the GIL, so decode and encode
threads run while the model computes.

RRDBNet (local_detail, local_anime) is run in stages rather than in one ``extract``:

* the trunk (all RRDB blocks, at input resolution, ~95% of the compute, ~12 KB per input pixel) runs on
  large tiles, a few blocks per ``extract``, so a cancel request is seen within seconds even though a
  whole x4plus frame takes tens of seconds on 2 cores;
* the upsampling tail (64 channels at 2x and 4x resolution, ~53 KB per *input* pixel in ncnn's buffers)
  runs on small sub-tiles of the trunk's feature map. Its receptive field is under 2 input pixels, so a
  4-pixel overlap makes it exact, and memory stays bounded without making the trunk tiles small.
Feeding an intermediate blob into a fresh extractor is exact in ncnn (same layers, same order).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from skyframe.catalogue import ModelSpec
from skyframe.enhance.base import Cancelled, Upscaler, plan_tiles
from skyframe.enhance.weights import WeightsError, ncnn_files, parse_param


class NcnnUpscaler(Upscaler):
    """ncnn on CPU. ``precision="bf16"`` (opt-in) stores activations in bf16: ~20% faster, ~58 dB vs fp32."""

    #: RRDB: blocks per trunk ``extract`` (cancellation granularity)
    blocks_per_stage = 2
    #: RRDB tail sub-tiles: input pixels incl. context; ~53 KB each in ncnn -> ~850 MB peak
    tail_tile_pixels = 16_000
    tail_context = 4

    def __init__(self, spec: ModelSpec, threads: int, precision: str = "fp32") -> None:
        import ncnn

        if spec.weights is None or spec.arch is None:
            raise WeightsError(f"Model {spec.key} is not a local model.")
        if precision not in ("fp32", "bf16"):
            raise ValueError(f"ncnn precision must be fp32 or bf16, not {precision!r}")
        self._ncnn = ncnn
        self.model_key = spec.key
        self.runtime = "ncnn" if precision == "fp32" else "ncnn-bf16"
        self.threads = threads
        param, binary = ncnn_files(spec.weights)
        net = ncnn.Net()
        opt = net.opt
        opt.num_threads = threads
        opt.use_vulkan_compute = False
        opt.lightmode = True  # recycle intermediate blobs: 4x less memory, and faster
        opt.use_fp16_packed = opt.use_fp16_storage = opt.use_fp16_arithmetic = False
        opt.use_bf16_storage = precision == "bf16"
        if net.load_param_mem(_with_quantiser(param.read_text())) != 0 or net.load_model(str(binary)) != 0:
            raise WeightsError(f"ncnn could not load {param.name}/{binary.name}.")
        self._net = net
        if "data" not in net.input_names() or _QUANTISED not in net.output_names():
            raise WeightsError(f"{param.name}: expected blobs 'data' and 'output'.")
        self.prescaled_u8 = True
        self._stages: list[str] = []
        if spec.arch == "rrdb":
            self._find_rrdb_blobs(param)
            # trunk ~12 KB per input pixel: 150k px tiles (a padded 480x270 frame, i.e. 1080p output, in
            # one piece) peak near 1.9 GB; 40 px of context keeps the tiled result within ~60 dB of the
            # untiled one (max error a few levels at a seam)
            self.context, self.max_tile_pixels = 40, 150_000
        else:
            # ~2.6 KB per input pixel: 980x560 (960x540 + padding) in one piece peaks near 1.5 GB;
            # 18 convs = 18 px receptive radius, so 20 px of context is exact
            self.context, self.max_tile_pixels = 20, 600_000

    def _find_rrdb_blobs(self, param: Path) -> None:
        """Blob names of the stage boundaries, read from the graph (they differ between the two files)."""
        layers = parse_param(param)
        convs = [layer for layer in layers if layer.type == "Convolution"]
        eltwise = [layer for layer in layers if layer.type == "Eltwise"]
        interp = [layer for layer in layers if layer.type == "Interp"]
        if not convs or not interp or len(eltwise) % 4:
            raise WeightsError("Unexpected RRDBNet graph in the ncnn param file.")
        self._feat0 = convs[0].tops[0]  # conv_first output, also used by the trunk's long skip
        # every RRDB ends with its 4th Eltwise (3 dense-block residuals + the block residual)
        block_ends = [layer.tops[0] for i, layer in enumerate(eltwise) if i % 4 == 3]
        self._stages = block_ends[self.blocks_per_stage - 1 :: self.blocks_per_stage]
        if self._stages[-1] != block_ends[-1]:
            self._stages.append(block_ends[-1])
        self._trunk = interp[0].bottoms[0]  # conv_body(trunk) + feat0, input of the first upsampling

    def _extract(self, inputs: dict[str, object], blob: str) -> object:
        """Run the graph from ``inputs`` up to ``blob``; returns the ncnn Mat (channel-aligned memory:
        view it with ``np.asarray``, never wrap that view in a new Mat)."""
        ex = self._net.create_extractor()
        for name, mat in inputs.items():
            ex.input(name, mat)
        ret, out = ex.extract(blob)
        if ret != 0:
            raise RuntimeError(f"ncnn extract of {blob!r} failed with code {ret}")
        return out

    def _input_mat(self, tile: np.ndarray) -> object:
        ncnn = self._ncnn
        h, w = tile.shape[:2]
        if tile.dtype == np.uint8:
            mat = ncnn.Mat.from_pixels(tile, ncnn.Mat.PixelType.PIXEL_RGB, w, h)
            mat.substract_mean_normalize([], [1 / 255.0] * 3)
            return mat
        # 16-bit path for >8-bit video. ncnn.Mat(array) borrows the array's memory without keeping the
        # array alive: hold it in a name until the clone owns a copy
        planar = np.ascontiguousarray(tile.transpose(2, 0, 1), dtype=np.float32) / 65535.0
        mat = ncnn.Mat(planar).clone()
        del planar
        return mat

    def _run(self, tile: np.ndarray, should_stop: Callable[[], bool] | None) -> np.ndarray:
        mat = self._input_mat(tile)
        # uint8 tiles come back already scaled/rounded/clipped; the 16-bit path takes the raw output
        blob = _QUANTISED if tile.dtype == np.uint8 else "output"
        if not self._stages:
            return np.asarray(self._extract({"data": mat}, blob))
        return self._run_rrdb(mat, tile.shape[0], tile.shape[1], should_stop, blob)

    def _run_rrdb(
        self, mat: object, h: int, w: int, should_stop: Callable[[], bool] | None, blob: str
    ) -> np.ndarray:
        ncnn = self._ncnn

        def check() -> None:
            if should_stop is not None and should_stop():
                raise Cancelled("Stopped on request.")

        feat0 = self._extract({"data": mat}, self._feat0)
        prev: tuple[str, object] | None = None
        for stage in self._stages:
            check()
            inputs = {self._feat0: feat0}
            if prev is not None:
                inputs[prev[0]] = prev[1]
            prev = (stage, self._extract(inputs, stage))
        assert prev is not None
        trunk = np.asarray(self._extract({self._feat0: feat0, prev[0]: prev[1]}, self._trunk))
        del feat0, prev
        s = self.scale
        out = np.empty((3, h * s, w * s), np.float32)
        for sub in plan_tiles(w, h, self.tail_tile_pixels, self.tail_context):
            check()
            part = np.ascontiguousarray(trunk[:, sub.y0 : sub.y1, sub.x0 : sub.x1])
            res = np.asarray(self._extract({self._trunk: ncnn.Mat(part)}, blob))  # Mat borrows `part`
            ry, rx = (sub.cy0 - sub.y0) * s, (sub.cx0 - sub.x0) * s
            ch, cw = (sub.cy1 - sub.cy0) * s, (sub.cx1 - sub.cx0) * s
            out[:, sub.cy0 * s : sub.cy1 * s, sub.cx0 * s : sub.cx1 * s] = res[:, ry : ry + ch, rx : rx + cw]
        return out


_QUANTISED = "skyframe_u8"


def _with_quantiser(param_text: str) -> str:
    """The param file plus three layers after ``output``: ``clip(x * 255 + 0.5, 0, 255)``.

    Done in the graph because ncnn runs it on all its threads, while numpy would run it on one (four
    passes over a 25 MB plane set per 4K frame). The ``output`` blob stays extractable for 16-bit video.
    """
    lines = param_text.strip("\n").split("\n")
    layers, blobs = (int(v) for v in lines[1].split())
    lines[1] = f"{layers + 3} {blobs + 3}"
    lines += [
        "BinaryOp skyframe_mul 1 1 output skyframe_x255 0=2 1=1 2=2.550000e+02",
        "BinaryOp skyframe_add 1 1 skyframe_x255 skyframe_round 0=0 1=1 2=5.000000e-01",
        f"Clip skyframe_clip 1 1 skyframe_round {_QUANTISED} 0=0.000000e+00 1=2.550000e+02",
    ]
    return "\n".join(lines) + "\n"
