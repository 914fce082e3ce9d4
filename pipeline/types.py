"""Typed containers the stages exchange. Shapes, units and frames are checked on construction.

Frames of reference:
* Image: pixels, origin top-left, x right, y down.
* Camera: metres, OpenCV axes (x right, y down, z forward), pelvis-relative for lifted poses.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.errors import ShapeError
from pipeline.skeleton import RIG_JOINTS, RIG_OF_H36M


def check_array(name: str, array: np.ndarray | None, shape: tuple, dtype=np.floating, finite: bool = False) -> None:
    """Raise ShapeError unless ``array`` matches ``shape`` (None = any size) and ``dtype`` (None passes)."""
    if array is None:
        return
    if not isinstance(array, np.ndarray) or array.ndim != len(shape) or any(
            s is not None and s != a for s, a in zip(shape, array.shape)):
        got = getattr(array, "shape", type(array).__name__)
        raise ShapeError(f"{name} must have shape {tuple('T' if s is None else s for s in shape)}, got {got}")
    if not np.issubdtype(array.dtype, dtype):
        raise ShapeError(f"{name} must be {dtype.__name__}, got {array.dtype}")
    if finite and not np.isfinite(array).all():
        raise ShapeError(f"{name} must be finite")


@dataclass(frozen=True)
class VideoInfo:
    """What a video file holds, as probed before decoding.

    Attributes:
        path: The file.
        width, height: Display size in pixels (after applying rotation metadata).
        fps: Average frame rate, Hz (frame times come from timestamps, not from this).
        num_frames: Frame count (exact when the container says so, else estimated from duration * fps).
        duration: Seconds.
        rotation: Clockwise display rotation in degrees from metadata (0, 90, 180, 270).
        has_audio: Whether an audio stream exists.
        codec: Video codec name.
    """

    path: Path
    width: int
    height: int
    fps: float
    num_frames: int
    duration: float
    rotation: int = 0
    has_audio: bool = False
    codec: str = ""

    def __post_init__(self) -> None:
        if self.width <= 0 or self.height <= 0 or not self.fps > 0:
            raise ShapeError(f"{self.path}: bad video size {self.width}x{self.height} or fps {self.fps}")


@dataclass(frozen=True)
class Frame:
    """One decoded frame.

    Attributes:
        index: 0-based frame number in decode order.
        time: Presentation time, seconds from the start.
        image: (H, W, 3) uint8 BGR (OpenCV order), display orientation.
    """

    index: int
    time: float
    image: np.ndarray

    def __post_init__(self) -> None:
        check_array("Frame.image", self.image, (None, None, 3), np.uint8)


@dataclass(frozen=True)
class Detections:
    """People found in one frame.

    Attributes:
        boxes: (N, 4) float pixels, x1 y1 x2 y2.
        scores: (N,) detection confidences in [0, 1].
        track_ids: (N,) int64 identities (-1 before tracking).
    """

    boxes: np.ndarray
    scores: np.ndarray
    track_ids: np.ndarray

    def __post_init__(self) -> None:
        check_array("Detections.boxes", self.boxes, (None, 4), finite=True)
        n = len(self.boxes)
        check_array("Detections.scores", self.scores, (n,))
        check_array("Detections.track_ids", self.track_ids, (n,), np.integer)

    def __len__(self) -> int:
        return len(self.boxes)

    @classmethod
    def empty(cls) -> "Detections":
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64))


@dataclass(frozen=True)
class SkeletonFit:
    """A person's fitted rig (:func:`pipeline.lifting.fit.fit_skeleton`).

    Attributes:
        offsets: (20, 3) float32 rest offsets of :data:`pipeline.skeleton.RIG_JOINTS`, metres, in the rig frame
            (y up, x to the person's left, z forward; :mod:`pipeline.lifting.rig`).
        rotations: (T, 20, 3, 3) float32 local rotations; entry 0 turns the rig frame into the camera frame.
        positions: (T, 20, 3) float32 forward kinematics, camera frame, metres (pelvis at the origin).
    """

    offsets: np.ndarray
    rotations: np.ndarray
    positions: np.ndarray

    def __post_init__(self) -> None:
        n = len(RIG_JOINTS)
        t = len(self.rotations)
        if self.offsets.shape != (n, 3) or self.rotations.shape != (t, n, 3, 3) or self.positions.shape != (t, n, 3):
            raise ShapeError(f"SkeletonFit: offsets {self.offsets.shape}, rotations {self.rotations.shape}, "
                             f"positions {self.positions.shape}")
        if not (np.isfinite(self.rotations).all() and np.isfinite(self.positions).all()):
            raise ShapeError("SkeletonFit: non-finite rotations or positions")

    @property
    def poses3d(self) -> np.ndarray:
        """(T, 17, 3) float32 the H36M-17 joints of the fit, camera frame, pelvis at the origin."""
        return self.positions[:, list(RIG_OF_H36M)]

    @property
    def bone_lengths(self) -> np.ndarray:
        """(17,) float32 the fitted H36M-17 bone lengths, metres (entry j: parent to j; 0 for the pelvis)."""
        # A bone through a zero-length helper (lower back, collar) is the offset of the helper's child.
        return np.linalg.norm(self.offsets[list(RIG_OF_H36M)], axis=-1).astype(np.float32)


@dataclass(frozen=True)
class Track:
    """One person over time.

    Attributes:
        track_id: Identity, stable over the clip.
        frames: (T,) int64 frame indices, strictly increasing; consecutive except where the person was away
            longer than the gap filling covers and was re-identified afterwards (see :mod:`pipeline.twod.tracks`).
        keypoints: (T, 17, 2) float32 COCO-17 pixels (NaN where the person was not seen).
        scores: (T, 17) float32 keypoint confidences in [0, 1] (0 where not seen).
        interpolated: (T,) bool, True for frames filled in across a short gap.
        poses3d: (T, 17, 3) float32 H36M-17 camera-frame metres, pelvis at the origin; None before lifting.
        root3d: (T, 3) float32 camera-frame metres of the pelvis (the trajectory, :mod:`pipeline.lifting.trajectory`);
            None unless the trajectory was estimated. ``poses3d + root3d[:, None]`` places the person.
        poses3d_raw: (T, 17, 3) float32 the lifter's own output when a skeleton was fitted (``poses3d`` is then
            the fitted skeleton's joints); None otherwise.
        skeleton: The person's fitted rig (:class:`SkeletonFit`: bones, rotations), or None.
        contacts: (T, 2) float32 probability that the right and the left foot are on the ground, or None.
    """

    track_id: int
    frames: np.ndarray
    keypoints: np.ndarray
    scores: np.ndarray
    interpolated: np.ndarray
    poses3d: np.ndarray | None = None
    root3d: np.ndarray | None = None
    poses3d_raw: np.ndarray | None = None
    skeleton: SkeletonFit | None = None
    contacts: np.ndarray | None = None

    def __post_init__(self) -> None:
        check_array("Track.frames", self.frames, (None,), np.integer)
        t = len(self.frames)
        if t == 0 or (t > 1 and not (np.diff(self.frames) > 0).all()):
            raise ShapeError(f"track {self.track_id}: frames must be non-empty and strictly increasing")
        check_array("Track.keypoints", self.keypoints, (t, 17, 2))
        check_array("Track.scores", self.scores, (t, 17))
        check_array("Track.interpolated", self.interpolated, (t,), np.bool_)
        check_array("Track.poses3d", self.poses3d, (t, 17, 3), finite=True)
        check_array("Track.root3d", self.root3d, (t, 3), finite=True)
        check_array("Track.poses3d_raw", self.poses3d_raw, (t, 17, 3), finite=True)
        check_array("Track.contacts", self.contacts, (t, 2), finite=True)
        if self.skeleton is not None and len(self.skeleton.rotations) != t:
            raise ShapeError(f"track {self.track_id}: skeleton has {len(self.skeleton.rotations)} frames, not {t}")

    def __len__(self) -> int:
        return len(self.frames)


@dataclass(frozen=True)
class Timeline:
    """When each decoded frame of a video is shown, and how many frames could not be decoded.

    Frame numbers everywhere in pose3d (``Frame.index``, ``Track.frames``) count the frames ffmpeg decoded,
    in display order; this maps them to presentation times, which is what variable-frame-rate video and
    frames lost to corruption need.

    Attributes:
        times: (N,) float64 presentation time of decoded frame i, seconds from the start; non-decreasing.
        skipped: Frames of the stream that could not be decoded (they have no number and no time here).
    """

    times: np.ndarray
    skipped: int = 0

    def __post_init__(self) -> None:
        check_array("Timeline.times", self.times, (None,), finite=True)
        if len(self.times) > 1 and (np.diff(self.times) < 0).any():
            raise ShapeError("Timeline.times must be non-decreasing")
        if self.skipped < 0:
            raise ShapeError(f"Timeline.skipped must be >= 0, got {self.skipped}")

    @classmethod
    def uniform(cls, num_frames: int, fps: float) -> "Timeline":
        """Evenly spaced frames at ``fps`` (for data that carries no timestamps)."""
        return cls(np.arange(num_frames, dtype=np.float64) / fps)

    def at(self, frames: np.ndarray) -> np.ndarray:
        """(T,) float64 seconds of the frame numbers ``frames`` (T,)."""
        if len(frames) and (frames.min() < 0 or frames.max() >= len(self.times)):
            raise ShapeError(f"frame numbers {frames.min()}..{frames.max()} outside this timeline of "
                             f"{len(self.times)} frames")
        return self.times[frames]
