"""Stage 3: 2D keypoints, and the one place where keypoint sets are mapped onto each other.

COCO-17 -> H36M-17 (the lifter's input):

============  ==========================================================
H36M joint    from COCO-17
============  ==========================================================
pelvis        midpoint of l_hip and r_hip
r/l hip, knee, ankle   the same COCO joints
spine         midpoint of pelvis and thorax
thorax        midpoint of l_shoulder and r_shoulder
neck/nose     nose
head          midpoint of the eyes, moved away from the nose by the
              nose-to-eyes offset (toward the crown)
shoulders, elbows, wrists   the same COCO joints
============  ==========================================================

A derived joint's score is the minimum of the scores it is built from.

MediaPipe BlazePose-33 -> COCO-17 (``MEDIAPIPE_TO_COCO``; a plain index pick, no derived joints).
MediaPipe's "left" is the person's left, as in COCO (checked on a frontal dancer: LEFT_SHOULDER is on the
image right):

==========  =========================   ==========  =========================
COCO-17     MediaPipe landmark           COCO-17     MediaPipe landmark
==========  =========================   ==========  =========================
0 nose      0 NOSE                       9 l_wrist   15 LEFT_WRIST
1 l_eye     2 LEFT_EYE                   10 r_wrist  16 RIGHT_WRIST
2 r_eye     5 RIGHT_EYE                  11 l_hip    23 LEFT_HIP
3 l_ear     7 LEFT_EAR                   12 r_hip    24 RIGHT_HIP
4 r_ear     8 RIGHT_EAR                  13 l_knee   25 LEFT_KNEE
5 l_should  11 LEFT_SHOULDER             14 r_knee   26 RIGHT_KNEE
6 r_should  12 RIGHT_SHOULDER            15 l_ankle  27 LEFT_ANKLE
7 l_elbow   13 LEFT_ELBOW                16 r_ankle  28 RIGHT_ANKLE
8 r_elbow   14 RIGHT_ELBOW
==========  =========================   ==========  =========================

A COCO joint's score is the landmark's visibility (times its presence where MediaPipe reports one), and
at most ``MediaPipeConfig.outside_score`` when the landmark lies outside the image.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from pipeline.errors import ShapeError
from pipeline.skeleton import COCO17, H36M17, get_skeleton

# H36M index -> COCO index for the joints that exist in both.
_DIRECT = {1: 12, 2: 14, 3: 16, 4: 11, 5: 13, 6: 15, 9: 0, 11: 5, 12: 7, 13: 9, 14: 6, 15: 8, 16: 10}


_Keypoints = TypeVar("_Keypoints")  # a numpy array or a torch tensor


def rebuild_torso(keypoints: _Keypoints) -> _Keypoints:
    """Set the H36M-17 pelvis, spine and thorax from the hips and shoulders, as a 2D model's output allows.

    A 2D model gives hips and shoulders, not the mocap's neck base or spine: pelvis = mid-hips,
    thorax = mid-shoulders, spine = their midpoint. Used by :func:`coco_to_h36m` at run time and by
    training (``augment.torso_from_limbs``) and evaluation (``pose3d evaluate --torso limbs``) so the
    lifter sees that torso everywhere.

    Args:
        keypoints: (..., 17, D) H36M-17 keypoints, a numpy array or a torch tensor, any units.

    Returns:
        A new array or tensor of the same type and shape with joints 0, 7 and 8 rebuilt.
    """
    out = keypoints.clone() if hasattr(keypoints, "clone") else keypoints.copy()
    out[..., 0, :] = (keypoints[..., 1, :] + keypoints[..., 4, :]) / 2
    out[..., 8, :] = (keypoints[..., 11, :] + keypoints[..., 14, :]) / 2
    out[..., 7, :] = (out[..., 0, :] + out[..., 8, :]) / 2
    return out


def coco_to_h36m(keypoints: np.ndarray, scores: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Map COCO-17 keypoints to the H36M-17 set.

    Args:
        keypoints: (T, 17, 2) COCO-17 pixel coordinates (NaN where missing).
        scores: (T, 17) confidences in [0, 1]; all ones when None.

    Returns:
        (keypoints (T, 17, 2) pixels, scores (T, 17)) in H36M-17 order.
    """
    if keypoints.ndim != 3 or keypoints.shape[1:] != (COCO17.num_joints, 2):
        raise ShapeError(f"COCO-17 keypoints must be (T, 17, 2), got {keypoints.shape}")
    scores = np.ones(keypoints.shape[:2], dtype=np.float32) if scores is None else np.asarray(scores)
    if scores.shape != keypoints.shape[:2]:
        raise ShapeError(f"scores must be {keypoints.shape[:2]}, got {scores.shape}")
    out = np.empty_like(keypoints, dtype=np.float64)
    conf = np.empty(scores.shape, dtype=np.float32)
    for h, c in _DIRECT.items():
        out[:, h], conf[:, h] = keypoints[:, c], scores[:, c]
    out = rebuild_torso(out)
    conf[:, 0] = np.minimum(scores[:, 11], scores[:, 12])
    conf[:, 8] = np.minimum(scores[:, 5], scores[:, 6])
    conf[:, 7] = np.minimum(conf[:, 0], conf[:, 8])
    eyes = (keypoints[:, 1] + keypoints[:, 2]) / 2
    out[:, 10] = eyes + (eyes - keypoints[:, 0])
    conf[:, 10] = np.minimum.reduce([scores[:, 0], scores[:, 1], scores[:, 2]])
    return out.astype(np.float32), conf


def h36m_to_coco(keypoints: np.ndarray) -> np.ndarray:
    """Map H36M-17 keypoints (e.g. projected mocap) to the COCO-17 set, as a 2D model would see them.

    The 13 shared joints are copied; both eyes go halfway between nose and head, so that
    :func:`coco_to_h36m` gives the head back exactly; the ears, which H36M lacks, are NaN (unseen).

    Args:
        keypoints: (T, 17, 2) H36M-17 pixels.

    Returns:
        (T, 17, 2) float32 COCO-17 pixels.
    """
    if keypoints.ndim != 3 or keypoints.shape[1:] != (H36M17.num_joints, 2):
        raise ShapeError(f"H36M-17 keypoints must be (T, 17, 2), got {keypoints.shape}")
    out = np.full(keypoints.shape, np.nan, dtype=np.float32)
    for h, c in _DIRECT.items():
        out[:, c] = keypoints[:, h]
    out[:, 1] = out[:, 2] = (keypoints[:, 9] + keypoints[:, 10]) / 2
    return out


def to_h36m(keypoints: np.ndarray, scores: np.ndarray | None, fmt: str) -> tuple[np.ndarray, np.ndarray]:
    """Bring keypoints in format ``fmt`` ('h36m17' or 'coco17') to H36M-17. Returns (keypoints, scores)."""
    skeleton = get_skeleton(fmt)
    if skeleton is COCO17:
        return coco_to_h36m(keypoints, scores)
    if keypoints.ndim != 3 or keypoints.shape[1:] != (H36M17.num_joints, 2):
        raise ShapeError(f"H36M-17 keypoints must be (T, 17, 2), got {keypoints.shape}")
    scores = np.ones(keypoints.shape[:2], dtype=np.float32) if scores is None else np.asarray(scores, np.float32)
    return keypoints.astype(np.float32), scores


def fill_gaps(keypoints: np.ndarray) -> np.ndarray:
    """Linearly interpolate NaN entries of each joint coordinate over time (ends held).

    Args:
        keypoints: (T, J, 2) with NaN where missing.

    Returns:
        (T, J, 2) finite; raises ShapeError if a joint is missing in every frame.
    """
    out = np.array(keypoints, dtype=np.float64)
    t = np.arange(len(out))
    flat = out.reshape(len(out), -1)
    for col in range(flat.shape[1]):
        ok = np.isfinite(flat[:, col])
        if not ok.any():
            raise ShapeError(f"joint {col // 2} has no valid coordinate in any frame")
        if not ok.all():
            flat[:, col] = np.interp(t, t[ok], flat[ok, col])
    return flat.reshape(out.shape).astype(np.float32)


# ---------------------------------------------------------------------------------------------------------
# MediaPipe BlazePose backend (offline; the wheel bundles the model_complexity=1 weights).

# COCO-17 index -> MediaPipe landmark index (see the table in the module docstring).
MEDIAPIPE_TO_COCO = (0, 2, 5, 7, 8, 11, 12, 13, 14, 15, 16, 23, 24, 25, 26, 27, 28)


def mediapipe_to_coco(landmarks: np.ndarray) -> np.ndarray:
    """Pick the COCO-17 joints out of MediaPipe's 33 landmarks.

    Args:
        landmarks: (..., 33, C) any per-landmark values (pixels, visibilities, ...).

    Returns:
        (..., 17, C) in COCO-17 order.
    """
    landmarks = np.asarray(landmarks)
    if landmarks.ndim < 2 or landmarks.shape[-2] != 33:
        raise ShapeError(f"MediaPipe landmarks must be (..., 33, C), got {landmarks.shape}")
    return landmarks[..., MEDIAPIPE_TO_COCO, :]


@dataclass(frozen=True)
class PersonKeypoints:
    """One person found in one image.

    Attributes:
        keypoints: (17, 2) float32 COCO-17 pixels.
        scores: (17,) float32 joint confidences in [0, 1].
        box: (4,) float32 x1 y1 x2 y2 pixels (landmark box, expanded, clipped to the image).
        score: Person confidence in [0, 1]: the mean of ``scores``.
    """

    keypoints: np.ndarray
    scores: np.ndarray
    box: np.ndarray
    score: float
