"""PyTorch versions of the two Real-ESRGAN generator architectures, with the official parameter names.

Written from the published architecture descriptions (Real-ESRGAN / ESRGAN papers) so that both the
weights parsed from the shipped ncnn files and the official ``.pth`` state dicts load with
``strict=True``. Importing this module imports torch: only the torch runtime does that.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from skyframe.enhance.weights import ArchConfig


class SRVGGNetCompact(nn.Module):
    """Plain VGG-style body at input resolution, pixel-shuffle to x``scale``, plus a nearest-upsampled
    copy of the input (the network only predicts the residual)."""

    def __init__(self, num_feat: int = 64, num_conv: int = 16, scale: int = 4) -> None:
        super().__init__()
        self.scale = scale
        layers: list[nn.Module] = [nn.Conv2d(3, num_feat, 3, 1, 1), nn.PReLU(num_parameters=num_feat)]
        for _ in range(num_conv):
            layers += [nn.Conv2d(num_feat, num_feat, 3, 1, 1), nn.PReLU(num_parameters=num_feat)]
        layers.append(nn.Conv2d(num_feat, 3 * scale * scale, 3, 1, 1))
        self.body = nn.ModuleList(layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x
        for layer in self.body:
            out = layer(out)
        out = F.pixel_shuffle(out, self.scale)
        return out + F.interpolate(x, scale_factor=self.scale, mode="nearest")


class _DenseBlock(nn.Module):
    """Five convs, each seeing the block input and every earlier output; residual scaled by 0.2."""

    def __init__(self, num_feat: int, grow: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(num_feat, grow, 3, 1, 1)
        self.conv2 = nn.Conv2d(num_feat + grow, grow, 3, 1, 1)
        self.conv3 = nn.Conv2d(num_feat + 2 * grow, grow, 3, 1, 1)
        self.conv4 = nn.Conv2d(num_feat + 3 * grow, grow, 3, 1, 1)
        self.conv5 = nn.Conv2d(num_feat + 4 * grow, num_feat, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = [x]
        for conv in (self.conv1, self.conv2, self.conv3, self.conv4):
            feats.append(F.leaky_relu(conv(torch.cat(feats, 1)), 0.2))
        return self.conv5(torch.cat(feats, 1)) * 0.2 + x


class _RRDB(nn.Module):
    """Three dense blocks in a row with a scaled outer residual (residual-in-residual)."""

    def __init__(self, num_feat: int, grow: int) -> None:
        super().__init__()
        self.rdb1 = _DenseBlock(num_feat, grow)
        self.rdb2 = _DenseBlock(num_feat, grow)
        self.rdb3 = _DenseBlock(num_feat, grow)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.rdb3(self.rdb2(self.rdb1(x))) * 0.2 + x


class RRDBNet(nn.Module):
    """ESRGAN generator: RRDB trunk at input resolution, then two nearest x2 upsampling stages."""

    def __init__(self, num_feat: int = 64, num_block: int = 23, num_grow_ch: int = 32) -> None:
        super().__init__()
        self.conv_first = nn.Conv2d(3, num_feat, 3, 1, 1)
        self.body = nn.Sequential(*(_RRDB(num_feat, num_grow_ch) for _ in range(num_block)))
        self.conv_body = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_up1 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_up2 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_hr = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_last = nn.Conv2d(num_feat, 3, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat = self.conv_first(x)
        feat = feat + self.conv_body(self.body(feat))
        feat = F.leaky_relu(self.conv_up1(F.interpolate(feat, scale_factor=2, mode="nearest")), 0.2)
        feat = F.leaky_relu(self.conv_up2(F.interpolate(feat, scale_factor=2, mode="nearest")), 0.2)
        return self.conv_last(F.leaky_relu(self.conv_hr(feat), 0.2))


def build(config: ArchConfig) -> nn.Module:
    """An untrained network for ``config``."""
    if config.arch == "srvgg":
        return SRVGGNetCompact(config.num_feat, config.num_conv, config.scale)
    if config.arch == "rrdb":
        if config.scale != 4:
            raise ValueError("only x4 RRDBNet is supported")
        return RRDBNet(config.num_feat, config.num_block, config.num_grow_ch)
    raise ValueError(f"unknown architecture {config.arch!r}")
