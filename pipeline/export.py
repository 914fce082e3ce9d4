"""Stage 6 (data side): read and write keypoint / pose files that other tools consume.

``pose3d lift`` input (``.npz``):
    keypoints (T, J, 2) float pixels (NaN where missing); scores (T, J) optional; width, height (pixels);
    fps (Hz); format ('h36m17' or 'coco17').

``pose3d lift`` output (``.npz``):
    poses3d (T, 17, 3) float32 metres, camera frame (x right, y down, z forward), pelvis at the origin;
    joint_names (17,) str (H36M-17 order); fps; keypoints2d (T, 17, 2) the H36M-17 pixel input used.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.errors import InputError, ShapeError
from pipeline.skeleton import H36M17, get_skeleton


@dataclass(frozen=True)
class KeypointTrack:
    """One person's 2D track as read from a file.

    Attributes:
        keypoints: (T, J, 2) pixels, NaN where missing.
        scores: (T, J) confidences, or None.
        width, height: Image size, pixels.
        fps: Frame rate, Hz.
        format: Skeleton name of ``keypoints`` ('h36m17' or 'coco17').
    """

    keypoints: np.ndarray
    scores: np.ndarray | None
    width: int
    height: int
    fps: float
    format: str

    def __post_init__(self) -> None:
        j = get_skeleton(self.format).num_joints
        if self.keypoints.ndim != 3 or self.keypoints.shape[1:] != (j, 2) or len(self.keypoints) == 0:
            raise ShapeError(f"keypoints must be (T>0, {j}, 2) for {self.format}, got {self.keypoints.shape}")
        if self.scores is not None and self.scores.shape != self.keypoints.shape[:2]:
            raise ShapeError(f"scores must be {self.keypoints.shape[:2]}, got {self.scores.shape}")
        if self.width <= 0 or self.height <= 0 or not self.fps > 0:
            raise ShapeError(f"width, height and fps must be positive (got {self.width}, {self.height}, {self.fps})")


def load_keypoints_npz(path: str | Path, fps: float | None = None) -> KeypointTrack:
    """Read a ``pose3d lift`` input file (see the module docstring); ``fps`` overrides the file's."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = [k for k in ("keypoints", "width", "height") if k not in data]
            if missing:
                raise InputError(f"{path}: missing array(s) {missing}; expected keypoints, width, height, fps, format")
            if fps is None and "fps" not in data:
                raise InputError(f"{path}: no 'fps' array; add it or pass --fps")
            return KeypointTrack(
                keypoints=np.asarray(data["keypoints"], dtype=np.float32),
                scores=np.asarray(data["scores"], dtype=np.float32) if "scores" in data else None,
                width=int(data["width"]), height=int(data["height"]),
                fps=float(fps if fps is not None else data["fps"]),
                format=str(data["format"]) if "format" in data else "h36m17",
            )
    except FileNotFoundError:
        raise InputError(f"keypoints file not found: {path}") from None
    except (OSError, ValueError) as exc:
        if isinstance(exc, ShapeError):
            raise InputError(f"{path}: {exc}") from None
        raise InputError(f"{path}: not a readable .npz file ({exc})") from None


def atomic_save_npz(path: str | Path, **arrays: np.ndarray) -> Path:
    """Write an ``.npz`` through a temporary file so a crash never leaves a half-written output."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.npz")
    np.savez_compressed(tmp, **arrays)
    os.replace(tmp, path)
    return path


def save_poses_npz(path: str | Path, poses3d: np.ndarray, fps: float, keypoints2d: np.ndarray) -> Path:
    """Write a ``pose3d lift`` output file (see the module docstring)."""
    if poses3d.ndim != 3 or poses3d.shape[1:] != (17, 3):
        raise ShapeError(f"poses3d must be (T, 17, 3), got {poses3d.shape}")
    return atomic_save_npz(path, poses3d=poses3d.astype(np.float32), joint_names=np.array(H36M17.joints),
                           fps=np.float64(fps), keypoints2d=keypoints2d.astype(np.float32))
