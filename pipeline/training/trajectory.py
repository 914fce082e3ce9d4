"""Training the trajectory model (paper 002's second network): its inputs, targets and loss."""

from __future__ import annotations

import torch

from pipeline.lifting.model import TemporalModel
from pipeline.lifting.trajectory import decode, to_rays


def wmpjpe(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Paper 002's eq. (1): position error weighted by the inverse ground-truth depth (dimensionless).

    Args:
        pred, target: (..., 3) camera-frame metres.
    """
    return ((pred - target).norm(dim=-1) / target[..., 2].clamp_min(0.1)).mean()


def training_pair(shot, first: int, frames: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Rays and target pelvis positions from filmed windows (:class:`pipeline.training.dataset.FilmedWindows`).

    Returns:
        x: (B, L, 17, 2) rays; y: (B, frames, 3) camera-frame pelvis metres of the output frames.
    """
    x = to_rays(shot.uv, shot.focal[:, None, None, None], shot.center[:, None, None])
    return x, shot.cam3d[:, first: first + frames, 0]


def strided_roots(model: TemporalModel, x: torch.Tensor, first: int) -> torch.Tensor:
    """Training pass: (B, RF, 17, 2) rays -> (B, 1, 3) pelvis positions of each window's output frame."""
    return decode(model.forward_strided(x), x[:, first: first + 1])
