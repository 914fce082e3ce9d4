"""Skeleton definitions shared by every stage: joint orders, bones, left/right symmetry.

Two skeletons are used:

* ``H36M17`` -- the Human3.6M 17-joint set in VideoPose3D order. The lifter reads and writes it.
* ``COCO17`` -- the 17 COCO keypoints every 2D model speaks.

The mapping between them lives in :mod:`pipeline.keypoints` next to the 2D backends.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.errors import ConfigError


@dataclass(frozen=True)
class Skeleton:
    """A named joint set with its kinematic tree.

    Attributes:
        name: Identifier used in files (``"h36m17"``, ``"coco17"``).
        joints: Joint names, index order.
        parents: Parent index per joint, -1 for the root.
        left: Indices of left-side joints.
        right: Indices of the matching right-side joints, same order as ``left``.
    """

    name: str
    joints: tuple[str, ...]
    parents: tuple[int, ...]
    left: tuple[int, ...]
    right: tuple[int, ...]

    @property
    def num_joints(self) -> int:
        return len(self.joints)

    @property
    def bones(self) -> tuple[tuple[int, int], ...]:
        """(parent, child) pairs for every non-root joint."""
        return tuple((p, c) for c, p in enumerate(self.parents) if p >= 0)

    def flip_permutation(self) -> np.ndarray:
        """Index array that swaps left and right joints. Returns: (J,) int64."""
        perm = np.arange(self.num_joints)
        perm[list(self.left)] = self.right
        perm[list(self.right)] = self.left
        return perm

    def index(self, name: str) -> int:
        return self.joints.index(name)


H36M17 = Skeleton(
    name="h36m17",
    joints=(
        "pelvis", "r_hip", "r_knee", "r_ankle", "l_hip", "l_knee", "l_ankle", "spine", "thorax",
        "neck", "head", "l_shoulder", "l_elbow", "l_wrist", "r_shoulder", "r_elbow", "r_wrist",
    ),
    parents=(-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 9, 8, 11, 12, 8, 14, 15),
    left=(4, 5, 6, 11, 12, 13),
    right=(1, 2, 3, 14, 15, 16),
)

COCO17 = Skeleton(
    name="coco17",
    joints=(
        "nose", "l_eye", "r_eye", "l_ear", "r_ear", "l_shoulder", "r_shoulder", "l_elbow", "r_elbow",
        "l_wrist", "r_wrist", "l_hip", "r_hip", "l_knee", "r_knee", "l_ankle", "r_ankle",
    ),
    # A drawing tree: face hangs off the nose, arms off the shoulders, legs off the hips.
    parents=(-1, 0, 0, 1, 2, 0, 0, 5, 6, 7, 8, 5, 6, 11, 12, 13, 14),
    left=(1, 3, 5, 7, 9, 11, 13, 15),
    right=(2, 4, 6, 8, 10, 12, 14, 16),
)

SKELETONS = {s.name: s for s in (H36M17, COCO17)}

# The rig fitted to each person (pipeline/lifting/rig.py): every H36M-17 joint under its own name plus three
# zero-length joints where one joint's children move apart (the lumbar spine under the pelvis, the collars
# under the thorax). Parents come before their children.
RIG_JOINTS = ("pelvis", "r_hip", "r_knee", "r_ankle", "l_hip", "l_knee", "l_ankle", "lower_back", "spine", "thorax",
              "neck", "head", "l_collar", "l_shoulder", "l_elbow", "l_wrist", "r_collar", "r_shoulder", "r_elbow",
              "r_wrist")
RIG_PARENTS = (-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 9, 10, 9, 12, 13, 14, 9, 16, 17, 18)
# Rig index of each H36M-17 joint, in H36M-17 order.
RIG_OF_H36M = tuple(RIG_JOINTS.index(name) for name in H36M17.joints)

# Joints scored by the accuracy target: pelvis, hips, knees, ankles, shoulders, elbows, wrists.
H36M_LIMB_JOINTS = (0, 1, 2, 3, 4, 5, 6, 11, 12, 13, 14, 15, 16)


def get_skeleton(name: str) -> Skeleton:
    """Look a skeleton up by its file name (``h36m17`` or ``coco17``)."""
    try:
        return SKELETONS[name]
    except KeyError:
        raise ConfigError(f"unknown keypoint format {name!r}; expected one of {sorted(SKELETONS)}") from None
