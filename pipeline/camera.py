"""The pinhole camera: projection, look-at rotations and screen normalisation (random virtual cameras for
training are in :mod:`pipeline.training.cameras`).

Frames and units:

* World: metres, Y up (the mocap readers' frame).
* Camera: OpenCV axes -- x right, y down, z forward -- metres.
* Image: pixels, origin at the top-left corner, u right, v down.
* Normalised screen (VideoPose3D): ``u / w * 2 - 1`` and ``v / w * 2 - h / w``, so x spans [-1, 1] and y
  spans [-h/w, h/w] (the aspect ratio is kept).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from pipeline.errors import ShapeError


def normalize_screen(xy: np.ndarray | torch.Tensor, width, height):
    """Pixels to VideoPose3D normalised screen coordinates.

    Args:
        xy: (..., 2) pixel coordinates.
        width, height: Image size in pixels (scalars, or arrays broadcastable to ``xy[..., 0]``).

    Returns:
        (..., 2) normalised coordinates, same type as ``xy``.
    """
    scale = 2.0 / width
    x = xy[..., 0] * scale - 1.0
    y = xy[..., 1] * scale - height / width
    stack = torch.stack if isinstance(xy, torch.Tensor) else np.stack
    return stack([x, y], -1)


def unnormalize_screen(xy: np.ndarray | torch.Tensor, width, height):
    """Inverse of :func:`normalize_screen`. Returns (..., 2) pixels."""
    x = (xy[..., 0] + 1.0) * width / 2.0
    y = (xy[..., 1] + height / width) * width / 2.0
    stack = torch.stack if isinstance(xy, torch.Tensor) else np.stack
    return stack([x, y], -1)


@dataclass(frozen=True)
class Camera:
    """One pinhole camera without lens distortion.

    Attributes:
        rotation: (3, 3) world-to-camera rotation (rows are the camera axes in world coordinates).
        position: (3,) camera centre in world coordinates, metres.
        focal: Focal length in pixels (square pixels).
        center: (2,) principal point in pixels.
        width, height: Image size in pixels.
    """

    rotation: np.ndarray
    position: np.ndarray
    focal: float
    center: np.ndarray
    width: int
    height: int

    def __post_init__(self) -> None:
        r = np.asarray(self.rotation, dtype=np.float64)
        if r.shape != (3, 3) or not np.allclose(r @ r.T, np.eye(3), atol=1e-5) or np.linalg.det(r) < 0:
            raise ShapeError(f"Camera.rotation must be a (3,3) rotation matrix, got shape {r.shape}")
        if np.shape(self.position) != (3,) or np.shape(self.center) != (2,):
            raise ShapeError("Camera.position must be (3,) and Camera.center (2,)")
        if self.focal <= 0 or self.width <= 0 or self.height <= 0:
            raise ShapeError("Camera focal, width and height must be positive")

    def world_to_camera(self, points: np.ndarray) -> np.ndarray:
        """World (..., 3) metres -> camera frame (..., 3) metres."""
        return (np.asarray(points) - self.position) @ np.asarray(self.rotation).T

    def camera_to_world(self, points: np.ndarray) -> np.ndarray:
        """Camera frame (..., 3) metres -> world (..., 3) metres."""
        return np.asarray(points) @ np.asarray(self.rotation) + self.position

    def project(self, points_cam: np.ndarray) -> np.ndarray:
        """Camera frame (..., 3) metres -> pixels (..., 2)."""
        p = np.asarray(points_cam)
        return p[..., :2] / p[..., 2:3] * self.focal + np.asarray(self.center)


def look_at(position: torch.Tensor, target: torch.Tensor, roll: torch.Tensor) -> torch.Tensor:
    """World-to-camera rotations for cameras at ``position`` looking at ``target`` (Y-up world).

    Args:
        position: (B, 3) camera centres, metres.
        target: (B, 3) points to look at, metres.
        roll: (B,) roll about the viewing axis, radians.

    Returns:
        (B, 3, 3) rotations whose rows are the camera x (right), y (down), z (forward) axes.
    """
    z = torch.nn.functional.normalize(target - position, dim=-1)
    down = torch.tensor([0.0, -1.0, 0.0], dtype=z.dtype, device=z.device).expand_as(z)
    x = torch.nn.functional.normalize(torch.cross(down, z, dim=-1), dim=-1)
    y = torch.cross(z, x, dim=-1)
    rot = torch.stack([x, y, z], dim=1)
    c, s = torch.cos(roll), torch.sin(roll)
    zero, one = torch.zeros_like(c), torch.ones_like(c)
    rz = torch.stack([c, -s, zero, s, c, zero, zero, zero, one], -1).view(-1, 3, 3)
    return rz @ rot


def default_focal(width: int, height: int, fov_deg: float = 55.0) -> float:
    """Focal length in pixels for a field of view across the image's longer side."""
    return max(width, height) / 2.0 / math.tan(math.radians(fov_deg) / 2.0)


