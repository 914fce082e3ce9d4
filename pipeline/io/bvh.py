"""BVH motion export of a fitted skeleton (:class:`pipeline.types.SkeletonFit`), and a small BVH reader.

One file per person; the caller names it ``<stem>_track<ID>.bvh``. The file is plain BVH text:

- HIERARCHY: the rig of :mod:`pipeline.lifting.rig`, joints named exactly :data:`pipeline.skeleton.RIG_JOINTS`
  (``pelvis`` is the ROOT), written depth-first. OFFSETs are the person's fitted rest offsets in metres
  (a life-size person at Blender's default import scale 1.0). The rest pose is the rig's T-pose: standing
  straight, legs down, arms out to the sides, facing +z. The root's OFFSET is 0 0 0: its position channels
  carry its whole position. The zero-length helper joints ``lower_back``, ``l_collar`` and ``r_collar`` have a
  zero OFFSET. The leaves (ankles, head, wrists) keep their three rotation channels (always 0 for a fit) so
  that they are real named joints, and end in an ``End Site`` (see :data:`END_SITE_FRACTION`).
- Channels: the root ``Xposition Yposition Zposition Zrotation Xrotation Yrotation``, every other joint
  ``Zrotation Xrotation Yrotation``. As BVH composes channels left to right, a joint's local rotation is
  ``Rz(z) @ Rx(x) @ Ry(y)``; angles in degrees, continuous over time (no 360-degree jumps).
- Axes (right-handed, metres): y up, x the person's left in the rest pose, z the rest pose's facing.
  Without a world estimate the camera frame (x right, y down, z forward) is turned by ``diag(1, -1, -1)``
  (y up, z towards the camera) and the pelvis stays at one spot, its height the rest pose's ankle depth plus
  the ankle's height above the sole, so the feet are near y = 0. With a world estimate
  (:class:`pipeline.lifting.world.WorldFrame`; floor y = 0) the body is turned into the world frame, and with
  the pelvis trajectory (``root3d``) the pelvis moves over the floor too.
- MOTION: one line per frame of the fit, ``Frame Time`` seconds apart (the caller resamples variable-rate
  input); positions with 6 decimals, angles with 4.

:func:`read_bvh` and :func:`bvh_positions` read any BVH file back (any channel order) and run its forward
kinematics, for the tests and for checking exports.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import numpy as np
from scipy.spatial.transform import Rotation, Slerp

from pipeline.errors import InputError, OutputError, ShapeError
from pipeline.lifting.world import ANKLE_HEIGHT_M, WorldFrame
from pipeline.skeleton import RIG_JOINTS, RIG_PARENTS
from pipeline.types import SkeletonFit

ROOT_CHANNELS = ("Xposition", "Yposition", "Zposition", "Zrotation", "Xrotation", "Yrotation")
JOINT_CHANNELS = ("Zrotation", "Xrotation", "Yrotation")
# Camera frame (x right, y down, z forward) -> BVH frame without a world estimate (y up, z towards the camera).
CAMERA_TO_BVH = np.diag([1.0, -1.0, -1.0])
# A leaf's End Site continues its bone's rest direction for this fraction of the bone: importers draw the
# leaf joint as a short bone instead of a zero-length one.
END_SITE_FRACTION = 0.1
_EULER = "ZXY"  # scipy's intrinsic order for R = Rz @ Rx @ Ry, the order of the channels above


def bvh_motion(fit: SkeletonFit, world: WorldFrame | None,
               root3d: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """The BVH channel values of a fit: root positions and every joint's local Euler angles.

    Args:
        fit: The person's fitted rig, T frames.
        world: The clip's world frame, or None (camera frame turned upright by :data:`CAMERA_TO_BVH`).
        root3d: (T, 3) camera-frame pelvis positions, metres (the trajectory), or None (the pelvis stays put).
            Needs ``world``.

    Returns:
        (root positions (T, 3) in BVH metres, local Euler angles (T, 20, 3) degrees in channel order z, x, y).
    """
    if len(fit.rotations) == 0:
        raise ShapeError("BVH export: the fit has no frames")
    turn, root = _placement(fit, world, root3d)
    rotations = fit.rotations.astype(np.float64)
    rotations[:, 0] = turn @ rotations[:, 0]
    return root, _continuous_euler(rotations)


def write_bvh(path_or_file: str | Path | IO[str], fit: SkeletonFit, frame_time: float,
              world: WorldFrame | None = None, root3d: np.ndarray | None = None) -> None:
    """Write one person's fit as a BVH file (layout in the module docstring).

    Args:
        path_or_file: Destination path, or an open text file.
        fit: The person's fitted rig, T frames.
        frame_time: Seconds per frame.
        world: The clip's world frame, or None.
        root3d: (T, 3) camera-frame pelvis positions, metres, or None; needs ``world``.
    """
    if not (np.isfinite(frame_time) and frame_time > 0):
        raise ShapeError(f"write_bvh: frame_time must be a positive number of seconds, got {frame_time}")
    root, angles = bvh_motion(fit, world, root3d)
    lines = ["HIERARCHY", *_hierarchy(fit.offsets.astype(np.float64), 0, 0), "MOTION",
             f"Frames: {len(root)}", f"Frame Time: {frame_time:.6f}"]
    order = _depth_first(0)
    row = " ".join(["%.6f"] * 3 + ["%.4f"] * (3 * len(order)))
    values = np.concatenate([root, angles[:, order].reshape(len(root), -1)], axis=1)
    text = "\n".join(lines + [row % tuple(v) for v in values]) + "\n"
    if hasattr(path_or_file, "write"):
        path_or_file.write(text)
        return
    try:
        Path(path_or_file).write_text(text)
    except OSError as e:
        raise OutputError(f"{path_or_file}: cannot write the BVH file ({e})") from e


def resample_fit(fit: SkeletonFit, times: np.ndarray, fps: float,
                 root3d: np.ndarray | None = None) -> tuple[SkeletonFit, np.ndarray | None]:
    """A fit (and its pelvis positions) at evenly spaced frames, as BVH's single frame time needs.

    Frames already ``1 / fps`` apart come back unchanged; otherwise (variable-rate video, a track that resumes
    after a gap) rotations are interpolated by slerp and positions linearly, from the first frame's time to the
    last's.

    Args:
        fit: T frames.
        times: (T,) increasing seconds of the fit's frames.
        fps: Output frame rate, Hz.
        root3d: (T, 3) camera-frame pelvis positions, metres, or None.

    Returns:
        (the resampled fit, the resampled (T', 3) positions or None).
    """
    if times.shape != (len(fit.rotations),):
        raise ShapeError(f"resample_fit: {len(fit.rotations)} frames but times {times.shape}")
    count = int(round((times[-1] - times[0]) * fps)) + 1
    grid = times[0] + np.arange(count) / fps
    if count == len(times) and np.abs(times - grid).max() < 0.25 / fps:
        return fit, root3d
    grid = np.clip(grid, times[0], times[-1])
    rotations = np.stack([Slerp(times, Rotation.from_matrix(fit.rotations[:, j].astype(np.float64)))(grid).as_matrix()
                          for j in range(fit.rotations.shape[1])], axis=1)

    def linear(values: np.ndarray) -> np.ndarray:
        flat = values.reshape(len(values), -1)
        return np.stack([np.interp(grid, times, c) for c in flat.T], -1).reshape(count, *values.shape[1:])

    moved = SkeletonFit(fit.offsets, rotations.astype(np.float32), linear(fit.positions).astype(np.float32))
    return moved, None if root3d is None else linear(root3d).astype(np.float32)


def read_bvh(path: str | Path) -> tuple[list[BvhJoint], np.ndarray, float]:
    """Read any BVH file (:func:`parse_bvh` on the file's text).

    Returns:
        (joints in file order, motion (T, C) channel values, frame time in seconds).
    """
    try:
        text = Path(path).read_text(errors="replace")
    except OSError as e:
        raise InputError(f"{path}: cannot read the BVH file ({e})") from e
    return parse_bvh(text, Path(path))


def bvh_positions(path: str | Path) -> tuple[list[str], np.ndarray]:
    """Forward kinematics of a BVH file: every joint's position in every frame.

    Rotation channels compose in the order they are listed (the first is outermost); a position channel
    replaces the OFFSET component it names (as Blender's importer does).

    Args:
        path: The .bvh file.

    Returns:
        (joint names, positions (T, J, 3) in file units and axes).
    """
    joints, motion, _ = read_bvh(path)
    placed = forward_kinematics(joints, motion, set(range(len(joints))))
    return [j.name for j in joints], np.stack([placed[j][0] for j in range(len(joints))], axis=1)


@dataclass
class BvhJoint:
    """One HIERARCHY entry: offset (3,) in file units, channel names, first channel's column."""

    name: str
    parent: int
    offset: np.ndarray = field(default_factory=lambda: np.zeros(3))
    channels: list[str] = field(default_factory=list)
    start: int = 0
    end_site: np.ndarray | None = None


def parse_bvh(text: str, path: Path) -> tuple[list[BvhJoint], np.ndarray, float]:
    """Parse BVH text.

    Args:
        text: Whole file.
        path: For error messages.

    Returns:
        (joints in file order (parents first), motion (T, C) float64 channel values, frame time in s).
    """
    head, sep, body = text.partition("MOTION")
    if not sep or "HIERARCHY" not in head:
        raise InputError(f"{path}: not a BVH file (no HIERARCHY/MOTION sections)")
    joints = _parse_hierarchy(head.split(), path)
    m = re.match(r"\s*Frames:\s*(\d+)\s*Frame\s+Time:\s*(\S+)", body)
    if not m:
        raise InputError(f"{path}: BVH MOTION section lacks 'Frames:' / 'Frame Time:' lines")
    try:
        values = np.array(body[m.end():].split(), dtype=np.float64)
        frame_time = float(m.group(2))
    except ValueError as e:
        raise InputError(f"{path}: non-numeric value in BVH MOTION section ({e})") from e
    n_ch = sum(len(j.channels) for j in joints)
    if n_ch == 0 or values.size == 0 or values.size % n_ch:
        raise InputError(f"{path}: BVH has {values.size} motion values, not a multiple of its "
                         f"{n_ch} channels (declared {m.group(1)} frames)")
    if not frame_time > 0:
        raise InputError(f"{path}: BVH Frame Time {frame_time} is not positive")
    return joints, values.reshape(-1, n_ch), frame_time


def _parse_hierarchy(tok: list[str], path: Path) -> list[BvhJoint]:
    joints: list[BvhJoint] = []
    stack: list[int] = []  # open blocks: joint index, or -1 for an End Site
    pending, n_ch, i = None, 0, tok.index("HIERARCHY") + 1
    try:
        while i < len(tok):
            t = tok[i]
            if t in ("ROOT", "JOINT"):
                parent = stack[-1] if stack else -1
                joints.append(BvhJoint(tok[i + 1], parent))
                pending, i = len(joints) - 1, i + 2
            elif t == "End":
                pending, i = -1, i + 2
            elif t == "{":
                stack.append(pending)
                i += 1
            elif t == "}":
                stack.pop()
                i += 1
            elif t == "OFFSET":
                off = np.array(tok[i + 1:i + 4], dtype=np.float64)
                if stack[-1] == -1:
                    joints[stack[-2]].end_site = off
                else:
                    joints[stack[-1]].offset = off
                i += 4
            elif t == "CHANNELS":
                n = int(tok[i + 1])
                jt = joints[stack[-1]]
                jt.channels, jt.start = tok[i + 2:i + 2 + n], n_ch
                n_ch, i = n_ch + n, i + 2 + n
            else:
                raise InputError(f"{path}: unexpected token {t!r} in BVH HIERARCHY")
    except (IndexError, ValueError) as e:
        raise InputError(f"{path}: malformed BVH HIERARCHY near token {i} ({e})") from e
    for jt in joints:
        if any(len(c) < 2 or c[0] not in "XYZ" or c[1:].lower() not in ("position", "rotation")
               for c in jt.channels):
            raise InputError(f"{path}: joint {jt.name!r} has unknown channels {jt.channels}")
    if not joints or stack:
        raise InputError(f"{path}: BVH HIERARCHY is empty or its braces do not balance")
    return joints


def forward_kinematics(joints: list[BvhJoint], motion: np.ndarray,
                       needed: set[int]) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Global positions and rotations of the needed joints over all frames at once.

    Args:
        joints: Parsed hierarchy; parents come before children.
        motion: (T, C) channel values (degrees for rotations, file units for positions).
        needed: Joint indices to compute; must be closed under taking parents.

    Returns:
        {joint index: (position (T, 3), rotation (T, 3, 3))} in file units, file axes.
    """
    out: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for j in sorted(needed):
        jt = joints[j]
        rot_cols = [jt.start + k for k, c in enumerate(jt.channels) if c[1:].lower() == "rotation"]
        axes = "".join(c[0] for c in jt.channels if c[1:].lower() == "rotation")
        # Uppercase = intrinsic: R = R[axes[0]] @ R[axes[1]] @ ..., BVH's left-to-right composition.
        local = (Rotation.from_euler(axes, motion[:, rot_cols], degrees=True).as_matrix() if axes
                 else np.broadcast_to(np.eye(3), (len(motion), 3, 3)).copy())
        trans = np.repeat(jt.offset[None], len(motion), axis=0)
        for k, c in enumerate(jt.channels):
            if c[1:].lower() == "position":
                trans[:, "XYZ".index(c[0])] = motion[:, jt.start + k]
        if jt.parent < 0:
            out[j] = (trans, local)
        else:
            p_pos, p_rot = out[jt.parent]
            out[j] = (p_pos + np.einsum("tij,tj->ti", p_rot, trans), p_rot @ local)
    return out


def _placement(fit: SkeletonFit, world: WorldFrame | None,
               root3d: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """(rotation (3, 3) camera -> BVH frame, root positions (T, 3) BVH metres) for :func:`bvh_motion`."""
    t = len(fit.rotations)
    if root3d is not None:
        if world is None:
            raise InputError("BVH export: a pelvis trajectory (root3d) needs the clip's world frame")
        root3d = np.asarray(root3d, np.float64)
        if root3d.shape != (t, 3) or not np.isfinite(root3d).all():
            raise ShapeError(f"BVH export: root3d must be finite ({t}, 3), got {root3d.shape}")
        return np.asarray(world.rotation, np.float64), world.apply(root3d).astype(np.float64)
    # Rest pose ankle depth below the pelvis (hip offset plus thigh and shin), plus the sole under the ankle.
    legs = fit.offsets.astype(np.float64)[[RIG_JOINTS.index(n) for n in ("r_hip", "r_knee", "r_ankle")]]
    height = ANKLE_HEIGHT_M - legs[:, 1].sum()
    turn = CAMERA_TO_BVH if world is None else np.asarray(world.rotation, np.float64)
    return turn, np.tile([0.0, height, 0.0], (t, 1))


def _continuous_euler(rotations: np.ndarray) -> np.ndarray:
    """(T, J, 3, 3) rotations -> (T, J, 3) z, x, y degrees that change as little as possible between frames.

    Every rotation has two z-x-y triples, (z, x, y) and (z + 180, 180 - x, y + 180), each up to turns of 360;
    frame by frame the one nearest the previous frame's angles is kept (a generalised np.unwrap), so a
    spinning joint's curve keeps climbing and a joint passing x = +-90 does not flip.
    """
    t, j = rotations.shape[:2]
    with warnings.catch_warnings():
        # At x = +-90 scipy warns and zeroes y; _hold_lock below picks the y that continues the curve instead.
        warnings.filterwarnings("ignore", "Gimbal lock detected")
        raw = Rotation.from_matrix(rotations.reshape(-1, 3, 3)).as_euler(_EULER, degrees=True).reshape(t, j, 3)
    twin = raw + np.array([180.0, 0.0, 180.0])
    twin[..., 1] = 180.0 - raw[..., 1]
    out = np.empty_like(raw)
    out[0] = raw[0]
    for k in range(1, t):
        prev = out[k - 1]
        a, b = (_nearest_turn(_hold_lock(c, prev), prev) for c in (raw[k], twin[k]))
        closer = np.abs(a - prev).sum(-1) <= np.abs(b - prev).sum(-1)
        out[k] = np.where(closer[:, None], a, b)
    return out


def _hold_lock(angles: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """(J, 3) z, x, y degrees with y kept at ``reference``'s where x is +-90 (gimbal lock).

    There ``Rz(z) Rx(+-90) Ry(y) = Rz(z +- y) Rx(+-90)``: only z +- y is fixed, so y may stay where it was.
    """
    sin_x = np.sin(np.radians(angles[:, 1]))
    locked = np.abs(np.cos(np.radians(angles[:, 1]))) < 1e-6
    held = angles.copy()
    held[locked, 2] = reference[locked, 2]
    held[locked, 0] += sin_x[locked] * (angles[locked, 2] - reference[locked, 2])
    return held


def _nearest_turn(angles: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """``angles`` (degrees) shifted by whole turns to lie within 180 of ``reference``."""
    return angles + 360.0 * np.round((reference - angles) / 360.0)


def _children(j: int) -> list[int]:
    return [c for c, p in enumerate(RIG_PARENTS) if p == j]


def _depth_first(j: int) -> list[int]:
    """Rig joint indices in BVH file order (depth-first from ``j``), the order of the motion columns."""
    return [j] + [k for c in _children(j) for k in _depth_first(c)]


def _hierarchy(offsets: np.ndarray, j: int, depth: int) -> list[str]:
    """HIERARCHY lines of joint ``j`` and everything below it."""
    pad, name = "  " * depth, RIG_JOINTS[j]
    chans = ROOT_CHANNELS if j == 0 else JOINT_CHANNELS
    offset = np.zeros(3) if j == 0 else offsets[j]
    lines = [f"{pad}{'ROOT' if j == 0 else 'JOINT'} {name}", f"{pad}{{", f"{pad}  OFFSET {_xyz(offset)}",
             f"{pad}  CHANNELS {len(chans)} {' '.join(chans)}"]
    children = _children(j)
    for c in children:
        lines += _hierarchy(offsets, c, depth + 1)
    if not children:
        lines += [f"{pad}  End Site", f"{pad}  {{", f"{pad}    OFFSET {_xyz(END_SITE_FRACTION * offsets[j])}",
                  f"{pad}  }}"]
    return lines + [f"{pad}}}"]


def _xyz(v: np.ndarray) -> str:
    return " ".join(f"{x + 0.0:.6f}" for x in v)  # + 0.0 turns -0.0 into 0.0


