"""Random virtual cameras around a subject, and mocap filmed by them (training and evaluation data)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from pipeline.camera import Camera, look_at
from pipeline.training.config import CameraConfig


@dataclass(frozen=True)
class CameraBatch:
    """B random cameras, one per training window (torch tensors).

    Attributes:
        rotation: (B, 3, 3) world-to-camera rotations.
        position: (B, 3) camera centres in world metres.
        focal: (B,) focal lengths in pixels.
        center: (B, 2) principal points in pixels.
        size: (B, 2) image (width, height) in pixels.
    """

    rotation: torch.Tensor
    position: torch.Tensor
    focal: torch.Tensor
    center: torch.Tensor
    size: torch.Tensor

    def to_camera(self, points: torch.Tensor) -> torch.Tensor:
        """World (B, T, J, 3) -> camera frame (B, T, J, 3), metres."""
        return torch.einsum("bij,btkj->btki", self.rotation, points - self.position[:, None, None])

    def project(self, points_cam: torch.Tensor) -> torch.Tensor:
        """Camera frame (B, T, J, 3) -> pixels (B, T, J, 2)."""
        uv = points_cam[..., :2] / points_cam[..., 2:3].clamp_min(1e-3)
        return uv * self.focal[:, None, None, None] + self.center[:, None, None]

    def camera(self, i: int) -> Camera:
        """The i-th camera as a numpy :class:`Camera`."""
        w, h = (int(v) for v in self.size[i].tolist())
        return Camera(self.rotation[i].double().numpy(), self.position[i].double().numpy(),
                      float(self.focal[i]), self.center[i].double().numpy(), w, h)


def _uniform(lo: float, hi: float, n: int, gen: torch.Generator) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=gen)


def sample_cameras(joints: torch.Tensor, config: CameraConfig, gen: torch.Generator) -> CameraBatch:
    """Random pinhole cameras that keep each window's subject fully in frame.

    The camera orbits the subject's pelvis (centre frame) at a random azimuth and elevation, is placed at a
    random multiple of the closest distance at which every joint of the window fits inside the image
    (minus a margin), and is then panned/tilted so the subject sits at a random place in the free space.

    Args:
        joints: (B, T, J, 3) world joint positions, metres, Y up.
        config: Ranges for azimuth, elevation, field of view, roll, image sizes and distance.
        gen: Random generator (CPU).

    Returns:
        A :class:`CameraBatch` of B cameras.
    """
    b = joints.shape[0]
    sizes = torch.tensor(config.sizes, dtype=torch.float32)
    size = sizes[torch.randint(len(sizes), (b,), generator=gen)]
    fov = torch.deg2rad(_uniform(*config.fov_deg, b, gen))
    focal = size.max(dim=1).values / 2.0 / torch.tan(fov / 2.0)
    azim = torch.deg2rad(_uniform(*config.azimuth_deg, b, gen))
    elev = torch.deg2rad(_uniform(*config.elevation_deg, b, gen))
    roll = torch.deg2rad(_uniform(-config.roll_deg, config.roll_deg, b, gen))
    target = joints[:, joints.shape[1] // 2, 0]
    direction = torch.stack([torch.cos(elev) * torch.sin(azim), torch.sin(elev), torch.cos(elev) * torch.cos(azim)], -1)
    rot = look_at(target + direction, target, roll)
    # Joints relative to the target in camera axes; the camera sits at distance D behind the target.
    q = torch.einsum("bij,btkj->btki", rot, joints - target[:, None, None]).flatten(1, 2)
    half = size / 2.0 * (1.0 - config.margin)
    need_x = focal[:, None] * q[..., 0].abs() / half[:, :1] - q[..., 2]
    need_y = focal[:, None] * q[..., 1].abs() / half[:, 1:] - q[..., 2]
    d_min = torch.maximum(need_x, need_y).max(dim=1).values.clamp_min(0.5)
    # Log-uniform: a person filling the frame is as likely as one a sixth of its height (wide shots).
    lo, hi = config.distance_scale
    dist = d_min * torch.exp(_uniform(math.log(lo), math.log(hi), b, gen))
    position = target + direction * dist[:, None]
    # Pan/tilt so the subject lands anywhere in the free part of the image, not always at its centre.
    # Work in angles: a pan about the camera's y axis shifts every horizontal angle atan(x/z) exactly.
    z = q[..., 2] + dist[:, None]
    ang_u, ang_v = torch.atan(q[..., 0] / z), torch.atan(q[..., 1] / z)
    lim_u, lim_v = torch.atan(half[:, 0] / focal), torch.atan(half[:, 1] / focal)
    lo_u, hi_u = -lim_u - ang_u.min(1).values, lim_u - ang_u.max(1).values
    lo_v, hi_v = -lim_v - ang_v.min(1).values, lim_v - ang_v.max(1).values
    pan = lo_u + (hi_u - lo_u).clamp_min(0) * torch.rand(b, generator=gen)
    tilt = -(lo_v + (hi_v - lo_v).clamp_min(0) * torch.rand(b, generator=gen))
    panned = _pan_tilt(pan, tilt) @ rot
    # The tilt acts on already-panned angles, so a corner can still slip out: keep those cameras centred.
    cam = torch.einsum("bij,btj->bti", panned, joints.flatten(1, 2) - position[:, None])
    uv = focal[:, None, None] * cam[..., :2] / cam[..., 2:].clamp_min(1e-3)
    inside = (uv.abs() <= half[:, None]).all(dim=2).all(dim=1) & config.off_centre
    rot = torch.where(inside[:, None, None], panned, rot)
    return CameraBatch(rot, position, focal, size / 2.0, size)


def _pan_tilt(pan: torch.Tensor, tilt: torch.Tensor) -> torch.Tensor:
    """(B, 3, 3) camera-frame rotations: pan about the camera y axis, then tilt about its x axis."""
    cp, sp, ct, st = torch.cos(pan), torch.sin(pan), torch.cos(tilt), torch.sin(tilt)
    zero, one = torch.zeros_like(cp), torch.ones_like(cp)
    ry = torch.stack([cp, zero, sp, zero, one, zero, -sp, zero, cp], -1).view(-1, 3, 3)
    rx = torch.stack([one, zero, zero, zero, ct, -st, zero, st, ct], -1).view(-1, 3, 3)
    return rx @ ry


@dataclass(frozen=True)
class Filmed:
    """A sequence seen by one camera.

    Attributes:
        keypoints: (T, J, 2) pixels.
        poses3d: (T, J, 3) camera-frame metres (absolute, not pelvis-relative).
        camera: The camera.
    """

    keypoints: np.ndarray
    poses3d: np.ndarray
    camera: Camera


def film(joints: np.ndarray | torch.Tensor, config: CameraConfig, gen: torch.Generator) -> Filmed:
    """Film a whole world-frame sequence (T, J, 3) metres with one random camera that keeps it in frame."""
    world = torch.as_tensor(joints, dtype=torch.float32)[None]
    cams = sample_cameras(world, config, gen)
    cam3d = cams.to_camera(world)
    return Filmed(cams.project(cam3d)[0].numpy(), cam3d[0].numpy(), cams.camera(0))
