"""Helpers shared by the BVH and ASF/AMC readers: file opening, batched rotations, H36M17 assembly.

The readers turn a file into named anatomical points (hip joint centres, knees, ..., head top) per frame;
:func:`assemble_h36m` turns those into the 17 H36M joints, :func:`choose_scale` picks the length unit and
:func:`place_on_floor` puts the feet on y = 0.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from pipeline.errors import InputError

# Median hip-to-ankle length (femur + tibia) over the 9 CMU ASF skeletons in the shared set (0.82-0.86 m):
# motions of unknown scale are rescaled to this leg length.
NOMINAL_LEG_M = 0.84
# An adult's hip-to-ankle length lies well inside this band; outside it the unit is not trusted.
PLAUSIBLE_LEG_M = (0.70, 1.05)
# Candidate length units (metres per file unit): metres, centimetres, millimetres, inches, and CMU's
# ASF unit (1/0.45 inch) that the cgspeed BVH conversions kept.
UNITS = {"m": 1.0, "cm": 0.01, "mm": 0.001, "inch": 0.0254, "cmu": 0.0254 / 0.45}
# Height of the ankle joint centre above the sole of a standing foot.
ANKLE_HEIGHT_M = 0.08
# Ankle levels (5th percentile of the lower ankle's height) that count as already standing on y = 0.
FLOOR_KEEP_M = (0.0, 0.25)
# H36M's spine joint sits at 233 / (233 + 257) of the way from pelvis to thorax (H36M mean bone lengths).
SPINE_FRACTION = 0.48
# Bone lengths of the H36M17 skeleton (indexed by the bone's child joint; the root entry is unused) as
# fractions of the hip-to-ankle length: medians over the 9 CMU ASF/AMC subjects, measured with these
# readers. Retargeted rigs are conformed to them (see :func:`conform_proportions`).
REFERENCE_BONES = np.array([0.0, 0.110, 0.485, 0.519, 0.110, 0.480, 0.519, 0.256, 0.285, 0.119, 0.235,
                            0.242, 0.355, 0.226, 0.236, 0.356, 0.227])
# The ASF thorax (neck base) sits this fraction of the hip-to-ankle length below the shoulder line.
THORAX_BELOW_SHOULDERS = 0.068
_H36M_PARENTS = (-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 9, 8, 11, 12, 8, 14, 15)


def read_text(path: Path) -> str:
    """Read a plain or gzip-compressed text file (decided by the gzip magic bytes, not the suffix).

    Args:
        path: File to read.

    Returns:
        The whole file as text.
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            magic = f.read(2)
        if magic == b"\x1f\x8b":
            with gzip.open(path, "rt", encoding="utf-8", errors="replace") as f:
                return f.read()
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except (OSError, EOFError) as e:
        raise InputError(f"{path}: cannot read mocap file ({e})") from e


def axis_rotation(angle_rad: np.ndarray, axis: str) -> np.ndarray:
    """Rotation matrices about one coordinate axis.

    Args:
        angle_rad: (T,) angles in radians (right-handed, counter-clockwise looking down the axis).
        axis: "X", "Y" or "Z".

    Returns:
        (T, 3, 3) float64 matrices acting on column vectors.
    """
    c, s = np.cos(angle_rad), np.sin(angle_rad)
    i = "XYZ".index(axis.upper())
    j, k = (i + 1) % 3, (i + 2) % 3
    out = np.zeros(angle_rad.shape + (3, 3))
    out[..., i, i] = 1.0
    out[..., j, j] = c
    out[..., k, k] = c
    out[..., j, k] = -s
    out[..., k, j] = s
    return out


def euler_matrices(angles_deg: np.ndarray, axes: str) -> np.ndarray:
    """Compose per-axis rotations in the order given: R = R[axes[0]] @ R[axes[1]] @ ...

    This is BVH's convention (the first channel listed is the outermost rotation).

    Args:
        angles_deg: (T, k) angles in degrees, column i about ``axes[i]``.
        axes: k axis letters, e.g. "ZYX".

    Returns:
        (T, 3, 3) float64 rotation matrices.
    """
    rot = np.broadcast_to(np.eye(3), (angles_deg.shape[0], 3, 3)).copy()
    for i, axis in enumerate(axes):
        rot = rot @ axis_rotation(np.deg2rad(angles_deg[:, i]), axis)
    return rot


def spine_weight(rest: dict[str, np.ndarray], chain: list[np.ndarray]) -> tuple[int, float]:
    """Pick the spine-chain segment and blend weight that put H36M's spine at SPINE_FRACTION.

    Fractions are measured in the rest pose along the pelvis -> thorax axis.

    Args:
        rest: Rest-pose points (3,) with keys "l_hip", "r_hip", "thorax".
        chain: Rest-pose positions (3,) of the spine-chain joints, bottom to top.

    Returns:
        (i, w): spine = (1 - w) * chain[i] + w * chain[i + 1].
    """
    pelvis = 0.5 * (rest["l_hip"] + rest["r_hip"])
    axis = rest["thorax"] - pelvis
    frac = [float(np.dot(p - pelvis, axis) / np.dot(axis, axis)) for p in chain]
    for i in range(len(chain) - 1):
        if frac[i] <= SPINE_FRACTION <= frac[i + 1] and frac[i + 1] > frac[i]:
            return i, (SPINE_FRACTION - frac[i]) / (frac[i + 1] - frac[i])
    # No bracketing segment (an odd rest pose): use the chain end nearest the target.
    return (0, 0.0) if SPINE_FRACTION < frac[0] else (len(chain) - 2, 1.0)


def assemble_h36m(p: dict[str, np.ndarray]) -> np.ndarray:
    """Build the H36M17 joints from named points.

    Args:
        p: (T, 3) arrays for l_/r_ hip, knee, ankle, shoulder, elbow, wrist and spine, thorax, neck, head.

    Returns:
        (T, 17, 3) float64 in H36M17 order; pelvis is the midpoint of the hip joint centres.
    """
    pelvis = 0.5 * (p["l_hip"] + p["r_hip"])
    order = [pelvis, p["r_hip"], p["r_knee"], p["r_ankle"], p["l_hip"], p["l_knee"], p["l_ankle"],
             p["spine"], p["thorax"], p["neck"], p["head"], p["l_shoulder"], p["l_elbow"],
             p["l_wrist"], p["r_shoulder"], p["r_elbow"], p["r_wrist"]]
    return np.stack(order, axis=1)


def choose_scale(leg: float) -> tuple[float, bool, str]:
    """Pick metres-per-unit from a hip-to-ankle length in file units.

    The unit whose leg length lands closest (in log ratio) to NOMINAL_LEG_M wins; if even that
    leaves the leg outside PLAUSIBLE_LEG_M the scale is unknown and the body is rescaled to
    NOMINAL_LEG_M.

    Args:
        leg: Hip-to-ankle length (femur + tibia) in file units.

    Returns:
        (metres per unit, scale_known, unit name or "nominal").
    """
    if not leg > 0:
        return 1.0, False, "nominal"
    name = min(UNITS, key=lambda u: abs(np.log(leg * UNITS[u] / NOMINAL_LEG_M)))
    metres = leg * UNITS[name]
    if PLAUSIBLE_LEG_M[0] <= metres <= PLAUSIBLE_LEG_M[1]:
        return UNITS[name], True, name
    return NOMINAL_LEG_M / leg, False, "nominal"


def to_y_up(joints: np.ndarray, rest_up: np.ndarray) -> np.ndarray:
    """Rotate a Z-up recording to Y-up (Y-up ones pass unchanged).

    Args:
        joints: (T, J, 3).
        rest_up: (3,) pelvis -> thorax direction in the rest pose, file axes.

    Returns:
        (T, J, 3) with +Y up.
    """
    up = int(np.argmax(np.abs(rest_up)))
    if up == 1 and rest_up[1] > 0:
        return joints
    if up == 2 and rest_up[2] > 0:  # (x, y, z) -> (x, z, -y), a proper rotation about X
        return np.stack([joints[..., 0], joints[..., 2], -joints[..., 1]], axis=-1)
    raise InputError(f"rest pose points along {'XYZ'[up]} ({rest_up.round(2).tolist()}); only Y-up or "
                     "Z-up files are supported")


def place_on_floor(joints: np.ndarray) -> np.ndarray:
    """Shift vertically, if needed, so the feet stand on y = 0.

    The ankle level is the 5th percentile over frames of the lower ankle's height (robust to a few
    frames with a foot through the floor and to jumps). CMU captures are already floor-registered, so a
    level within FLOOR_KEEP_M is kept as recorded (walks on raised terrain stay raised); otherwise the
    motion is shifted to put that level ANKLE_HEIGHT_M above y = 0.

    Args:
        joints: (T, 17, 3) metres, Y-up, H36M17 order.

    Returns:
        (T, 17, 3), shifted copy or the input.
    """
    level = float(np.percentile(np.minimum(joints[:, 3, 1], joints[:, 6, 1]), 5))
    if FLOOR_KEEP_M[0] <= level <= FLOOR_KEEP_M[1]:
        return joints
    out = joints.copy()
    out[..., 1] += ANKLE_HEIGHT_M - level
    return out


def _ancestry(parents: tuple[int, ...]) -> np.ndarray:
    """(J, J) matrix: entry [c, k] is 1 when bone k lies on the path from the root to joint c."""
    a = np.zeros((len(parents), len(parents)))
    for c in range(len(parents)):
        k = c
        while parents[k] >= 0:
            a[c, k], k = 1.0, parents[k]
    return a


def conform_proportions(joints: np.ndarray) -> np.ndarray:
    """Give a retargeted rig the CMU actors' proportions and neck-base placement.

    Retargeted BVH rigs (the daz flavours) carry the motion on a stock figure whose joints sit elsewhere than
    the actor's: shoulders 23 cm apart instead of 37, forearms 25% long, the neck base 5 cm above the
    shoulder line instead of 6 cm below it. Left as they are they teach the lifter a second anatomy. The
    thorax is moved to THORAX_BELOW_SHOULDERS under the shoulder midpoint, then every bone is scaled (along
    its own direction, children carried along) to REFERENCE_BONES times the rig's hip-to-ankle length.

    Args:
        joints: (T, 17, 3) metres, H36M17 order.

    Returns:
        (T, 17, 3) conformed copy; pelvis, leg length and all joint angles' directions kept.
    """
    j = joints.astype(np.float64)
    parents = np.array([max(p, 0) for p in _H36M_PARENTS])
    lengths = np.linalg.norm(j - j[:, parents], axis=-1).mean(axis=0)  # (17,) per-bone mean
    leg = 0.5 * (lengths[2] + lengths[3] + lengths[5] + lengths[6])
    mid = 0.5 * (j[:, 11] + j[:, 14])
    up = mid - j[:, 0]
    up /= np.linalg.norm(up, axis=-1, keepdims=True) + 1e-9
    j[:, 8] = mid - THORAX_BELOW_SHOULDERS * leg * up
    bones = j - j[:, parents]
    norms = np.linalg.norm(bones, axis=-1, keepdims=True).mean(axis=0, keepdims=True) + 1e-9
    bones *= REFERENCE_BONES[None, :, None] * leg / norms
    return j[:, :1] + np.einsum("ck,tkd->tcd", _ancestry(_H36M_PARENTS), bones)
