"""Root trajectory: where the pelvis is in the camera frame, from a 2D track (paper 002's second network).

The pose lifter (:mod:`pipeline.lift`) gives pelvis-relative joints. Paper 002 regresses the pelvis's
camera-space position with a second network of the same architecture (separate weights: the two hurt each
other when trained as one) and a loss weighted by inverse depth (WMPJPE, its eq. 1), because far people are
both harder and less important to place precisely.

What follows the paper: the same dilated TCN (:class:`pipeline.lift.TemporalModel`, ``target:
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
from dataclasses import dataclass, replace

import numpy as np
import torch

from pipeline.checkpoint import load_checkpoint
from pipeline.errors import ConfigError, ShapeError
from pipeline.lift import TemporalModel, flip_2d, pad_sequence, pose_size_2d, resample_time

DEFAULT_FOV_DEG = 55.0  # across the longer image side: a typical phone or action camera's main lens


def focal_from_fov(width: int, height: int, fov_deg: float) -> float:
    """Focal length in pixels for a field of view across the longer image side (degrees)."""
    if not 1.0 <= fov_deg <= 170.0:
        raise ConfigError(f"field of view must be in [1, 170] degrees, got {fov_deg}")
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


def wmpjpe(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Paper 002's eq. (1): position error weighted by the inverse ground-truth depth (dimensionless).

    Args:
        pred, target: (..., 3) camera-frame metres.
    """
    return ((pred - target).norm(dim=-1) / target[..., 2].clamp_min(0.1)).mean()


def training_pair(shot, first: int, frames: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Rays and target pelvis positions from filmed windows (:class:`pipeline.dataset.FilmedWindows`).

    Returns:
        x: (B, L, 17, 2) rays; y: (B, frames, 3) camera-frame pelvis metres of the output frames.
    """
    x = to_rays(shot.uv, shot.focal[:, None, None, None], shot.center[:, None, None])
    return x, shot.cam3d[:, first: first + frames, 0]


def strided_roots(model: TemporalModel, x: torch.Tensor, first: int) -> torch.Tensor:
    """Training pass: (B, RF, 17, 2) rays -> (B, 1, 3) pelvis positions of each window's output frame."""
    return decode(model.forward_strided(x), x[:, first: first + 1])


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
        from pipeline.keypoints import rebuild_torso

        keypoints = rebuild_torso(keypoints) if self.torso_from_limbs else keypoints
        f = focal or focal_from_fov(width, height, DEFAULT_FOV_DEG)
        rays = to_rays(keypoints.astype(np.float64), f, np.array([width / 2.0, height / 2.0]))
        same = abs(fps - self.train_fps) < 1e-3 * self.train_fps
        rays = rays if same else resample_time(rays, fps, self.train_fps)
        roots = infer_roots(self.model, rays.astype(np.float32), flip=flip, device=self.device)
        roots = roots if same else resample_time(roots, self.train_fps, fps, length=len(keypoints))
        return roots.astype(np.float32)


@dataclass(frozen=True)
class TrajectoryReport:
    """Trajectory error on held-out segments, per 2D protocol ('gt', 'noisy').

    Attributes:
        position_mm: Mean pelvis position error, mm (camera frame).
        depth_mm: Mean absolute depth (z) error, mm.
        relative: Mean position error divided by the true distance from the camera.
        frames, segments: How much was evaluated.
    """

    position_mm: dict[str, float]
    depth_mm: dict[str, float]
    relative: dict[str, float]
    frames: int
    segments: int


def evaluate_trajectory(model: TemporalModel, clips, camera, *, segment_frames: int = 250, seed: int = 0,
                        device: str = "cpu", torso_from_limbs: bool = False, progress=None) -> TrajectoryReport:
    """Film held-out clips with seeded random cameras and measure the predicted pelvis positions.

    Args:
        model: A ``target: trajectory`` network.
        clips: Held-out :class:`pipeline.dataset.Clip` s at the model's rate.
        camera: Virtual camera ranges (:class:`pipeline.config.CameraConfig`).
        segment_frames: Frames per camera segment.
        seed: Seed of cameras and noise.
        device: Torch device.
        torso_from_limbs: Give the network the 2D torso rebuilt from hips and shoulders (after the noise).
        progress: Called with (segments done, total).

    Returns:
        A :class:`TrajectoryReport`.
    """
    from pipeline.cameras import film
    from pipeline.dataset import corrupt_2d
    from pipeline.evaluate import NOISY_2D, _segments
    from pipeline.keypoints import rebuild_torso

    gen = torch.Generator().manual_seed(seed)
    # As pipeline.evaluate: a segment's camera already frames seconds of motion; do not shrink it further.
    camera = replace(camera, distance_scale=(1.0, min(2.0, camera.distance_scale[1])))
    jobs = [seg for clip in clips for seg in _segments(clip.joints, segment_frames)]
    sums = {p: np.zeros(3) for p in ("gt", "noisy")}
    frames = 0
    for i, seg in enumerate(jobs):
        shot = film(seg, camera, gen)
        truth, cam = shot.poses3d[:, 0], shot.camera
        uv = torch.from_numpy(shot.keypoints)[None]
        for protocol, uv2d in (("gt", uv), ("noisy", corrupt_2d(uv, NOISY_2D, gen))):
            uv2d = rebuild_torso(uv2d) if torso_from_limbs else uv2d
            rays = to_rays(uv2d[0].numpy().astype(np.float64), cam.focal, cam.center)
            pred = infer_roots(model, rays.astype(np.float32), device=device)
            err = np.linalg.norm(pred - truth, axis=-1)
            sums[protocol] += len(seg) * np.array([err.mean(), np.abs(pred[:, 2] - truth[:, 2]).mean(),
                                                   (err / np.linalg.norm(truth, axis=-1)).mean()])
        frames += len(seg)
        if progress:
            progress(i + 1, len(jobs))
    mean = {p: s / max(frames, 1) for p, s in sums.items()}
    return TrajectoryReport({p: 1000 * m[0] for p, m in mean.items()}, {p: 1000 * m[1] for p, m in mean.items()},
                            {p: m[2] for p, m in mean.items()}, frames, len(jobs))
