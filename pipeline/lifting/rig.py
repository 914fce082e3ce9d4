"""The rig pose3d fits to each person: the H36M-17 joints as a tree of rotating joints with constant bones.

A lifted pose is 17 points; an animation rig is a tree of joints, each rotating the bones below it. The tree
here keeps every H36M-17 joint under its own name and adds three joints of zero length where one joint has
several children that move independently: ``lower_back`` (the lumbar spine bends while the hips stay level)
under the pelvis, and ``l_collar`` / ``r_collar`` (the shoulders shrug) under the thorax. Each joint's local
rotation turns the bones that start at it; the knees and elbows are hinges, which is what fixes the twist of
the thigh and the upper arm when the limb is bent.

Rest pose (the rig frame: y up, x to the person's left, z forward, metres): standing straight, legs down,
arms out to the sides (a T-pose); hip and shoulder offsets keep the directions the person's own pelvis and
chest have (:func:`rest_offsets`). Global orientation of joint j: ``G_j = G_parent(j) @ R_j``; position:
``p_j = p_parent(j) + G_parent(j) @ offset_j``, with ``G_root = R_root`` mapping the rig frame to the frame the
positions are in (the camera's, for a fit to lifted poses).
"""

from __future__ import annotations

import numpy as np
import torch

from pipeline.errors import ShapeError
from pipeline.skeleton import H36M17, RIG_JOINTS, RIG_OF_H36M, RIG_PARENTS

# The joints (names, parents, H36M-17 correspondence) are pipeline.skeleton's RIG_*; how they move is here.
JOINTS, PARENTS, OF_H36M = RIG_JOINTS, RIG_PARENTS, RIG_OF_H36M
HELPERS = tuple(JOINTS.index(n) for n in ("lower_back", "l_collar", "r_collar"))
# How each joint may rotate: a free rotation, a hinge about the rig's x or y axis, or not at all (no bone below).
HINGE_X = tuple(JOINTS.index(n) for n in ("r_knee", "l_knee"))
HINGE_Y = tuple(JOINTS.index(n) for n in ("l_elbow", "r_elbow"))
LEAVES = tuple(JOINTS.index(n) for n in ("r_ankle", "l_ankle", "head", "l_wrist", "r_wrist"))
BALLS = tuple(j for j in range(len(JOINTS)) if j not in HINGE_X + HINGE_Y + LEAVES)

_LEFT, _UP = np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0])


def bone_lengths(poses: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """One length per H36M-17 bone for a whole track: a robust median, the same on the left and the right.

    Args:
        poses: (T, 17, 3) joints, metres.
        weights: (T, 17) trust in each joint (e.g. 2D confidences); a bone's median uses the frames where both
            ends have at least half the track's best trust (all frames when None).

    Returns:
        (17,) metres; entry j is the bone from H36M joint j's parent to j (0 for the pelvis).
    """
    if poses.ndim != 3 or poses.shape[1:] != (17, 3) or len(poses) == 0:
        raise ShapeError(f"bone_lengths expects (T>0, 17, 3) poses, got {poses.shape}")
    parents = np.array(H36M17.parents)
    lengths = np.linalg.norm(poses[:, 1:] - poses[:, parents[1:]], axis=-1)       # (T, 16)
    if weights is not None:
        trust = np.minimum(weights[:, 1:], weights[:, parents[1:]])
        good = trust >= 0.5 * trust.max(axis=0, keepdims=True)
        lengths = np.where(good, lengths, np.nan)
    out = np.concatenate([[0.0], np.nanmedian(lengths, axis=0)])
    left, right = np.array(H36M17.left), np.array(H36M17.right)
    out[left] = out[right] = (out[left] + out[right]) / 2
    return out


def local_frames(a: np.ndarray, b: np.ndarray, up: np.ndarray) -> np.ndarray:
    """(T, 3, 3) body frames whose columns are x (right-to-left line b->a), y (``up`` made orthogonal), z = x × y.

    Args:
        a, b: (T, 3) a left joint and its right twin (hips or shoulders).
        up: (T, 3) a direction along the trunk.
    """
    x = a - b
    x = x / np.linalg.norm(x, axis=-1, keepdims=True).clip(1e-9)
    y = up - (up * x).sum(-1, keepdims=True) * x
    y = y / np.linalg.norm(y, axis=-1, keepdims=True).clip(1e-9)
    return np.stack([x, y, np.cross(x, y)], axis=-1)


def rest_offsets(poses: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """(20, 3) rest offsets of the rig for one person, metres in the rig frame.

    Limbs and spine point straight down, up or sideways; the hips, the neck and the shoulders keep the median
    direction they have in the person's own pelvis and chest frames (made left/right symmetric), so that the
    collars and the lower back rest near their zero rotation.

    Args:
        poses: (T, 17, 3) the track's joints, metres (any frame).
        lengths: (17,) bone lengths from :func:`bone_lengths`.
    """
    j = {name: poses[:, i] for i, name in enumerate(H36M17.joints)}
    L = dict(zip(H36M17.joints, lengths))
    chest = local_frames(j["l_shoulder"], j["r_shoulder"], j["thorax"] - j["spine"])

    def median_dir(frames: np.ndarray, vector: np.ndarray) -> np.ndarray:
        local = np.einsum("tij,ti->tj", frames, vector)
        d = np.median(local / np.linalg.norm(local, axis=-1, keepdims=True).clip(1e-9), axis=0)
        return d / max(np.linalg.norm(d), 1e-9)

    shoulder = median_dir(chest, j["l_shoulder"] - j["thorax"])
    shoulder = (shoulder + median_dir(chest, j["r_shoulder"] - j["thorax"]) * [-1, 1, 1]) / 2
    shoulder /= max(np.linalg.norm(shoulder), 1e-9)
    neck = median_dir(chest, j["neck"] - j["thorax"]) * [0, 1, 1]
    neck /= max(np.linalg.norm(neck), 1e-9)
    mirror = np.array([-1.0, 1.0, 1.0])
    offsets = {"r_hip": -_LEFT * L["r_hip"], "l_hip": _LEFT * L["l_hip"],
               "r_knee": -_UP * L["r_knee"], "r_ankle": -_UP * L["r_ankle"],
               "l_knee": -_UP * L["l_knee"], "l_ankle": -_UP * L["l_ankle"],
               "spine": _UP * L["spine"], "thorax": _UP * L["thorax"], "neck": neck * L["neck"],
               "head": _UP * L["head"],
               "l_shoulder": shoulder * L["l_shoulder"], "r_shoulder": shoulder * mirror * L["r_shoulder"],
               "l_elbow": _LEFT * L["l_elbow"], "l_wrist": _LEFT * L["l_wrist"],
               "r_elbow": -_LEFT * L["r_elbow"], "r_wrist": -_LEFT * L["r_wrist"]}
    return np.stack([offsets.get(name, np.zeros(3)) for name in JOINTS]).astype(np.float64)


def forward_kinematics(rotations: torch.Tensor, offsets: torch.Tensor,
                       root: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Joint positions and global orientations of the rig.

    Args:
        rotations: (T, 20, 3, 3) local rotations (entry 0: the root's orientation, rig frame -> target frame).
        offsets: (20, 3) rest offsets, metres.
        root: (T, 3) root positions, metres (None: at the origin).

    Returns:
        (positions (T, 20, 3) metres, global orientations (T, 20, 3, 3)).
    """
    if rotations.ndim != 4 or rotations.shape[1:] != (len(JOINTS), 3, 3) or offsets.shape != (len(JOINTS), 3):
        raise ShapeError(f"forward_kinematics: rotations {tuple(rotations.shape)}, offsets {tuple(offsets.shape)}")
    t = rotations.shape[0]
    origin = torch.zeros(t, 3, dtype=rotations.dtype) if root is None else root
    globals_, positions = [rotations[:, 0]], [origin]
    for j in range(1, len(JOINTS)):
        parent = globals_[PARENTS[j]]
        positions.append(positions[PARENTS[j]] + parent @ offsets[j])
        globals_.append(parent @ rotations[:, j])
    return torch.stack(positions, 1), torch.stack(globals_, 1)


def to_h36m(positions: np.ndarray | torch.Tensor):
    """(T, 17, 3) the H36M-17 joints out of (T, 20, 3) rig positions."""
    return positions[:, list(OF_H36M)]
