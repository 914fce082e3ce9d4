"""Training losses (paper 000 on top of VideoPose3D's MPJPE, plus paper 004's bone term).

All inputs are (B, K, J, 3) camera-frame metres over K consecutive output frames. Every term is zero when
the prediction equals a ground truth whose bone lengths are constant, and each can be switched off by a
zero weight in :class:`pipeline.training.config.LossConfig`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from pipeline.skeleton import H36M17
from pipeline.training.config import LossConfig


def mpjpe(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean per-joint position error: mean Euclidean distance over all joints and frames, metres."""
    return (pred - target).norm(dim=-1).mean()


def velocity_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean Euclidean error of first temporal differences (per-frame velocity), metres/frame."""
    return mpjpe(pred.diff(dim=1), target.diff(dim=1))


def acceleration_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean Euclidean error of second temporal differences (per-frame acceleration), metres/frame^2."""
    return mpjpe(pred.diff(n=2, dim=1), target.diff(n=2, dim=1))


def bone_lengths(poses: torch.Tensor, skeleton=H36M17) -> torch.Tensor:
    """Bone lengths of poses (..., J, 3) -> (..., num_bones), metres."""
    parents, children = zip(*skeleton.bones)
    return (poses[..., list(children), :] - poses[..., list(parents), :]).norm(dim=-1)


def limb_length_loss(pred: torch.Tensor) -> torch.Tensor:
    """Temporal limb-length invariance: mean absolute deviation of each bone from its mean over time, metres."""
    lengths = bone_lengths(pred)
    return (lengths - lengths.mean(dim=1, keepdim=True)).abs().mean()


def bone_loss(pred: torch.Tensor, target: torch.Tensor, skeleton=H36M17) -> torch.Tensor:
    """Paper 004's bone loss: mean L1 distance between predicted and ground-truth bone vectors, metres.

    Paper 004 (after Sun et al., compositional pose regression) writes it as sum_k |B~_k - B_k|_1 with the
    bone B_k = J_parent(k) - J_k. We average over bones, frames and samples instead of summing over bones, so
    its weight reads on the per-joint scale of MPJPE. It penalises wrong bone lengths and wrong bone
    directions, frame by frame, so it needs no temporal context (any K >= 1).

    Args:
        pred, target: (B, K, J, 3) metres.
        skeleton: Kinematic tree giving the bones.

    Returns:
        Scalar: mean over (B, K, bones) of the L1 norm of the bone-vector difference.
    """
    parents, children = (list(v) for v in zip(*skeleton.bones))
    diff = (pred[..., parents, :] - pred[..., children, :]) - (target[..., parents, :] - target[..., children, :])
    return diff.abs().sum(dim=-1).mean()


@dataclass(frozen=True)
class LossTerms:
    """The weighted total and each unweighted term (scalars)."""

    total: torch.Tensor
    mpjpe: torch.Tensor
    velocity: torch.Tensor
    acceleration: torch.Tensor
    limb_length: torch.Tensor
    bone: torch.Tensor


def total_loss(pred: torch.Tensor, target: torch.Tensor, config: LossConfig) -> LossTerms:
    """MPJPE + alpha * velocity + beta * acceleration + gamma * limb length + bone weight * bone term.

    Terms with weight 0 are skipped (reported as 0).

    Args:
        pred, target: (B, K, J, 3) metres; temporal terms need K >= 2 (velocity, limb) or K >= 3 (acceleration).
        config: Term weights.

    Returns:
        :class:`LossTerms`.
    """
    zero = pred.new_zeros(())
    k = pred.shape[1]
    pos = mpjpe(pred, target)
    vel = velocity_loss(pred, target) if config.velocity and k >= 2 else zero
    acc = acceleration_loss(pred, target) if config.acceleration and k >= 3 else zero
    limb = limb_length_loss(pred) if config.limb_length and k >= 2 else zero
    bone = bone_loss(pred, target) if config.bone else zero
    total = pos + config.velocity * vel + config.acceleration * acc + config.limb_length * limb + config.bone * bone
    return LossTerms(total, pos, vel, acc, limb, bone)
