"""Official-style ``.pth`` weights served over HTTP on 127.0.0.1: download, checksum, same outputs."""

from __future__ import annotations

import functools
import hashlib
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from skyframe.catalogue import get_model
from skyframe.enhance.engine import load_upscaler
from skyframe.enhance.weights import WeightsError, download_weights, ncnn_state_dict
from tests.enhance.clips import psnr, real_frame

torch = pytest.importorskip("torch")

from skyframe.enhance.torch_runtime import TorchUpscaler  # noqa: E402 - needs torch


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A local HTTP server over a folder with official-style .pth files made from the ncnn weights."""
    root = tmp_path_factory.mktemp("weights-server")
    for stem, key, name in [
        ("realesr-animevideov3-x4", "params", "realesr-animevideov3.pth"),
        ("realesrgan-x4plus-anime", "params_ema", "RealESRGAN_x4plus_anime_6B.pth"),
    ]:
        _, state = ncnn_state_dict(stem)
        torch.save({key: {k: torch.from_numpy(v.copy()) for k, v in state.items()}}, root / name)
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", root
    finally:
        server.shutdown()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize(
    ("model", "name", "size"),
    [
        ("local_fast", "realesr-animevideov3.pth", (96, 64)),
        ("local_anime", "RealESRGAN_x4plus_anime_6B.pth", (40, 28)),
    ],
)
def test_pth_from_url_matches_ncnn_files(
    served: tuple[str, Path], tmp_path: Path, model: str, name: str, size: tuple[int, int]
) -> None:
    base, root = served
    frame = real_frame("libopenshot_run.mp4", 30)
    img = np.ascontiguousarray(frame[100 : 100 + size[1], 200 : 200 + size[0]])
    spec = get_model(model)
    from_url = TorchUpscaler(
        spec, threads=2, weights=f"{base}/{name}", cache_dir=tmp_path, sha256=_sha(root / name)
    )
    from_ncnn_files = TorchUpscaler(spec, threads=2)
    a, b = from_url.upscale(img), from_ncnn_files.upscale(img)
    assert np.array_equal(a, b)
    assert (tmp_path / name).is_file()
    assert psnr(a, load_upscaler(model, "ncnn", 2).upscale(img)) >= 45.0


def test_bad_checksum_is_refused_and_nothing_is_cached(served: tuple[str, Path], tmp_path: Path) -> None:
    base, _ = served
    with pytest.raises(WeightsError, match="Checksum mismatch"):
        download_weights(f"{base}/realesr-animevideov3.pth", tmp_path, "0" * 64)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(WeightsError, match="HTTP 404"):
        download_weights(f"{base}/missing.pth", tmp_path, None)
    assert list(tmp_path.iterdir()) == []


def test_cached_file_is_reverified(served: tuple[str, Path], tmp_path: Path) -> None:
    base, root = served
    url, digest = f"{base}/realesr-animevideov3.pth", _sha(root / "realesr-animevideov3.pth")
    path = download_weights(url, tmp_path, digest)
    path.write_bytes(b"tampered")
    assert _sha(download_weights(url, tmp_path, digest)) == digest
