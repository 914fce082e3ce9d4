"""Stage 5: lift 2D keypoint tracks to metric 3D with a VideoPose3D dilated temporal convolutional network.

Architecture (VideoPose3D, Pavllo et al. 2019): a first convolution of width ``w0`` from J*2 input channels
to C channels, then B residual blocks, each a dilated convolution (width ``w_b``, dilation the product of
the previous widths) followed by a 1x1 convolution; every convolution is followed by batch norm, ReLU and
dropout; a final 1x1 convolution maps to J*3. The receptive field is the product of the widths.

The same parameters serve two forward passes:

* :meth:`TemporalModel.forward` -- dilated convolutions over a whole sequence (inference).
* :meth:`TemporalModel.forward_strided` -- strided convolutions that compute one output frame per window
  and skip every state the output does not use (training, paper 002 appendix A.6).

Inputs are normalised screen coordinates (see :mod:`pipeline.camera`); outputs are camera-frame metres
relative to the pelvis.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from pipeline.errors import ConfigError, ShapeError
from pipeline.skeleton import H36M17


@dataclass(frozen=True)
class LifterConfig:
    """Architecture of the VideoPose3D temporal convolutional lifter.

    Attributes:
        filter_widths: Kernel width per layer; receptive field is their product (3,3,3 -> 27).
        channels: Convolution channels C.
        dropout: Dropout after every convolution.
        causal: Use only past frames (online mode); output lags by nothing but sees no future.
        num_joints: Joints in and out (H36M-17).
        input_norm: "screen" feeds the VideoPose3D-normalised screen coordinates as they are (official
            checkpoints); "pelvis_scale" first moves each frame's pelvis to the origin and scales the pose
            to unit RMS size, so the network need not learn invariance to position and size in the image;
            "pelvis_scale_pos" does the same and adds the pelvis's screen position as two more input
            channels, so the network still knows the viewing direction (off-centre people are seen obliquely);
            "pelvis_scale_pos_size" also adds the log of the removed size (how far away the person is), for
            the trajectory model, whose inputs are camera rays (see :mod:`pipeline.lifting.trajectory`).
        target: "pose" regresses the 17 pelvis-relative joints; "trajectory" regresses the pelvis position in
            the camera frame (paper 002's second network, :mod:`pipeline.lifting.trajectory`).
    """

    filter_widths: tuple[int, ...] = (3, 3, 3)
    channels: int = 1024
    dropout: float = 0.25
    causal: bool = False
    num_joints: int = 17
    input_norm: str = "screen"
    target: str = "pose"

    def __post_init__(self) -> None:
        if not self.filter_widths or any(w % 2 == 0 or w < 1 for w in self.filter_widths):
            raise ConfigError(f"filter_widths must be odd positive ints, got {self.filter_widths}")
        if self.channels < 1 or not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"bad channels={self.channels} or dropout={self.dropout}")
        norms = ("screen", "pelvis_scale", "pelvis_scale_pos", "pelvis_scale_pos_size")
        if self.input_norm not in norms:
            raise ConfigError(f"input_norm must be one of {', '.join(norms)}; got {self.input_norm!r}")
        if self.target not in ("pose", "trajectory"):
            raise ConfigError(f"target must be 'pose' or 'trajectory', got {self.target!r}")

    @property
    def receptive_field(self) -> int:
        rf = 1
        for w in self.filter_widths:
            rf *= w
        return rf


class TemporalModel(nn.Module):
    """VideoPose3D temporal convolutional lifter; parameter names match the official checkpoints."""

    def __init__(self, config: LifterConfig) -> None:
        super().__init__()
        self.config = config
        widths, c, j = config.filter_widths, config.channels, config.num_joints
        # "pelvis_scale_pos" adds the pelvis's screen position: the viewing ray, lost by centring;
        # "pelvis_scale_pos_size" also the log of the removed size (the distance cue).
        extra = {"pelvis_scale_pos": 2, "pelvis_scale_pos_size": 3}.get(config.input_norm, 0)
        self.expand_conv = nn.Conv1d(j * 2 + extra, c, widths[0], bias=False)
        self.expand_bn = nn.BatchNorm1d(c, momentum=0.1)
        self.layers_conv = nn.ModuleList()
        self.layers_bn = nn.ModuleList()
        self.dilations: list[int] = []
        dilation = widths[0]
        for w in widths[1:]:
            self.layers_conv.append(nn.Conv1d(c, c, w, dilation=dilation, bias=False))
            self.layers_bn.append(nn.BatchNorm1d(c, momentum=0.1))
            self.layers_conv.append(nn.Conv1d(c, c, 1, bias=False))
            self.layers_bn.append(nn.BatchNorm1d(c, momentum=0.1))
            self.dilations.append(dilation)
            dilation *= w
        self.shrink = nn.Conv1d(c, 3 if config.target == "trajectory" else j * 3, 1)
        self.drop = nn.Dropout(config.dropout)

    @property
    def receptive_field(self) -> int:
        return self.config.receptive_field

    def set_bn_momentum(self, momentum: float) -> None:
        for bn in [self.expand_bn, *self.layers_bn]:
            bn.momentum = momentum

    def _residual_offset(self, block: int) -> tuple[int, int]:
        """(pad, causal shift) of residual block ``block`` in output frames of the dilated model."""
        w, d = self.config.filter_widths[block + 1], self.dilations[block]
        pad = (w - 1) * d // 2
        return pad, (pad if self.config.causal else 0)

    def _check(self, x: torch.Tensor) -> torch.Tensor:
        j = self.config.num_joints
        if x.ndim != 4 or x.shape[-2:] != (j, 2):
            raise ShapeError(f"lifter input must be (B, T, {j}, 2), got {tuple(x.shape)}")
        if self.config.input_norm == "pelvis_scale":
            x = normalize_pose_2d(x)
        elif self.config.input_norm == "pelvis_scale_pos":
            return torch.cat([normalize_pose_2d(x).flatten(2), x[:, :, 0]], dim=2).transpose(1, 2)
        elif self.config.input_norm == "pelvis_scale_pos_size":
            size = pose_size_2d(x).log()
            return torch.cat([normalize_pose_2d(x).flatten(2), x[:, :, 0], size], dim=2).transpose(1, 2)
        return x.flatten(2).transpose(1, 2)

    def _head(self, x: torch.Tensor) -> torch.Tensor:
        b, _, t = x.shape
        out = self.shrink(x).transpose(1, 2).reshape(b, t, -1, 3)
        if self.config.target == "trajectory":
            return out  # (B, T, 1, 3) raw trajectory code, decoded by pipeline.lifting.trajectory
        return out - out[:, :, :1]  # pelvis-relative by construction

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Dilated pass over whole sequences.

        Args:
            x: (B, T, J, 2) normalised screen coordinates.

        Returns:
            (B, T - receptive_field + 1, J, 3) pelvis-relative camera-frame metres.
        """
        x = self.drop(F.relu(self.expand_bn(self.expand_conv(self._check(x)))))
        for i in range(len(self.dilations)):
            pad, shift = self._residual_offset(i)
            res = x[:, :, pad + shift: x.shape[2] - pad + shift]
            x = self.drop(F.relu(self.layers_bn[2 * i](self.layers_conv[2 * i](x))))
            x = res + self.drop(F.relu(self.layers_bn[2 * i + 1](self.layers_conv[2 * i + 1](x))))
        return self._head(x)

    def forward_strided(self, x: torch.Tensor) -> torch.Tensor:
        """Strided single-frame pass (training): one output per receptive-field window.

        A convolution whose stride equals its width is a matrix product over non-overlapping groups of
        frames, so the pass runs channel-last as plain matmuls: 2.5x faster than strided ``conv1d`` on
        CPU (oneDNN has no fast path for stride = width) with the same parameters and result.

        Args:
            x: (B, receptive_field, J, 2) normalised screen coordinates.

        Returns:
            (B, 1, J, 3) pelvis-relative camera-frame metres for the window's output frame.
        """
        widths = self.config.filter_widths
        x = self._check(x).transpose(1, 2)  # (B, T, C_in), channel-last
        x = self.drop(F.relu(_bn_last(self.expand_bn, _grouped_matmul(x, self.expand_conv.weight))))
        for i, w in enumerate(widths[1:]):
            # The output frame sits at the window centre (or its end when causal): pick the matching input.
            shift = w // 2 if not self.config.causal else w - 1
            res = x[:, shift::w]
            x = self.drop(F.relu(_bn_last(self.layers_bn[2 * i], _grouped_matmul(x, self.layers_conv[2 * i].weight))))
            x = res + self.drop(F.relu(_bn_last(self.layers_bn[2 * i + 1],
                                                _grouped_matmul(x, self.layers_conv[2 * i + 1].weight))))
        return self._head(x.transpose(1, 2))


def _grouped_matmul(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``conv1d(x, weight, stride=width)`` for channel-last x: (B, T, C_in) -> (B, T // width, C_out)."""
    c_out, c_in, w = weight.shape
    b, t, _ = x.shape
    groups = x[:, : t - t % w].reshape(b, t // w, w * c_in)  # frame-major: (frame in group, channel)
    return groups @ weight.permute(0, 2, 1).reshape(c_out, w * c_in).t()


def _bn_last(bn: nn.BatchNorm1d, x: torch.Tensor) -> torch.Tensor:
    """Batch norm of channel-last (B, T, C), with the same statistics as on (B, C, T)."""
    return bn(x.reshape(-1, x.shape[-1])).view(x.shape)


def normalize_pose_2d(x: torch.Tensor) -> torch.Tensor:
    """Per frame: pelvis to the origin, RMS joint distance from the pelvis to 1.

    Makes the network's input independent of where and how large the person appears, which it would
    otherwise have to learn from data. Args: x (B, T, J, 2). Returns: (B, T, J, 2).
    """
    return (x - x[:, :, :1]) / pose_size_2d(x)[..., None]


def pose_size_2d(x: torch.Tensor) -> torch.Tensor:
    """Per frame RMS distance of the joints from the pelvis. Args: x (B, T, J, 2). Returns: (B, T, 1)."""
    return (x - x[:, :, :1]).square().sum(-1).mean(-1, keepdim=True).sqrt().clamp_min(1e-4)


def pad_sequence(x: torch.Tensor, receptive_field: int, causal: bool) -> torch.Tensor:
    """Replicate the end frames so the dilated model returns one output per input frame.

    Args:
        x: (B, T, J, 2) input sequence.
        receptive_field: Model receptive field (odd).
        causal: Pad only the past (the model sees no future frames).

    Returns:
        (B, T + receptive_field - 1, J, 2).
    """
    half = receptive_field // 2
    left, right = (2 * half, 0) if causal else (half, half)
    first, last = x[:, :1].expand(-1, left, -1, -1), x[:, -1:].expand(-1, right, -1, -1)
    return torch.cat([first, x, last], dim=1)


def flip_2d(x: torch.Tensor, skeleton=H36M17) -> torch.Tensor:
    """Mirror normalised 2D keypoints horizontally and swap left/right joints. x: (..., J, 2)."""
    x = x[..., skeleton.flip_permutation(), :].clone()
    x[..., 0] *= -1
    return x


def flip_3d(x: torch.Tensor, skeleton=H36M17) -> torch.Tensor:
    """Mirror camera-frame 3D poses (x -> -x) and swap left/right joints. x: (..., J, 3)."""
    x = x[..., skeleton.flip_permutation(), :].clone()
    x[..., 0] *= -1
    return x


@torch.no_grad()
def infer(model: TemporalModel, keypoints: np.ndarray, *, flip: bool = True, device: str = "cpu",
          chunk: int = 0) -> np.ndarray:
    """Lift one whole sequence in a single pass (replication padding at its ends only).

    Args:
        model: A trained lifter.
        keypoints: (T, J, 2) normalised screen coordinates, finite.
        flip: Average with the horizontally mirrored input (test-time augmentation).
        device: Torch device string.
        chunk: If > 0, process the sequence in chunks of this many output frames (bounded memory); results
            are identical to one pass because chunks overlap by the receptive field.

    Returns:
        (T, J, 3) pelvis-relative camera-frame poses, metres.
    """
    if keypoints.ndim != 3 or keypoints.shape[-1] != 2 or not np.isfinite(keypoints).all():
        raise ShapeError(f"infer expects finite (T, J, 2) keypoints, got {keypoints.shape}")
    model = model.eval().to(device)
    x = torch.as_tensor(keypoints, dtype=torch.float32, device=device)[None]
    batch = torch.cat([x, flip_2d(x)]) if flip else x
    rf = model.receptive_field
    padded = pad_sequence(batch, rf, model.config.causal)
    t = x.shape[1]
    step = chunk if chunk > 0 else t
    outs = [model(padded[:, s: s + step + rf - 1]) for s in range(0, t, step)]
    out = torch.cat(outs, dim=1)
    if flip:
        out = (out[:1] + flip_3d(out[1:])) / 2
    return out[0].cpu().numpy()


def resample_time(values: np.ndarray, fps_in: float, fps_out: float, length: int | None = None) -> np.ndarray:
    """Linearly resample a (T, ...) time series from ``fps_in`` to ``fps_out``.

    Args:
        values: (T, ...) samples at times i / fps_in.
        fps_in, fps_out: Frame rates, Hz.
        length: Number of output samples (default: cover the same duration).

    Returns:
        (T', ...) samples at times i / fps_out (the last input sample is held past the end).
    """
    n = length if length is not None else int(np.floor((len(values) - 1) * fps_out / fps_in + 1e-9)) + 1
    pos = np.clip(np.arange(n) / fps_out * fps_in, 0, len(values) - 1)
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, len(values) - 1)
    w = (pos - lo).reshape(-1, *([1] * (values.ndim - 1)))
    return values[lo] * (1 - w) + values[hi] * w
