"""Joint angles for sports analysis, computed from H36M-17 3D poses.

Conventions follow the ISB recommendations (Wu et al. 2002 for hip and trunk, Wu et al. 2005 for shoulder and
elbow) as far as 17 joint centres allow: a joint centre gives a segment's long axis, not its rotation about it,
so axial rotations (hip and shoulder internal/external rotation, forearm pronation) are not reported, and the
segment frames below stand in for the bony-landmark frames of the ISB.

Segment frames (built per frame; axes as in the ISB: X anterior, Y superior, Z to the person's right):

* pelvis: Z_p = unit(r_hip - l_hip); Y_p = pelvis -> spine, made orthogonal to Z_p; X_p = Y_p x Z_p.
* thorax: Y_t = unit(thorax - spine) (the ISB's primary thorax axis); Z_t = l_shoulder -> r_shoulder, made
  orthogonal to Y_t; X_t = Y_t x Z_t.
* heading: r_h = r_hip - l_hip projected onto the plane perpendicular to ``up`` and normalised (the person's
  horizontal right); f_h = up x r_h (horizontal forward).

Angles, degrees (``lat`` is the lateral component: +Z for right-side joints, -Z for left-side ones):

================================  ==============================================================================
name                              definition (sign; zero position)
================================  ==============================================================================
l/r_knee_flexion                  180 minus the angle at the knee between knee->hip and knee->ankle, i.e. the
                                  angle between hip->knee and knee->ankle, in [0, 180] (positive bent; 0 straight;
                                  hyperextension cannot be told from flexion and also reads positive)
l/r_elbow_flexion                 the same with shoulder->elbow and elbow->wrist (0 with the arm straight)
l/r_hip_flexion                   d = unit(hip->knee) in the pelvis frame; atan2(d_x, -d_y): the thigh's angle in
                                  the pelvis's sagittal plane from -Y_p, in (-180, 180] (positive knee anterior;
                                  0 thigh along -Y_p). The first angle of the ISB hip Z-X-Y joint coordinate system.
l/r_hip_abduction                 atan2(lat, hypot(d_x, d_y)) = asin(lat): the thigh's angle out of the pelvis's
                                  sagittal plane, in [-90, 90] (positive away from the midline on both sides,
                                  i.e. the ISB's adduction angle negated on the right, mirrored on the left; 0 in
                                  the sagittal plane)
l/r_shoulder_flexion              d = unit(shoulder->elbow) in the thorax frame; elevation e = atan2(hypot(d_x,
                                  d_z), -d_y) in [0, 180]; plane of elevation p = atan2(d_x, lat); flexion =
                                  e * sin(p) (positive arm forward; 0 arm along -Y_t or raised purely sideways)
l/r_shoulder_abduction            e * cos(p) (positive arm away from the body, negative across it; 0 arm along -Y_t
                                  or raised purely forward). hypot(flexion, abduction) = e and atan2(flexion,
                                  abduction) = p, the ISB's humerothoracic elevation and plane of elevation.
trunk_lean_forward                v = unit(thorax - pelvis); atan2(v . f_h, v . up): the trunk's angle in the
                                  vertical plane across the hip line, in (-180, 180] (positive forward; 0 upright)
trunk_lean_sideways               atan2(v . r_h, hypot(v . f_h, v . up)) = asin(v . r_h) in [-90, 90] (positive
                                  towards the person's right; 0 upright)
pelvis_rotation                   angle about ``up`` from r_h of the first frame where it is defined to r_h,
                                  unwrapped over time so it can exceed 180 (positive counter-clockwise seen from
                                  above, i.e. the person turning to their left; 0 in that first frame)
================================  ==============================================================================

The shoulder is not the ISB's Y-X-Y humerothoracic sequence: its third angle (axial rotation) needs the humerus's
orientation about its long axis, which the elbow-wrist line gives only when the elbow is bent, and its plane of
elevation is undefined with the arm at the side, where it jumps. Reporting the elevation as forward and sideways
components keeps flexion and abduction continuous there and well beyond 90 degrees (overhead throwing, serving);
they are singular only with the arm straight along +Y_t (NaN exactly there). The hip keeps the ISB sequence,
whose gimbal lock (abduction 90) is out of the hip's normal range.

Velocities are the time derivative of each angle over the given (possibly non-uniform) times, by np.gradient's
scheme on the shortest way round the circle between frames. Frames with a zero-length segment or NaN joints give
NaN angles; a velocity next to such a frame uses the one-sided difference, and is NaN only where the angle is NaN
or has no defined neighbour.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from typing import IO, Sequence

import numpy as np

from pipeline.errors import OutputError, ShapeError
from pipeline.skeleton import H36M17
from pipeline.types import check_array

ANGLE_NAMES: tuple[str, ...] = (
    "l_knee_flexion", "r_knee_flexion", "l_hip_flexion", "r_hip_flexion", "l_hip_abduction", "r_hip_abduction",
    "l_elbow_flexion", "r_elbow_flexion", "l_shoulder_flexion", "r_shoulder_flexion", "l_shoulder_abduction",
    "r_shoulder_abduction", "trunk_lean_forward", "trunk_lean_sideways", "pelvis_rotation",
)

_J = {name: i for i, name in enumerate(H36M17.joints)}
_EPS = 1e-9  # metres (or unit-vector length): shorter vectors have no direction
_SIDES = {"l": -1.0, "r": 1.0}  # sign of the pelvis/thorax Z axis (person's right) that points laterally


@dataclass(frozen=True)
class JointAngles:
    """Joint angles of one person over time.

    Attributes:
        names: (K,) angle names, the columns of ``degrees`` and ``velocities``.
        degrees: (T, K) float64 angles, degrees; NaN where undefined.
        velocities: (T, K) float64 angular velocities, degrees per second; NaN where undefined.
        times: (T,) float64 seconds of each row.
    """

    names: tuple[str, ...]
    degrees: np.ndarray
    velocities: np.ndarray
    times: np.ndarray

    def __post_init__(self) -> None:
        if not isinstance(self.names, tuple) or not all(isinstance(n, str) for n in self.names):
            raise ShapeError(f"JointAngles.names must be a tuple of str, got {self.names!r}")
        check_array("JointAngles.times", self.times, (None,))
        t, k = len(self.times), len(self.names)
        check_array("JointAngles.degrees", self.degrees, (t, k))
        check_array("JointAngles.velocities", self.velocities, (t, k))

    def __len__(self) -> int:
        return len(self.times)


def joint_angles(poses: np.ndarray, up: np.ndarray, times: np.ndarray) -> JointAngles:
    """Compute the :data:`ANGLE_NAMES` angles and their velocities (definitions in the module docstring).

    Args:
        poses: (T, 17, 3) float H36M-17 joint positions, metres, in any right-handed frame; NaN where unknown.
        up: (3,) the direction opposite to gravity in that frame (normalised here). In the camera frame
            (y down) pass an estimate, e.g. ``estimate_world(tracks).rotation[1]`` or (0, -1, 0) for a level
            camera.
        times: (T,) float seconds of each pose, non-decreasing (variable frame rates are fine).

    Returns:
        JointAngles with names ANGLE_NAMES, degrees and velocities (T, 15) float64 and times (T,) float64.

    Raises:
        ShapeError: on wrong shapes or dtypes, infinite values, a zero or non-finite ``up`` or decreasing times.
    """
    poses, up, times = _validated(poses, up, times)
    columns = {**_hinges(poses), **_hips(poses), **_shoulders(poses), **_trunk(poses, up)}
    columns["pelvis_rotation"] = _pelvis_rotation(poses, up)
    degrees = np.stack([columns[n] for n in ANGLE_NAMES], axis=-1)
    return JointAngles(ANGLE_NAMES, degrees, _velocities(degrees, times), times)


def write_angles_csv(path_or_file: str | os.PathLike | IO[str],
                     angles_by_track: Sequence[tuple[int, np.ndarray, JointAngles]]) -> None:
    """Write joint angles as CSV: one row per track and frame.

    Columns: ``track_id, frame, time`` (seconds, 6 decimals), each angle in degrees, then each angle's velocity
    (its name + ``_velocity``) in degrees per second, 3 decimals; empty cells where a value is NaN.

    Args:
        path_or_file: A path (created or overwritten) or an open text file (opened with ``newline=""``).
        angles_by_track: (track_id, frames (T,) int frame numbers, JointAngles with T rows) per track; every
            track must have the same angle names.

    Raises:
        ShapeError: frame numbers that do not match their angles, or tracks with different angle names.
        OutputError: the file cannot be written.
    """
    names = angles_by_track[0][2].names if len(angles_by_track) else ANGLE_NAMES
    for track_id, frames, angles in angles_by_track:
        check_array(f"track {track_id} frames", np.asarray(frames), (len(angles),), np.integer)
        if angles.names != names:
            raise ShapeError(f"track {track_id}: angle names differ from the first track's")
    if hasattr(path_or_file, "write"):
        _write_rows(path_or_file, names, angles_by_track)
        return
    try:
        with open(path_or_file, "w", newline="") as f:
            _write_rows(f, names, angles_by_track)
    except OSError as e:
        raise OutputError(f"cannot write joint angles to {os.fspath(path_or_file)}: {e}") from e


def _write_rows(f: IO[str], names: tuple[str, ...], angles_by_track) -> None:
    out = csv.writer(f)
    out.writerow(["track_id", "frame", "time", *names, *(f"{n}_velocity" for n in names)])
    for track_id, frames, angles in angles_by_track:
        values = np.concatenate([angles.degrees, angles.velocities], axis=1)
        for frame, time, row in zip(np.asarray(frames).tolist(), angles.times.tolist(), values.tolist()):
            out.writerow([track_id, frame, f"{time:.6f}", *(_cell(v) for v in row)])


def _cell(value: float) -> str:
    # round() first so that tiny negatives print as 0.000, not -0.000
    return f"{round(value, 3) + 0.0:.3f}" if np.isfinite(value) else ""


def _validated(poses, up, times) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Check the inputs of :func:`joint_angles`; return them as float64, ``up`` normalised."""
    poses, up, times = np.asarray(poses), np.asarray(up), np.asarray(times)
    check_array("poses", poses, (None, H36M17.num_joints, 3), np.number)
    check_array("up", up, (3,), np.number)
    check_array("times", times, (len(poses),), np.number)
    poses, up, times = poses.astype(np.float64), up.astype(np.float64), times.astype(np.float64)
    if np.isinf(poses).any():
        raise ShapeError("poses must be finite or NaN (unknown), not infinite")
    if not np.isfinite(up).all() or np.linalg.norm(up) < _EPS:
        raise ShapeError(f"up must be a finite non-zero vector, got {up}")
    if not np.isfinite(times).all() or (np.diff(times) < 0).any():
        raise ShapeError("times must be finite and non-decreasing")
    return poses, up / np.linalg.norm(up), times


def _joint(poses: np.ndarray, name: str) -> np.ndarray:
    return poses[:, _J[name]]


def _unit(v: np.ndarray) -> np.ndarray:
    """(..., 3) vectors scaled to length 1; NaN where shorter than _EPS or NaN (no warnings)."""
    n = np.linalg.norm(v, axis=-1, keepdims=True)
    ok = n > _EPS
    return np.where(ok, v / np.where(ok, n, 1.0), np.nan)


def _orthogonal(v: np.ndarray, axis: np.ndarray) -> np.ndarray:
    """(..., 3) the part of ``v`` perpendicular to the unit vectors ``axis`` (..., 3)."""
    return v - np.sum(v * axis, axis=-1, keepdims=True) * axis


def _frame(y: np.ndarray, z: np.ndarray) -> np.ndarray:
    """(T, 3, 3) rows X = Y x Z (anterior), Y, Z from perpendicular unit axes y, z (T, 3)."""
    return np.stack([np.cross(y, z), y, z], axis=1)


def _pelvis_frame(poses: np.ndarray) -> np.ndarray:
    """(T, 3, 3) pelvis axes (rows X anterior, Y superior, Z right); Z is primary, as in the ISB."""
    z = _unit(_joint(poses, "r_hip") - _joint(poses, "l_hip"))
    y = _unit(_orthogonal(_joint(poses, "spine") - _joint(poses, "pelvis"), z))
    return _frame(y, z)


def _thorax_frame(poses: np.ndarray) -> np.ndarray:
    """(T, 3, 3) thorax axes (rows X anterior, Y superior, Z right); Y is primary, as in the ISB."""
    y = _unit(_joint(poses, "thorax") - _joint(poses, "spine"))
    z = _unit(_orthogonal(_joint(poses, "r_shoulder") - _joint(poses, "l_shoulder"), y))
    return _frame(y, z)


def _segment_in(frame: np.ndarray, poses: np.ndarray, start: str, end: str) -> np.ndarray:
    """(T, 3) unit direction start -> end in the rows' coordinates of ``frame`` (T, 3, 3)."""
    return np.einsum("tij,tj->ti", frame, _unit(_joint(poses, end) - _joint(poses, start)))


def _included(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(T,) degrees between the (T, 3) vectors a and b; atan2 stays accurate near 0 and 180, unlike arccos."""
    a, b = _unit(a), _unit(b)
    return np.degrees(np.arctan2(np.linalg.norm(np.cross(a, b), axis=-1), np.sum(a * b, axis=-1)))


def _hinges(poses: np.ndarray) -> dict[str, np.ndarray]:
    """Knee and elbow flexion: the angle between the proximal and the distal segment."""
    chains = {"knee": ("hip", "knee", "ankle"), "elbow": ("shoulder", "elbow", "wrist")}
    out = {}
    for joint, (a, b, c) in chains.items():
        for s in _SIDES:
            pa, pb, pc = (_joint(poses, f"{s}_{n}") for n in (a, b, c))
            out[f"{s}_{joint}_flexion"] = _included(pb - pa, pc - pb)
    return out


def _hips(poses: np.ndarray) -> dict[str, np.ndarray]:
    """Hip flexion and abduction of the thigh in the pelvis frame (ISB Z-X sequence, first two angles)."""
    frame, out = _pelvis_frame(poses), {}
    for s, lateral in _SIDES.items():
        d = _segment_in(frame, poses, f"{s}_hip", f"{s}_knee")
        out[f"{s}_hip_flexion"] = np.degrees(np.arctan2(d[:, 0], -d[:, 1]))
        out[f"{s}_hip_abduction"] = np.degrees(np.arctan2(lateral * d[:, 2], np.hypot(d[:, 0], d[:, 1])))
    return out


def _shoulders(poses: np.ndarray) -> dict[str, np.ndarray]:
    """Shoulder flexion and abduction: the upper arm's elevation split into forward and sideways parts."""
    frame, out = _thorax_frame(poses), {}
    for s, lateral in _SIDES.items():
        d = _segment_in(frame, poses, f"{s}_shoulder", f"{s}_elbow")
        forward, side = d[:, 0], lateral * d[:, 2]
        horizontal = np.hypot(forward, side)
        elevation = np.degrees(np.arctan2(horizontal, -d[:, 1]))
        split = horizontal > 1e-12
        # No horizontal part: 0 with the arm hanging down, undefined with it straight up.
        rest = np.where(d[:, 1] < 0, 0.0, np.nan)
        safe = np.where(split, horizontal, 1.0)
        out[f"{s}_shoulder_flexion"] = np.where(split, elevation * forward / safe, rest)
        out[f"{s}_shoulder_abduction"] = np.where(split, elevation * side / safe, rest)
    return out


def _heading_right(poses: np.ndarray, up: np.ndarray) -> np.ndarray:
    """(T, 3) the hip line (left -> right) levelled onto the plane perpendicular to ``up``, unit length."""
    return _unit(_orthogonal(_joint(poses, "r_hip") - _joint(poses, "l_hip"), up))


def _trunk(poses: np.ndarray, up: np.ndarray) -> dict[str, np.ndarray]:
    """Trunk lean against gravity: forward in the vertical plane across the hips, then sideways out of it."""
    right = _heading_right(poses, up)
    forward = np.cross(up, right)
    v = _unit(_joint(poses, "thorax") - _joint(poses, "pelvis"))
    vf, vu, vr = np.sum(v * forward, -1), v @ up, np.sum(v * right, -1)
    return {"trunk_lean_forward": np.degrees(np.arctan2(vf, vu)),
            "trunk_lean_sideways": np.degrees(np.arctan2(vr, np.hypot(vf, vu)))}


def _pelvis_rotation(poses: np.ndarray, up: np.ndarray) -> np.ndarray:
    """(T,) degrees the levelled hip line turned about ``up`` since its first defined frame, unwrapped."""
    right = _heading_right(poses, up)
    defined = np.flatnonzero(np.isfinite(right).all(axis=1))
    out = np.full(len(poses), np.nan)
    if len(defined) == 0:
        return out
    first = right[defined[0]]
    turned = np.degrees(np.arctan2(np.cross(first, right) @ up, right @ first))
    # Across a gap the nearest branch is taken: turns of more than 180 degrees while unseen cannot be told.
    out[defined] = np.unwrap(turned[defined], period=360.0)
    return out


def _velocities(degrees: np.ndarray, times: np.ndarray) -> np.ndarray:
    """(T, K) degrees per second of ``degrees`` (T, K) over ``times`` (T,), NaN-aware.

    Where both neighbours are defined this is np.gradient's second-order non-uniform central difference, written
    as the spacing-weighted mean of the backward and forward slopes; otherwise the one defined slope. Steps take
    the shortest way round the circle, so a wrap from 179 to -179 degrees is a step of 2.
    """
    if len(times) < 2:
        return np.where(np.isfinite(degrees), 0.0, np.nan)
    dt = np.diff(times)[:, None]
    step = np.diff(degrees, axis=0)
    step = step - 360.0 * np.round(step / 360.0)
    slope = np.where(dt > 0, step / np.where(dt > 0, dt, 1.0), np.nan)  # repeated times give no slope
    gap = np.full((1, degrees.shape[1]), np.nan)
    back, ahead = np.vstack([gap, slope]), np.vstack([slope, gap])  # slopes into and out of each frame
    h_back, h_ahead = np.vstack([[[np.nan]], dt]), np.vstack([dt, [[np.nan]]])
    both = np.isfinite(back) & np.isfinite(ahead)
    total = np.where(both, h_back + h_ahead, 1.0)
    central = (h_ahead * back + h_back * ahead) / total
    return np.where(both, central, np.where(np.isfinite(back), back, ahead))
