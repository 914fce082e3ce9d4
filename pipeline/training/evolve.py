"""Evolutionary pose augmentation (paper 004, after Li et al. 2020): new training windows bred from old ones.

Representation: a pose is its pelvis position plus the 16 bone vectors of the H36M-17 kinematic tree
(:data:`pipeline.skeleton.H36M17`), bone k running from joint parent(k) to joint k. Two body frames are
built per frame from the torso, as 3x3 matrices whose columns are the subject's left, up and forward
(right-handed, so forward = left x up): the pelvis frame from the hip line and the pelvis->spine bone, the
chest frame from the shoulder line and the spine->thorax bone.

Operators (paper 004, section 3.2):

* Crossover transplants one sub-tree of the kinematic tree (:data:`PARTS`: an arm, a leg, neck and head, or
  everything above the spine joint) from a donor into a receiver. Each transplanted bone keeps its direction
  in the body frame its sub-tree hangs from (chest for arms and head, pelvis for legs and the upper body),
  re-expressed in the receiver's frame, so a swapped arm attaches to the receiver's chest the way it was
  attached to the donor's. It takes the receiver's bone length, so a child keeps one real person's
  left/right-symmetric proportions (``AugmentConfig.bone_scale`` varies proportions separately).
* Mutation rotates one bone, with its descendants carried along, about its parent joint by a random rotation
  (uniform axis, angle ~ N(0, sigma)) fixed in the pelvis frame. The bones of the rigid pelvis (hips,
  spine base) and shoulder girdle define the body frames and are never mutated (:data:`MUTABLE`).
* Natural selection rejects a child if any of its frames breaks a joint-angle limit (:func:`limit_violations`)
  or sinks below the floor its receiving parent stands on. Paper 004 takes its limits from Akhter & Black
  (2015), which are learned from data we do not have; :data:`LIMITS` states explicit anatomical ones instead.

Windows, not single poses: paper 004 evolves single poses, but the lifter learns from temporal windows. We
evolve whole windows on the fly inside :meth:`pipeline.training.dataset.PoseWindows.sample`: the same sub-tree is
transplanted frame by frame from a time-aligned donor window and the same body-frame rotation mutates every
frame, so an offspring's frames are smooth functions of its parents' frames and it moves as smoothly as they
do; selection tests every frame. On the fly rather than an offline pool because it needs no memory, never
shows the same child twice, and composes with multi-rate sampling, bone scaling, flips and the virtual
cameras that follow it. Algorithm 1's growing population (children join the pool parents are drawn from)
is mirrored by drawing donors from the current batch, earlier generations' offspring included, and by
breeding each evolved window for ``generations`` rounds; a rejected child is dropped and its parent kept.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from pipeline.errors import ShapeError
from pipeline.skeleton import H36M17
from pipeline.training.config import EvolveConfig

_J = H36M17.num_joints
_PARENT = torch.tensor([max(p, 0) for p in H36M17.parents])   # the root is its own parent: zero bone
_JOINT = {name: i for i, name in enumerate(H36M17.joints)}


def _ancestry() -> torch.Tensor:
    """(J, J) matrix: entry (c, k) is 1 when bone k (ending at joint k) lies on the root-to-c path."""
    a = torch.zeros(_J, _J)
    for c in range(_J):
        k = c
        while H36M17.parents[k] >= 0:
            a[c, k] = 1.0
            k = H36M17.parents[k]
    return a


ANCESTRY = _ancestry()
# (J, J) bone operator: joints (..., J) @ _BONES gives each joint minus its parent (a matrix product is far
# cheaper than gathering parents along the last axis).
_BONES = torch.eye(_J) - F.one_hot(_PARENT, _J).float().T
_BONES[:, 0] = 0.0

# Crossover units: (name, bones taken from the donor, True when they hang from the chest frame).
PARTS = (
    ("right_arm", (15, 16), True),
    ("left_arm", (12, 13), True),
    ("right_leg", (2, 3), False),
    ("left_leg", (5, 6), False),
    ("neck_head", (9, 10), True),
    ("upper_body", tuple(range(8, 17)), False),
)
_PART_MASK = torch.tensor([[k in bones for k in range(_J)] for _, bones, _ in PARTS])
_PART_CHEST = torch.tensor([chest for _, _, chest in PARTS])
# Bones a mutation may turn: thighs, shins, upper spine, neck, head, upper arms, forearms.
MUTABLE = (2, 3, 5, 6, 8, 9, 10, 12, 13, 15, 16)

# Joint-angle limits: (name, degrees, rationale). Starting points are clinical normal ranges of motion (AAOS
# tables, e.g. Norkin & White, "Measurement of Joint Motion"), widened where joint positions cannot separate a
# joint from its neighbours (a "hip" angle in the pelvis frame includes pelvic tilt; an "elbow" angle uses the
# wrist joint) and where CMU's own athletic motion (kicks, dance, boxing) legitimately goes further: the filter
# must reject impossible bodies, not rare ones, and tests/training/test_evolve.py checks that almost every real
# training frame passes. Elbow hyperextension is not tested: humeral rotation (~180 deg) can put the forearm on
# nearly any side of the upper arm, so it cannot be told from joint positions alone.
LIMITS = (
    ("knee_flexion", 160.0, "thigh-shin angle above it (normal active flexion ~140, passive ~160)"),
    ("knee_hyperextension", 10.0, "knee bent more than this the wrong way: its hinge axis (thigh x shin) "
     "points to the subject's right, which hip rotation (< 90 deg) cannot explain"),
    ("elbow_flexion", 165.0, "upper arm-forearm angle above it (normal flexion ~150; a bones-only skeleton "
     "has no forearm muscle in the way, and CMU dance reaches 160)"),
    ("hip_flexion", 40.0, "thigh within this of the pelvis's up axis (flexion or abduction beyond ~140)"),
    ("hip_extension", 50.0, "thigh more than this behind the pelvis's coronal plane (normal extension ~30)"),
    ("hip_adduction", 40.0, "thigh more than this across the body's midline (normal adduction ~30)"),
    ("shoulder_extension", 65.0, "upper arm more than this behind the chest's coronal plane (normal ~60)"),
    ("shoulder_behind_back", 25.0, "upper arm both behind the chest and across its midline by more than this"),
    ("shoulder_adduction", 55.0, "upper arm more than this across the midline (horizontal adduction ~130-140)"),
    ("neck", 65.0, "thorax->neck more than this from the chest's up axis (flexion ~50, extension ~60)"),
    ("head", 80.0, "neck->head more than this from the thorax->neck direction"),
    ("spine_flexion", 100.0, "spine->thorax more than this from the pelvis's up axis"),
    ("spine_extension", 50.0, "spine->thorax more than this behind the pelvis's up axis (extension ~30-40)"),
    ("spine_lateral", 55.0, "spine->thorax more than this to the side of the pelvis's up axis (~35-45)"),
    ("spine_twist", 65.0, "shoulder line turned more than this from the hip line about the up axis (~45-50)"),
)
LIMIT_NAMES = tuple(name for name, _, _ in LIMITS)
_DEG = {name: deg for name, deg, _ in LIMITS}

# Internally vectors are component-first, (3, ...): dot products and norms then add three slabs instead of
# reducing over a size-3 last axis, which is what keeps evolution cheap next to a training step.


def _dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]


def _unit(a: torch.Tensor) -> torch.Tensor:
    return a / _dot(a, a).sqrt().clamp_min(1e-9)


def _cross(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.stack([a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]])


def _cos(deg: float) -> float:
    return math.cos(math.radians(deg))


def _sin(deg: float) -> float:
    return math.sin(math.radians(deg))


Frame = tuple[torch.Tensor, torch.Tensor, torch.Tensor]   # (left, up, forward) unit vectors, each (3, ...)


def _frame(left: torch.Tensor, up: torch.Tensor) -> Frame:
    lt = _unit(left)
    u = _unit(up - _dot(up, lt) * lt)
    return lt, u, _cross(lt, u)


def _body_frames(q: torch.Tensor) -> tuple[Frame, Frame]:
    """Pelvis and chest frames of component-first joints q (3, ..., J)."""
    j = _JOINT
    pelvis = _frame(q[..., j["l_hip"]] - q[..., j["r_hip"]], q[..., j["spine"]] - q[..., j["pelvis"]])
    chest = _frame(q[..., j["l_shoulder"]] - q[..., j["r_shoulder"]], q[..., j["thorax"]] - q[..., j["spine"]])
    return pelvis, chest


def body_frames(joints: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Pelvis and chest frames of poses (..., J, 3): two (..., 3, 3) rotations, columns left, up, forward."""
    return tuple(torch.stack(f, dim=0).movedim((0, 1), (-1, -2)) for f in _body_frames(joints.movedim(-1, 0)))


def _local(frame: Frame, v: torch.Tensor) -> torch.Tensor:
    """(3, ...) coordinates (left, up, forward) of unit(v) (3, ...) in a frame."""
    v = _unit(v)
    return torch.stack([_dot(axis, v) for axis in frame])


def _angle(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Angle between (3, ...) vectors, degrees."""
    return torch.rad2deg(torch.arccos(_dot(_unit(a), _unit(b)).clamp(-1.0, 1.0)))


def _pick(bones: torch.Tensor, index: tuple[int, ...]) -> torch.Tensor:
    return torch.stack([bones[..., i] for i in index], dim=-1)


def _leg_violations(bones: torch.Tensor, pelvis: Frame) -> dict[str, torch.Tensor]:
    """Knee and hip rules for both legs at once; bones (3, ..., J); each entry (...,) bool."""
    thigh, shin = _pick(bones, (2, 5)), _pick(bones, (3, 6))                             # right, left
    outward = torch.tensor([-1.0, 1.0])                                                   # subject's right, left
    pelvis = tuple(axis[..., None] for axis in pelvis)
    flex = _angle(thigh, shin)
    # A knee flexes about the subject's left axis (thigh x shin points left); hip rotation turns that axis by
    # well under 90 deg, so an axis pointing right means the knee bends backwards.
    hinge = _dot(_cross(thigh, shin), pelvis[0])
    d = _local(pelvis, thigh)
    rules = {"knee_flexion": flex > _DEG["knee_flexion"],
             "knee_hyperextension": (flex > _DEG["knee_hyperextension"]) & (hinge < 0.0),
             "hip_flexion": d[1] > _cos(_DEG["hip_flexion"]), "hip_extension": d[2] < -_sin(_DEG["hip_extension"]),
             "hip_adduction": outward * d[0] < -_sin(_DEG["hip_adduction"])}
    return {name: r.any(-1) for name, r in rules.items()}


def _arm_violations(bones: torch.Tensor, chest: Frame) -> dict[str, torch.Tensor]:
    """Elbow and shoulder rules for both arms at once; bones (3, ..., J); each entry (...,) bool."""
    upper, fore = _pick(bones, (15, 12)), _pick(bones, (16, 13))                         # right, left
    d = _local(tuple(axis[..., None] for axis in chest), upper)
    lateral = torch.tensor([-1.0, 1.0]) * d[0]
    behind = _sin(_DEG["shoulder_behind_back"])
    rules = {"elbow_flexion": _angle(upper, fore) > _DEG["elbow_flexion"],
             "shoulder_extension": d[2] < -_sin(_DEG["shoulder_extension"]),
             "shoulder_behind_back": (lateral < -behind) & (d[2] < -behind),
             "shoulder_adduction": lateral < -_sin(_DEG["shoulder_adduction"])}
    return {name: r.any(-1) for name, r in rules.items()}


def _trunk_violations(bones: torch.Tensor, pelvis: Frame, chest: Frame) -> dict[str, torch.Tensor]:
    """Neck, head and spine rules; bones (3, ..., J); each entry (...,) bool."""
    j = _JOINT
    neck, head, upper = bones[..., j["neck"]], bones[..., j["head"]], bones[..., j["thorax"]]
    s = _local(pelvis, upper)
    shoulders = _local(pelvis, chest[0])
    twist = torch.rad2deg(torch.atan2(shoulders[2], shoulders[0])).abs()
    return {"neck": _angle(neck, chest[1]) > _DEG["neck"], "head": _angle(head, neck) > _DEG["head"],
            "spine_flexion": _angle(upper, pelvis[1]) > _DEG["spine_flexion"],
            "spine_extension": s[2] < -_sin(_DEG["spine_extension"]),
            "spine_lateral": s[0].abs() > _sin(_DEG["spine_lateral"]), "spine_twist": twist > _DEG["spine_twist"]}


def _violations(q: torch.Tensor) -> torch.Tensor:
    pelvis, chest = _body_frames(q)
    bones = _over_joints(q, _BONES)
    rules = {**_leg_violations(bones, pelvis), **_arm_violations(bones, chest),
             **_trunk_violations(bones, pelvis, chest)}
    return torch.stack([rules[name] for name in LIMIT_NAMES], dim=-1)


def limit_violations(joints: torch.Tensor) -> torch.Tensor:
    """Which joint-angle limits each pose breaks (natural selection's test).

    Args:
        joints: (..., 17, 3) H36M-17 positions in metres, any right-handed frame.

    Returns:
        (..., len(LIMITS)) bool, True where the pose breaks that limit (order of :data:`LIMIT_NAMES`).
    """
    if joints.shape[-2:] != (_J, 3):
        raise ShapeError(f"limit_violations: expected (..., {_J}, 3) joints, got {tuple(joints.shape)}")
    return _violations(joints.movedim(-1, 0))


def bone_vectors(joints: torch.Tensor) -> torch.Tensor:
    """(..., J, 3) joint positions -> (..., J, 3) bone vectors; entry k is joint k minus its parent (root: 0)."""
    return joints - joints[..., _PARENT, :]


def from_bones(root: torch.Tensor, bones: torch.Tensor) -> torch.Tensor:
    """Forward kinematics: root (..., 3) and bone vectors (..., J, 3) -> joint positions (..., J, 3)."""
    return root[..., None, :] + torch.einsum("ck,...kd->...cd", ANCESTRY.to(bones.dtype), bones)


def _over_joints(q: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    """q (..., J) @ matrix (J, J) as one 2-D matrix product (a batched one is several times slower)."""
    return (q.reshape(-1, _J) @ matrix.to(q.dtype)).view(q.shape)


def _fk(q: torch.Tensor, bones: torch.Tensor) -> torch.Tensor:
    """Component-first forward kinematics: q's root (3, N, T) plus bones (3, N, T, J) -> joints (3, N, T, J)."""
    return q[..., :1] + _over_joints(bones, ANCESTRY.T)


def _to_frame(frame: Frame, local: torch.Tensor) -> torch.Tensor:
    """World vectors (3, ...) from coordinates local (3, ...) in a frame (axes broadcast over trailing dims)."""
    return frame[0] * local[0] + frame[1] * local[1] + frame[2] * local[2]


def _crossover(qr: torch.Tensor, qd: torch.Tensor, part: torch.Tensor) -> torch.Tensor:
    """Component-first :func:`crossover`: receiver, donor (3, N, T, J) -> child (3, N, T, J)."""
    rb, db = _over_joints(qr, _BONES), _over_joints(qd, _BONES)
    chest = _PART_CHEST[part][:, None]
    (r_pelvis, r_chest), (d_pelvis, d_chest) = _body_frames(qr), _body_frames(qd)
    r_frame = tuple(torch.where(chest, c, p)[..., None] for c, p in zip(r_chest, r_pelvis))
    d_frame = tuple(torch.where(chest, c, p)[..., None] for c, p in zip(d_chest, d_pelvis))
    # A donor bone's coordinates in the donor's body frame, put back in the receiver's frame, receiver's length.
    moved = _to_frame(r_frame, _local(d_frame, db)) * _dot(rb, rb).sqrt()
    return _fk(qr, torch.where(_PART_MASK[part][:, None], moved, rb))


def crossover(receiver: torch.Tensor, donor: torch.Tensor, part: torch.Tensor) -> torch.Tensor:
    """Transplant one sub-tree per window from a donor into a receiver (see the module docstring).

    Args:
        receiver, donor: (N, T, J, 3) time-aligned windows, metres.
        part: (N,) int64 indices into :data:`PARTS`.

    Returns:
        (N, T, J, 3) children: the receiver's pelvis path and bone lengths, the donor's bone directions
        (relative to its chest or pelvis frame) on the transplanted sub-tree.
    """
    return _crossover(receiver.movedim(-1, 0), donor.movedim(-1, 0), part).movedim(0, -1)


def axis_angle(axis: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    """Rotation matrices (N, 3, 3) from unit axes (N, 3) and angles (N,) in radians (Rodrigues)."""
    x, y, z = axis.unbind(-1)
    zero = torch.zeros_like(x)
    k = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], -1).view(-1, 3, 3)
    s, c = torch.sin(angle)[:, None, None], torch.cos(angle)[:, None, None]
    return torch.eye(3, dtype=axis.dtype) + s * k + (1.0 - c) * (k @ k)


def _mutate(q: torch.Tensor, bone: torch.Tensor, rotation: torch.Tensor) -> torch.Tensor:
    """Component-first :func:`mutate`: windows (3, N, T, J) -> (3, N, T, J)."""
    bones = _over_joints(q, _BONES)
    pelvis = tuple(axis[..., None] for axis in _body_frames(q)[0])
    local = _local(pelvis, bones) * _dot(bones, bones).sqrt()
    # rotation[n] @ local: row i of the (N, 3, 3) matrices, broadcast over frames and bones.
    turned = torch.stack([(rotation[:, i].T[:, :, None, None] * local).sum(0) for i in range(3)])
    mask = ANCESTRY[:, bone].T.bool()[:, None]
    return _fk(q, torch.where(mask, _to_frame(pelvis, turned), bones))


def mutate(windows: torch.Tensor, bone: torch.Tensor, rotation: torch.Tensor) -> torch.Tensor:
    """Rotate one bone per window, its descendants carried along, about the bone's parent joint.

    Args:
        windows: (N, T, J, 3) metres.
        bone: (N,) int64 bone index (the joint the bone ends at), e.g. one of :data:`MUTABLE`.
        rotation: (N, 3, 3) rotation given in the pelvis frame; the same for every frame of a window.

    Returns:
        (N, T, J, 3) mutated windows; bones outside the bone's sub-tree are unchanged.
    """
    return _mutate(windows.movedim(-1, 0), bone, rotation).movedim(0, -1)


@dataclass(frozen=True)
class Evolved:
    """A batch after evolution.

    Attributes:
        windows: (B, T, J, 3) world metres, Y up: evolved windows in place of their originals.
        chosen: (B,) bool, the windows picked for evolution (``EvolveConfig.fraction`` of them).
        accepted: (B,) int64, how many generations' offspring passed selection and replaced the window.
    """

    windows: torch.Tensor
    chosen: torch.Tensor
    accepted: torch.Tensor

    def __post_init__(self) -> None:
        b = self.windows.shape[0]
        if self.windows.dim() != 4 or self.windows.shape[2:] != (_J, 3):
            raise ShapeError(f"Evolved.windows must be (B, T, {_J}, 3), got {tuple(self.windows.shape)}")
        if self.chosen.shape != (b,) or self.accepted.shape != (b,):
            raise ShapeError(f"Evolved: chosen/accepted must be ({b},), got {tuple(self.chosen.shape)}, "
                             f"{tuple(self.accepted.shape)}")


def _breed(q: torch.Tensor, idx: torch.Tensor, config: EvolveConfig, gen: torch.Generator) -> torch.Tensor:
    """One generation's children (3, n, T, J) for the windows idx (n,) of the population q (3, B, T, J)."""
    n, b = len(idx), q.shape[1]
    donor = (idx + torch.randint(1, b, (n,), generator=gen)) % b                  # never the window itself
    child = _crossover(q[:, idx], q[:, donor], torch.randint(len(PARTS), (n,), generator=gen))
    bone = torch.tensor(MUTABLE)[torch.randint(len(MUTABLE), (n,), generator=gen)]
    axis = F.normalize(torch.randn(n, 3, generator=gen), dim=-1)
    angle = torch.randn(n, generator=gen) * math.radians(config.mutation_sigma_deg)
    return _mutate(child, bone, axis_angle(axis, angle))


def evolve_windows(windows: torch.Tensor, config: EvolveConfig, gen: torch.Generator) -> Evolved:
    """Breed a fraction of a batch of windows by crossover, mutation and natural selection (paper 004).

    Args:
        windows: (B, T, J, 3) world metres, Y up (the floor is the lowest point each window reaches).
        config: Fraction, generations, mutation sigma and floor tolerance.
        gen: Random generator (CPU).

    Returns:
        :class:`Evolved`; windows not chosen, and chosen ones whose every child was rejected, are unchanged.
    """
    b = windows.shape[0]
    chosen = torch.rand(b, generator=gen) < config.fraction
    accepted = torch.zeros(b, dtype=torch.long)
    idx = chosen.nonzero()[:, 0]
    if b < 2 or len(idx) == 0:
        return Evolved(windows.clone(), chosen, accepted)
    q = windows.permute(3, 0, 1, 2).contiguous()
    floor = q[1, idx].amin(dim=(1, 2)) - config.floor_tolerance
    for _ in range(config.generations):
        child = _breed(q, idx, config, gen)
        # Natural selection: every frame within the joint limits, no joint sunk through the parent's floor.
        keep = ~_violations(child).any(dim=-1).any(dim=-1) & (child[1].amin(dim=(1, 2)) >= floor)
        q[:, idx[keep]] = child[:, keep]
        accepted[idx[keep]] += 1
    return Evolved(q.permute(1, 2, 3, 0).contiguous(), chosen, accepted)
