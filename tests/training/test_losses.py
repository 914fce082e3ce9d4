"""Tests for pipeline/training/losses.py (training losses) and pipeline/evaluation/metrics.py (evaluation protocols)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pipeline.evaluation import metrics
from pipeline.skeleton import H36M17
from pipeline.training.config import LossConfig
from pipeline.training.losses import (
    acceleration_loss,
    bone_lengths,
    bone_loss,
    limb_length_loss,
    mpjpe,
    total_loss,
    velocity_loss,
)
from tests.support.synth import random_rotation, rigid_motion


def ground_truth(b=2, k=5) -> torch.Tensor:
    """(B, K, 17, 3) moving poses with constant bone lengths."""
    return torch.tensor(np.stack([rigid_motion(k, seed=i) for i in range(b)]), dtype=torch.float64)


# --------------------------------------------------------------------------------------------------------------
# losses


def test_ground_truth_has_constant_bones():
    lengths = bone_lengths(ground_truth())
    assert lengths.shape == (2, 5, 16)
    torch.testing.assert_close(lengths, lengths[:, :1].expand_as(lengths))


@pytest.mark.parametrize("k", [1, 2, 3, 5])
def test_every_term_is_zero_on_ground_truth(k):
    gt = ground_truth(k=k)
    terms = total_loss(gt.clone(), gt, LossConfig(bone=1.0))
    for name in ("total", "mpjpe", "velocity", "acceleration", "limb_length", "bone"):
        assert float(getattr(terms, name)) == pytest.approx(0.0, abs=1e-9), name


def test_constant_offset_known_values():
    gt = ground_truth(k=4)
    offset = torch.tensor([0.01, 0.02, -0.02], dtype=gt.dtype)   # |offset| = 3 cm
    pred = gt + offset
    assert float(mpjpe(pred, gt)) == pytest.approx(0.03, rel=1e-9)
    assert float(velocity_loss(pred, gt)) == pytest.approx(0.0, abs=1e-12)
    assert float(acceleration_loss(pred, gt)) == pytest.approx(0.0, abs=1e-12)
    assert float(limb_length_loss(pred)) == pytest.approx(0.0, abs=1e-12)
    terms = total_loss(pred, gt, LossConfig())
    assert float(terms.total) == pytest.approx(0.03, rel=1e-9)


def test_lengthening_bone_known_values():
    """The r_ankle slides along the shin by d per frame: every term has a hand-computed value."""
    d = 0.03
    gt = ground_truth(b=1, k=3)
    knee, ankle = H36M17.index("r_knee"), H36M17.index("r_ankle")
    shin = gt[:, :, ankle] - gt[:, :, knee]
    unit = shin / shin.norm(dim=-1, keepdim=True)
    pred = gt.clone()
    pred[:, :, ankle] += unit * d * torch.arange(3, dtype=gt.dtype)[None, :, None]   # 0, d, 2d longer
    j, k, nb = 17, 3, 16
    # limb: shin lengths l, l+d, l+2d -> deviations from the mean d, 0, d over K*bones entries.
    assert float(limb_length_loss(pred)) == pytest.approx(2 * d / (k * nb), rel=1e-6)
    # position: errors 0, d, 2d on one joint over K*J entries.
    assert float(mpjpe(pred, gt)) == pytest.approx(3 * d / (k * j), rel=1e-6)
    # velocity: the ankle's extra motion has constant length d in both differences... except that the
    # direction of the shin turns with the body; compute it from the definition instead of assuming.
    extra = pred[:, :, ankle] - gt[:, :, ankle]
    expected_vel = float((extra[:, 1:] - extra[:, :-1]).norm(dim=-1).sum() / ((k - 1) * j))
    assert float(velocity_loss(pred, gt)) == pytest.approx(expected_vel, rel=1e-6)
    assert expected_vel == pytest.approx(d / j, rel=0.05)
    expected_acc = float((extra[:, 2] - 2 * extra[:, 1] + extra[:, 0]).norm(dim=-1).sum() / j)
    assert float(acceleration_loss(pred, gt)) == pytest.approx(expected_acc, rel=1e-6, abs=1e-12)
    assert expected_acc < 0.1 * d / j   # nearly zero: the extension grows linearly
    cfg = LossConfig(velocity=2.0, acceleration=10.0, limb_length=1.5)
    terms = total_loss(pred, gt, cfg)
    expected_total = 3 * d / (k * j) + 2.0 * expected_vel + 10.0 * expected_acc + 1.5 * 2 * d / (k * nb)
    assert float(terms.total) == pytest.approx(expected_total, rel=1e-6)


def test_limb_term_on_a_static_pose_with_one_longer_bone_is_zero():
    # A bone that is wrong but constant over time is the position term's business, not the limb term's.
    gt = ground_truth(b=1, k=4)
    pred = gt.clone()
    elbow, wrist = H36M17.index("l_elbow"), H36M17.index("l_wrist")
    pred[:, :, wrist] = gt[:, :, elbow] + 1.1 * (gt[:, :, wrist] - gt[:, :, elbow])
    assert float(limb_length_loss(pred)) == pytest.approx(0.0, abs=1e-12)
    assert float(mpjpe(pred, gt)) > 1e-3


def test_weights_switch_terms_off():
    gt = ground_truth(k=5)
    gen = torch.Generator().manual_seed(0)
    pred = gt + 0.05 * torch.randn(gt.shape, generator=gen, dtype=gt.dtype)
    on = total_loss(pred, gt, LossConfig(velocity=1.0, acceleration=1.0, limb_length=1.0))
    assert on.velocity > 0 and on.acceleration > 0 and on.limb_length > 0
    off = total_loss(pred, gt, LossConfig(velocity=0.0, acceleration=0.0, limb_length=0.0))
    assert float(off.velocity) == float(off.acceleration) == float(off.limb_length) == 0.0
    assert float(off.total) == pytest.approx(float(off.mpjpe))
    only_acc = total_loss(pred, gt, LossConfig(velocity=0.0, acceleration=3.0, limb_length=0.0))
    assert float(only_acc.total) == pytest.approx(float(on.mpjpe + 3.0 * on.acceleration))
    w = LossConfig(velocity=2.0, acceleration=10.0, limb_length=1.5)
    t = total_loss(pred, gt, w)
    assert float(t.total) == pytest.approx(float(t.mpjpe + 2.0 * t.velocity + 10.0 * t.acceleration + 1.5 * t.limb_length))


def test_short_windows_skip_temporal_terms():
    gt = ground_truth(k=2)
    pred = gt + 0.01 * torch.randn(gt.shape, dtype=gt.dtype, generator=torch.Generator().manual_seed(1))
    terms = total_loss(pred, gt, LossConfig())
    assert float(terms.acceleration) == 0.0 and float(terms.velocity) > 0
    one = total_loss(pred[:, :1], gt[:, :1], LossConfig())
    assert float(one.total) == pytest.approx(float(one.mpjpe))


@pytest.mark.parametrize("k", [1, 3])
def test_bone_loss_known_values(k):
    """Paper 004's bone term: mean over bones of the L1 norm of each bone vector's error."""
    gt = ground_truth(b=2, k=k)
    offset = torch.tensor([0.01, 0.02, -0.02], dtype=gt.dtype)          # L1 norm 0.05 m
    wrist, elbow = H36M17.index("r_wrist"), H36M17.index("r_elbow")
    pred = gt.clone()
    pred[:, :, wrist] += offset                        # a leaf: one bone (forearm) off by the offset
    assert float(bone_loss(pred, gt)) == pytest.approx(0.05 / 16, rel=1e-9)
    pred = gt.clone()
    pred[:, :, elbow] += offset                        # a middle joint: upper arm +offset, forearm -offset
    assert float(bone_loss(pred, gt)) == pytest.approx(2 * 0.05 / 16, rel=1e-9)
    # Moving the whole body leaves every bone as it was; MPJPE sees it, the bone term does not.
    assert float(bone_loss(gt + offset, gt)) == pytest.approx(0.0, abs=1e-12)
    terms = total_loss(pred, gt, LossConfig(velocity=0.0, acceleration=0.0, limb_length=0.0, frames=k, bone=2.0))
    assert float(terms.bone) == pytest.approx(2 * 0.05 / 16, rel=1e-9)
    assert float(terms.total) == pytest.approx(float(terms.mpjpe) + 2.0 * 2 * 0.05 / 16, rel=1e-9)
    off = total_loss(pred, gt, LossConfig(velocity=0.0, acceleration=0.0, limb_length=0.0, frames=k))
    assert float(off.bone) == 0.0 and float(off.total) == pytest.approx(float(off.mpjpe))


def test_loss_has_gradients():
    gt = ground_truth(k=3).float()
    pred = (gt + 0.01).requires_grad_(True)
    total_loss(pred, gt, LossConfig(bone=1.0)).total.backward()
    assert pred.grad is not None and torch.isfinite(pred.grad).all() and pred.grad.abs().sum() > 0


# --------------------------------------------------------------------------------------------------------------
# metrics


def poses(n=6, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    p = np.stack([rigid_motion(1, seed=int(s))[0] for s in rng.integers(0, 1000, n)])
    p = p + rng.normal(scale=0.05, size=p.shape)   # make every pose distinct and non-planar
    return p - p[:, :1]


def reference_p_mpjpe(predicted, target):
    """VideoPose3D's common/loss.py p_mpjpe, written out independently."""
    mu_x, mu_y = target.mean(1, keepdims=True), predicted.mean(1, keepdims=True)
    x0, y0 = target - mu_x, predicted - mu_y
    nx, ny = np.sqrt((x0 ** 2).sum((1, 2), keepdims=True)), np.sqrt((y0 ** 2).sum((1, 2), keepdims=True))
    x0, y0 = x0 / nx, y0 / ny
    u, s, vt = np.linalg.svd(np.matmul(x0.transpose(0, 2, 1), y0))
    v = vt.transpose(0, 2, 1)
    r = np.matmul(v, u.transpose(0, 2, 1))
    sign = np.sign(np.expand_dims(np.linalg.det(r), 1))
    v[:, :, -1] *= sign
    s[:, -1] *= sign.flatten()
    r = np.matmul(v, u.transpose(0, 2, 1))
    a = np.expand_dims(np.sum(s, 1, keepdims=True), 2) * nx / ny
    t = mu_x - a * np.matmul(mu_y, r)
    aligned = a * np.matmul(predicted, r) + t
    return np.mean(np.linalg.norm(aligned - target, axis=-1))


def test_mpjpe_known_value():
    target = poses()
    assert metrics.mpjpe(target + np.array([0.0, 0.03, 0.0]), target) == pytest.approx(0.03)
    assert metrics.mpjpe(target, target) == 0.0


def test_p_mpjpe_ignores_similarity_transforms():
    rng = np.random.default_rng(1)
    target = poses()
    moved = np.stack([1.3 * p @ random_rotation(rng).T + rng.normal(size=3) for p in target])
    assert metrics.mpjpe(moved, target) > 0.1
    assert metrics.p_mpjpe(moved, target) < 1e-9
    aligned = metrics.procrustes_align(moved, target)
    np.testing.assert_allclose(aligned, target, atol=1e-9)


def test_p_mpjpe_forbids_reflections():
    target = poses()
    mirrored = target * np.array([-1.0, 1.0, 1.0])
    err = metrics.p_mpjpe(mirrored, target)
    assert err > 0.02, "a mirror image must not be aligned away"
    assert err == pytest.approx(reference_p_mpjpe(mirrored, target), rel=1e-6)


def test_p_mpjpe_matches_videopose3d_on_noisy_predictions():
    rng = np.random.default_rng(2)
    target = poses(10, seed=3)
    pred = np.stack([0.9 * p @ random_rotation(rng).T for p in target]) + rng.normal(scale=0.03, size=target.shape)
    ours = metrics.p_mpjpe(pred, target)
    assert 0.005 < ours < metrics.mpjpe(pred, target)
    assert ours == pytest.approx(reference_p_mpjpe(pred, target), rel=1e-7)


def test_n_mpjpe_ignores_scale_only():
    rng = np.random.default_rng(4)
    target = poses()
    scaled = target * rng.uniform(0.5, 2.0, size=(len(target), 1, 1))
    assert metrics.mpjpe(scaled, target) > 0.01
    assert metrics.n_mpjpe(scaled, target) < 1e-9
    rotated = np.stack([p @ random_rotation(rng).T for p in target])
    assert metrics.n_mpjpe(rotated, target) > 0.05


def test_mpjve():
    target = np.stack([rigid_motion(10, seed=5)])[0]
    assert metrics.mpjve(target + np.array([0.02, 0.0, 0.0]), target) == pytest.approx(0.0, abs=1e-12)
    drift = target + np.arange(10)[:, None, None] * np.array([0.0, 0.0, 0.004])
    assert metrics.mpjve(drift, target) == pytest.approx(0.004)
    assert np.isnan(metrics.mpjve(target[:1], target[:1]))
