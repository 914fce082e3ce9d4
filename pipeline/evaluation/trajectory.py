"""Evaluate a trajectory model on held-out mocap through random virtual cameras (``pose3d evaluate``)."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from pipeline.evaluation.evaluate import NOISY_2D, segments
from pipeline.keypoints import rebuild_torso
from pipeline.lifting.model import TemporalModel
from pipeline.lifting.trajectory import infer_roots, to_rays
from pipeline.training.cameras import film
from pipeline.training.dataset import corrupt_2d


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
        clips: Held-out :class:`pipeline.training.dataset.Clip` s at the model's rate.
        camera: Virtual camera ranges (:class:`pipeline.training.config.CameraConfig`).
        segment_frames: Frames per camera segment.
        seed: Seed of cameras and noise.
        device: Torch device.
        torso_from_limbs: Give the network the 2D torso rebuilt from hips and shoulders (after the noise).
        progress: Called with (segments done, total).

    Returns:
        A :class:`TrajectoryReport`.
    """
    gen = torch.Generator().manual_seed(seed)
    # As pipeline.evaluation.evaluate: a segment's camera already frames seconds of motion; do not shrink it further.
    camera = replace(camera, distance_scale=(1.0, min(2.0, camera.distance_scale[1])))
    jobs = [seg for clip in clips for seg in segments(clip.joints, segment_frames)]
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
