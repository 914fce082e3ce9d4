"""A gravity-aligned world frame for a clip, estimated from its lifted, placed people.

The lifter and the trajectory model work in the camera frame (x right, y down, z forward). Other tools want
people on a level floor. A video carries no camera extrinsics, so the world frame is estimated from the
people themselves: "up" is the median direction from the ankles to the head over every frame (people stand
and walk upright far more than they lie), and the floor is where the lowest ankles are.

World axes: y up (opposite gravity), x the camera's right levelled onto the floor, z = x cross y, which
points from the scene back towards the camera; metres. The floor is y = 0 and the origin lies on it below
the people's mean pelvis position. The frame is an estimate: a camera that is not level is compensated
only as well as the poses reveal the vertical.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from pipeline.errors import ShapeError
from pipeline.skeleton import H36M17
from pipeline.types import Track

_HEAD, _ANKLES = H36M17.index("head"), [H36M17.index("l_ankle"), H36M17.index("r_ankle")]
ANKLE_HEIGHT_M = 0.08  # ankle joint centre above the sole (the mocap readers' value)


@dataclass(frozen=True)
class WorldFrame:
    """Camera-to-world transform: ``world = points @ rotation.T + offset``.

    Attributes:
        rotation: (3, 3) rows are the world x, y (up), z axes in camera coordinates.
        offset: (3,) metres.
    """

    rotation: np.ndarray
    offset: np.ndarray

    def __post_init__(self) -> None:
        r = np.asarray(self.rotation)
        if r.shape != (3, 3) or not np.allclose(r @ r.T, np.eye(3), atol=1e-6) or np.linalg.det(r) < 0:
            raise ShapeError(f"WorldFrame.rotation must be a (3, 3) rotation, got shape {r.shape}")
        if np.shape(self.offset) != (3,):
            raise ShapeError(f"WorldFrame.offset must be (3,), got {np.shape(self.offset)}")

    def apply(self, points: np.ndarray) -> np.ndarray:
        """Camera-frame (..., 3) metres -> world (..., 3) metres (float32)."""
        return (np.asarray(points, np.float64) @ self.rotation.T + self.offset).astype(np.float32)


def placed_poses(track: Track) -> np.ndarray:
    """(T, 17, 3) camera-frame joints of a track with both ``poses3d`` and ``root3d``."""
    if track.poses3d is None or track.root3d is None:
        raise ShapeError(f"track {track.track_id}: needs poses3d and root3d to be placed")
    return track.poses3d + track.root3d[:, None]


def estimate_up(poses: np.ndarray) -> np.ndarray:
    """(3,) unit "up" in the poses' frame: the median direction from the ankles to the head.

    Args:
        poses: (N, 17, 3) H36M-17 joints of any number of frames (pelvis-relative or placed).
    """
    body = poses[:, _HEAD] - poses[:, _ANKLES].mean(axis=1)
    up = np.median(body / np.linalg.norm(body, axis=-1, keepdims=True).clip(1e-9), axis=0)
    return up / max(np.linalg.norm(up), 1e-9)


def level_rotation(up: np.ndarray) -> np.ndarray:
    """(3, 3) rotation whose rows are x (the camera's right, levelled), ``up`` and z = x cross up."""
    x = np.array([1.0, 0.0, 0.0]) - up[0] * up                               # camera right, levelled
    x = x / np.linalg.norm(x) if np.linalg.norm(x) > 1e-6 else np.cross(up, [0.0, 0.0, 1.0])
    return np.stack([x, up, np.cross(x, up)])


def estimate_world(tracks: Sequence[Track]) -> WorldFrame | None:
    """The clip's world frame from every placed person (see the module docstring).

    Args:
        tracks: Tracks; only those with ``poses3d`` and ``root3d`` are used.

    Returns:
        A :class:`WorldFrame`, or None when no track is placed.
    """
    placed = [placed_poses(t) for t in tracks if t.poses3d is not None and t.root3d is not None]
    if not placed:
        return None
    joints = np.concatenate(placed).astype(np.float64)                     # (N, 17, 3)
    rotation = level_rotation(estimate_up(joints))
    level = joints @ rotation.T
    floor = np.percentile(level[:, _ANKLES, 1], 2) - ANKLE_HEIGHT_M
    centre = level[:, 0].mean(axis=0)
    return WorldFrame(rotation, np.array([-centre[0], -floor, -centre[2]]))
