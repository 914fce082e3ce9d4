"""The one compatibility step mmpose 1.1.0 needs here: a CSPNeXt backbone for RTMPose.

RTMPose's configs build their backbone from mmdetection (``backbone=dict(_scope_='mmdet', type='CSPNeXt')``).
mmdet is not installed (it needs the compiled ``mmcv`` ops, and this project runs on ``mmcv-lite``), so
mmpose 1.1.0 cannot build RTMPose at all. This module provides the same network, written against
``mmcv.cnn``'s ``ConvModule`` with the same module names, so RTMPose checkpoints load into it unchanged
(``backbone.stem.0.conv.weight``, ``backbone.stage1.1.blocks.0.conv2.depthwise_conv.bn.weight``, ...), and
registers it in mmpose's model registry. :func:`adapt_config` points RTMPose configs at it.

Architecture (RTMDet's CSPNeXt, P5): a 3-conv stem, then four stages, each a stride-2 3x3 conv, an SPP block
(last stage only) and a cross-stage-partial layer: two 1x1 branches, one through ``n`` blocks (3x3 conv, then
a 5x5 depthwise-separable conv, residual), concatenated, rescaled by channel attention, fused by a 1x1 conv.

Import this only where mmpose is needed: it imports mmcv and mmengine (slow).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from mmcv.cnn import ConvModule, DepthwiseSeparableConvModule
from mmengine.model import BaseModule
from torch import nn

# Per stage: in channels, out channels, blocks, residual blocks, SPP (before widen/deepen factors).
_P5 = ((64, 128, 3, True, False), (128, 256, 6, True, False), (256, 512, 6, True, False),
       (512, 1024, 3, False, True))


class _Block(nn.Module):
    """3x3 conv then 5x5 depthwise-separable conv, plus the input when ``residual``."""

    def __init__(self, channels: int, residual: bool, use_depthwise: bool, layer: dict) -> None:
        super().__init__()
        first = DepthwiseSeparableConvModule if use_depthwise else ConvModule
        self.conv1 = first(channels, channels, 3, padding=1, **layer)
        self.conv2 = DepthwiseSeparableConvModule(channels, channels, 5, padding=2, **layer)
        self.add_identity = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv2(self.conv1(x))
        return out + x if self.add_identity else out


class _ChannelAttention(nn.Module):
    """Per-channel gate: global average, 1x1 conv, hard sigmoid."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.global_avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Conv2d(channels, channels, 1, bias=True)
        self.act = nn.Hardsigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.act(self.fc(self.global_avgpool(x)))


class _CSPLayer(nn.Module):
    """Cross-stage-partial layer: a 1x1 shortcut branch and a 1x1 + blocks branch, gated, fused by 1x1."""

    def __init__(self, channels: int, blocks: int, residual: bool, expand_ratio: float, attention: bool,
                 use_depthwise: bool, layer: dict) -> None:
        super().__init__()
        mid = int(channels * expand_ratio)
        self.main_conv = ConvModule(channels, mid, 1, **layer)
        self.short_conv = ConvModule(channels, mid, 1, **layer)
        self.final_conv = ConvModule(2 * mid, channels, 1, **layer)
        self.blocks = nn.Sequential(*(_Block(mid, residual, use_depthwise, layer) for _ in range(blocks)))
        self.channel_attention = attention
        if attention:
            self.attention = _ChannelAttention(2 * mid)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.cat((self.blocks(self.main_conv(x)), self.short_conv(x)), dim=1)
        return self.final_conv(self.attention(out) if self.channel_attention else out)


class _SPP(nn.Module):
    """Spatial pyramid pooling: 1x1 halving conv, max-pools of several sizes concatenated, 1x1 conv."""

    def __init__(self, channels: int, kernel_sizes: Sequence[int], layer: dict) -> None:
        super().__init__()
        mid = channels // 2
        self.conv1 = ConvModule(channels, mid, 1, **layer)
        self.poolings = nn.ModuleList(nn.MaxPool2d(k, stride=1, padding=k // 2) for k in kernel_sizes)
        self.conv2 = ConvModule(mid * (len(kernel_sizes) + 1), channels, 1, **layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)
        return self.conv2(torch.cat([x] + [pool(x) for pool in self.poolings], dim=1))


class CSPNeXt(BaseModule):
    """RTMDet's CSPNeXt backbone (P5 layout), with mmdet's constructor arguments and parameter names.

    Args:
        arch: Only "P5" (the one RTMPose uses).
        deepen_factor, widen_factor: Block-count and channel multipliers (RTMPose-m: 0.67, 0.75).
        out_indices: Which outputs to return: 0 is the stem, 1-4 the stages.
        expand_ratio: Hidden-channel ratio of the cross-stage-partial layers.
        channel_attention: Gate each stage's concatenated branches per channel.
        use_depthwise: Depthwise-separable stride-2 and first block convolutions.
        spp_kernal_sizes: Max-pool sizes of the last stage's SPP block (mmdet's spelling, used by configs).
        conv_cfg, norm_cfg, act_cfg: mmcv layer configs.
        init_cfg: mmengine initialisation config (None: PyTorch's defaults).
    """

    def __init__(self, arch: str = "P5", deepen_factor: float = 1.0, widen_factor: float = 1.0,
                 out_indices: Sequence[int] = (2, 3, 4), expand_ratio: float = 0.5, channel_attention: bool = True,
                 use_depthwise: bool = False, spp_kernal_sizes: Sequence[int] = (5, 9, 13),
                 conv_cfg: dict | None = None, norm_cfg: dict | None = None, act_cfg: dict | None = None,
                 init_cfg: dict | list | None = None) -> None:
        super().__init__(init_cfg)
        if arch != "P5":
            raise ValueError(f"CSPNeXt: only arch='P5' is provided here, got {arch!r}")
        layer = dict(conv_cfg=conv_cfg, norm_cfg=norm_cfg or dict(type="BN", momentum=0.03, eps=0.001),
                     act_cfg=act_cfg or dict(type="SiLU"))
        stem = int(_P5[0][0] * widen_factor)
        self.stem = nn.Sequential(ConvModule(3, stem // 2, 3, stride=2, padding=1, **layer),
                                  ConvModule(stem // 2, stem // 2, 3, padding=1, **layer),
                                  ConvModule(stem // 2, stem, 3, padding=1, **layer))
        self.layers = ["stem"]
        down = DepthwiseSeparableConvModule if use_depthwise else ConvModule
        for i, (c_in, c_out, blocks, residual, spp) in enumerate(_P5, start=1):
            c_in, c_out = int(c_in * widen_factor), int(c_out * widen_factor)
            stage = [down(c_in, c_out, 3, stride=2, padding=1, **layer)]
            if spp:
                stage.append(_SPP(c_out, spp_kernal_sizes, layer))
            stage.append(_CSPLayer(c_out, max(round(blocks * deepen_factor), 1), residual, expand_ratio,
                                   channel_attention, use_depthwise, layer))
            self.add_module(f"stage{i}", nn.Sequential(*stage))
            self.layers.append(f"stage{i}")
        self.out_indices = tuple(out_indices)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        outs = []
        for i, name in enumerate(self.layers):
            x = getattr(self, name)(x)
            if i in self.out_indices:
                outs.append(x)
        return tuple(outs)


def adapt_config(model_cfg: dict) -> None:
    """Point a config's mmdet CSPNeXt backbone at :class:`CSPNeXt` (registered in mmpose's registry).

    Args:
        model_cfg: The config's ``model`` mapping, changed in place.
    """
    backbone = model_cfg.get("backbone", {})
    if backbone.get("type") == "CSPNeXt" and backbone.get("_scope_") == "mmdet":
        backbone.pop("_scope_")  # else mmengine tries to import mmdet, warns and falls back anyway
        from mmpose.registry import MODELS  # deferred: mmpose is slow to import and only the mmpose path needs it

        if "CSPNeXt" not in MODELS.module_dict:
            MODELS.register_module(name="CSPNeXt", module=CSPNeXt)
