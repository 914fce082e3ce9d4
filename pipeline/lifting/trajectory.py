"""Root trajectory: where the pelvis is in the camera frame, from a 2D track (paper 002's second network).

The pose lifter (:mod:`pipeline.lifting.model`) gives pelvis-relative joints. Paper 002 regresses the pelvis's
camera-space position with a second network of the same architecture (separate weights: the two hurt each
other when trained as one) and a loss weighted by inverse depth (WMPJPE, its eq. 1), because far people are
both harder and less important to place precisely.

What follows the paper: the same dilated TCN (:class:`pipeline.lifting.model.TemporalModel`, ``target:
trajectory``), trained on the same random virtual cameras and augmentation, with the WMPJPE loss.

Our adaptation, and why:

* **Inputs are camera rays** ``((u - cx) / f, (v - cy) / f)``, not screen coordinates. A position in
  metres is only defined given the intrinsics (the paper also needs them), and rays remove them from the
  learning problem: one network serves every image size and field of view. Users pass the field of view or
  focal length; without it we assume :data:`DEFAULT_FOV_DEG`, and depth scales with that guess.
* **The output is decoded, not raw XYZ.** The network sees the size-normalised pose, the pelvis ray and the
  log of the pose's size in ray units (``input_norm: pelvis_scale_pos_size``), and predicts
  ``(dx, dy, log k)``: depth is ``Z = k / size`` -- a person twice as far looks half as big, so ``log k`` is
  nearly constant (the body's size in metres, refined by pose and foreshortening) -- and
  ``X = (px + dx) Z``, ``Y = (py + dy) Z`` with ``(px, py)`` the pelvis ray, which already points at the
  root. The mapping the network must learn is then close to linear.

Shapes: rays (B, T, 17, 2); raw network output (B, T, 1, 3); roots (B, T, 3) camera-frame metres.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from pipeline.errors import ConfigError, ShapeError
from pipeline.keypoints import rebuild_torso
from pipeline.lifting.checkpoint import load_checkpoint
from pipeline.lifting.model import TemporalModel, flip_2d, pad_sequence, pose_size_2d, resample_time

DEFAULT_FOV_DEG = 55.0  # across the longer image side: a typical phone or action camera's main lens


def check_fov(fov_deg: float) -> float:
    """``fov_deg`` when it is a usable field of view (1-170 degrees), else ConfigError."""
    if not 1.0 <= fov_deg <= 170.0:
        raise ConfigError(f"field of view (--fov) must be in [1, 170] degrees, got {fov_deg}")
    return fov_deg


def focal_from_fov(width: int, height: int, fov_deg: float) -> float:
    """Focal length in pixels for a field of view across the longer image side (degrees)."""
    check_fov(fov_deg)
    return max(width, height) / 2.0 / math.tan(math.radians(fov_deg) / 2.0)


def to_rays(uv, focal, center):
    """Pixels to camera rays ``(u - cx) / f, (v - cy) / f``.

    Args:
        uv: (..., 2) pixels (numpy or torch).
        focal: Focal length(s) in pixels, a scalar or broadcastable to ``uv``.
        center: Principal point(s), broadcastable to ``uv``.

    Returns:
        (..., 2) rays, same type as ``uv``.
    """
    return (uv - center) / focal


def decode(raw: torch.Tensor, rays: torch.Tensor) -> torch.Tensor:
    """Network code -> camera-frame pelvis positions.

    Args:
        raw: (B, T, 1, 3) output of a ``target: trajectory`` model: (dx, dy, log k).
        rays: (B, T, 17, 2) the input rays at the same output frames.

    Returns:
        (B, T, 3) metres, camera frame (x right, y down, z forward).
    """
    code = raw[:, :, 0]
    depth = code[..., 2].exp() / pose_size_2d(rays)[..., 0]
    xy = (rays[:, :, 0] + code[..., :2]) * depth[..., None]
    return torch.cat([xy, depth[..., None]], dim=-1)


@torch.no_grad()
def infer_roots(model: TemporalModel, rays: np.ndarray, *, flip: bool = True, device: str = "cpu") -> np.ndarray:
    """Whole-sequence trajectory in one pass (replication padding at the ends, optional flip averaging).

    Args:
        model: A ``target: trajectory`` lifter.
        rays: (T, 17, 2) finite camera rays.
        flip: Average with the mirrored sequence (its x code negated back).
        device: Torch device.

    Returns:
        (T, 3) camera-frame pelvis positions, metres.
    """
    if rays.ndim != 3 or rays.shape[1:] != (17, 2) or not np.isfinite(rays).all():
        raise ShapeError(f"trajectory input must be finite (T, 17, 2) rays, got {rays.shape}")
    model = model.eval().to(device)
    x = torch.as_tensor(rays, dtype=torch.float32, device=device)[None]
    batch = torch.cat([x, flip_2d(x)]) if flip else x
    raw = model(pad_sequence(batch, model.receptive_field, model.config.causal))
    if flip:
        raw = (raw[:1] + raw[1:] * torch.tensor([-1.0, 1.0, 1.0], device=device)) / 2
    return decode(raw, x)[0].cpu().numpy()


class TrajectoryLifter:
    """A loaded trajectory model that turns pixel H36M-17 tracks into camera-frame pelvis positions.

    Args:
        model: A ``target: trajectory`` network.
        train_fps: Its training rate; tracks are resampled to it and back.
        device: Torch device.
        torso_from_limbs: The network trained on the 2D torso rebuilt from hips and shoulders; inputs get it too.
    """

    def __init__(self, model: TemporalModel, train_fps: float, device: str = "cpu",
                 torso_from_limbs: bool = False) -> None:
        if model.config.target != "trajectory":
            raise ConfigError("this checkpoint is a pose lifter, not a trajectory model (target: trajectory)")
        self.model, self.train_fps, self.device = model.eval().to(device), float(train_fps), device
        self.torso_from_limbs = torso_from_limbs

    @classmethod
    def load(cls, weights, device: str = "cpu") -> "TrajectoryLifter":
        """Load a trajectory checkpoint written by ``pose3d train`` with ``lifter.target: trajectory``."""
        model, meta = load_checkpoint(weights)
        return cls(model, meta["train_fps"], device, meta["torso_from_limbs"])

    def lift(self, keypoints: np.ndarray, width: int, height: int, fps: float, focal: float | None = None,
             flip: bool = True) -> np.ndarray:
        """Pelvis positions of one person's track.

        Args:
            keypoints: (T, 17, 2) H36M-17 pixels, finite (fill gaps first).
            width, height: Image size, pixels (the principal point is taken at the centre).
            fps: Track frame rate, Hz.
            focal: Focal length, pixels; None assumes :data:`DEFAULT_FOV_DEG`.
            flip: Flip test-time augmentation.

        Returns:
            (T, 3) float32 camera-frame metres.
        """
        keypoints = rebuild_torso(keypoints) if self.torso_from_limbs else keypoints
        f = focal or focal_from_fov(width, height, DEFAULT_FOV_DEG)
        rays = to_rays(keypoints.astype(np.float64), f, np.array([width / 2.0, height / 2.0]))
        same = abs(fps - self.train_fps) < 1e-3 * self.train_fps
        rays = rays if same else resample_time(rays, fps, self.train_fps)
        roots = infer_roots(self.model, rays.astype(np.float32), flip=flip, device=self.device)
        roots = roots if same else resample_time(roots, self.train_fps, fps, length=len(keypoints))
        return roots.astype(np.float32)


