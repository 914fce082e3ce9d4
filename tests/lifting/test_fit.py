"""One skeleton per person (pipeline/lifting/rig.py, fit.py): constant bones, rotations, locked feet."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from pipeline.errors import ConfigError, ShapeError
from pipeline.lifting import rig
from pipeline.lifting.fit import FitConfig, FootLock, fit_skeleton, lock_feet, rotation_6d, run_starts
from pipeline.skeleton import H36M17, RIG_JOINTS
from pipeline.types import SkeletonFit
from tests.support.synth import moving_person

PARENTS = np.array(H36M17.parents)


def _camera_poses(frames: int, seed: int = 0, jitter: float = 0.05) -> np.ndarray:
    """(T, 17, 3) pelvis-relative camera-frame joints (y down) of a moving person."""
    poses = moving_person(frames, seed=seed, jitter=jitter) * np.array([1.0, -1.0, 1.0])
    return (poses - poses[:, :1]).astype(np.float32)


def _bones(poses: np.ndarray) -> np.ndarray:
    return np.linalg.norm(poses[:, 1:] - poses[:, PARENTS[1:]], axis=-1)


def _rig_poses(frames: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Joints a rig can make exactly: random hinge-respecting rotations, smooth over time. Returns (poses, offsets)."""
    rng = np.random.default_rng(seed)
    base = _camera_poses(frames, seed)
    offsets = rig.rest_offsets(base.astype(np.float64), rig.bone_lengths(base))
    t = np.linspace(0, 1, frames)[:, None]
    rotations = np.tile(np.eye(3), (frames, len(RIG_JOINTS), 1, 1))
    for j in set(rig.BALLS) - set(rig.HELPERS):   # the helpers (lower back, collars) rest, as the fit prefers
        axis = rng.normal(size=3)
        rotations[:, j] = Rotation.from_rotvec(axis / np.linalg.norm(axis) * (0.3 + 0.6 * t)).as_matrix()
    for j in rig.HINGE_X:       # knees bend forward-positive about x
        rotations[:, j] = Rotation.from_rotvec((0.3 + 0.8 * np.sin(3 * t)) * [1.0, 0.0, 0.0]).as_matrix()
    for j, sign in zip(rig.HINGE_Y, (-1.0, 1.0)):   # left elbow negative about y, right positive
        rotations[:, j] = Rotation.from_rotvec(sign * (0.2 + 0.5 * t) * [0.0, 1.0, 0.0]).as_matrix()
    positions, _ = rig.forward_kinematics(torch.from_numpy(rotations), torch.from_numpy(offsets))
    return rig.to_h36m(positions.numpy()).astype(np.float32), offsets


def test_bone_lengths_are_robust_and_symmetric():
    poses = _camera_poses(100)
    lengths = rig.bone_lengths(poses)
    assert lengths[0] == 0 and np.allclose(lengths[list(H36M17.left)], lengths[list(H36M17.right)])
    spoiled = poses.copy()
    spoiled[:10, 3] += 0.5        # ten frames with a wild right ankle do not move a median
    assert np.allclose(rig.bone_lengths(spoiled), lengths, atol=0.01)
    trust = np.ones((100, 17))
    trust[:10, 3] = 0.0           # nor do they count at all when their 2D was unsure
    assert abs(rig.bone_lengths(spoiled, trust)[3] - lengths[3]) < abs(rig.bone_lengths(spoiled)[3] - lengths[3]) + 1e-6
    with pytest.raises(ShapeError):
        rig.bone_lengths(poses[:, :16])


def test_rotation_6d_makes_rotations():
    r = rotation_6d(torch.randn(50, 6, dtype=torch.float64))
    assert torch.allclose(r @ r.transpose(-1, -2), torch.eye(3, dtype=torch.float64).expand(50, 3, 3), atol=1e-9)
    assert torch.allclose(torch.linalg.det(r), torch.ones(50, dtype=torch.float64))


def test_a_rig_motion_is_recovered_to_the_millimetre():
    poses, offsets = _rig_poses(60, seed=2)
    fit = fit_skeleton(poses, 50.0, FitConfig(smoothness=0.0, iterations=150))
    error = np.linalg.norm(fit.poses3d - poses, axis=-1)
    assert error.mean() < 0.001 and error.max() < 0.005, (error.mean(), error.max())
    assert np.allclose(fit.bone_lengths, np.linalg.norm(offsets[list(rig.OF_H36M)], axis=-1), atol=1e-4)
    # The fitted knees bend forward-positive, as the hinge limits require.
    knees = fit.rotations[:, list(rig.HINGE_X)]
    assert (np.arctan2(knees[..., 2, 1], knees[..., 1, 1]) > -1e-3).all()


def test_fitted_bones_are_constant_and_the_fit_stays_close():
    poses = _camera_poses(120, seed=1, jitter=0.03)
    fit = fit_skeleton(poses, 30.0)
    assert isinstance(fit, SkeletonFit) and fit.rotations.shape == (120, 20, 3, 3)
    bones = _bones(fit.poses3d)
    assert (bones.std(0) / bones.mean(0)).max() < 1e-4 and (_bones(poses).std(0) / _bones(poses).mean(0)).max() > 0.01
    assert np.allclose(bones.mean(0), fit.bone_lengths[1:], atol=1e-5)
    assert np.linalg.norm(fit.poses3d - poses, axis=-1).mean() < 0.03
    r = fit.rotations
    assert np.allclose(r @ np.swapaxes(r, -1, -2), np.eye(3), atol=1e-5)


def test_smoothness_calms_jitter_but_not_across_a_gap():
    clean, _ = _rig_poses(80, seed=3)
    noisy = clean + np.random.default_rng(0).normal(0, 0.01, clean.shape).astype(np.float32)
    loose = fit_skeleton(noisy, 50.0, FitConfig(smoothness=0.0))
    smooth = fit_skeleton(noisy, 50.0, FitConfig(smoothness=0.05))
    error = [np.linalg.norm(f.poses3d - clean, axis=-1).mean() for f in (loose, smooth)]
    assert error[1] < error[0]
    jump = np.concatenate([clean[:40], clean[:40]])   # the person resumes elsewhere after a gap
    frames = np.concatenate([np.arange(40), np.arange(100, 140)])
    split = fit_skeleton(jump, 50.0, FitConfig(smoothness=0.05), starts=run_starts(frames))
    joined = fit_skeleton(jump, 50.0, FitConfig(smoothness=0.05))
    at_gap = [np.linalg.norm(f.poses3d[38:42] - jump[38:42], axis=-1).mean() for f in (split, joined)]
    assert at_gap[0] < at_gap[1] and list(run_starts(frames)) == [0, 40]


def test_locked_feet_stay_on_their_targets():
    poses = _camera_poses(60, seed=4, jitter=0.02)
    fit = fit_skeleton(poses, 50.0)
    root = np.tile([0.0, 0.0, 4.0], (60, 1)).astype(np.float32)
    ankle = fit.positions[:, RIG_JOINTS.index("r_ankle")] + root
    targets = np.full((60, 2, 3), np.nan)
    targets[10:40, 0] = ankle[25] + [0.05, 0.0, 0.0]          # pinned 5 cm to the side of where it was mid-span
    locked, moved = lock_feet(fit, poses, FootLock(np.eye(3), np.zeros(3), targets, root), 50.0,
                              FitConfig(lock_weight=100.0))
    after = locked.positions[:, RIG_JOINTS.index("r_ankle")] + moved
    before_miss = np.linalg.norm(ankle[10:40] - targets[10:40, 0], axis=-1).mean()
    after_miss = np.linalg.norm(after[10:40] - targets[10:40, 0], axis=-1).mean()
    assert after_miss < 0.3 * before_miss
    assert np.allclose(locked.offsets, fit.offsets)                # bones kept
    assert np.abs(moved - root).max() < 0.2                        # the pelvis moved a little, not away


def test_settings_and_inputs_are_checked():
    with pytest.raises(ConfigError):
        FitConfig(smoothness=-1.0)
    with pytest.raises(ShapeError):
        fit_skeleton(np.full((5, 17, 3), np.nan, np.float32), 30.0)
    with pytest.raises(ShapeError):
        SkeletonFit(np.zeros((20, 3), np.float32), np.zeros((2, 20, 3, 3), np.float32),
                    np.zeros((3, 20, 3), np.float32))
