"""Long-term pose bank (paper 003): similarity, greedy insertion/eviction, symmetric fusion, online causality."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pipeline.config import from_dict
from pipeline.errors import ConfigError
from pipeline.lifting.bank import (
    FusionPlan,
    PoseBank,
    PoseBankConfig,
    fused_windows,
    infer_with_bank,
    lift_windows,
    normalize_for_similarity,
    plan_fusion,
    pose_similarity,
    window_sources,
)
from pipeline.lifting.model import LifterConfig, TemporalModel, infer
from pipeline.run import LiftStageConfig
from pipeline.skeleton import H36M17
from tests.support.synth import STANDING, randomize_bn

BASE = STANDING[:, :2] * np.array([1.0, -1.0])  # (17, 2) the standing figure in image axes (y down)


def _rotate(points: np.ndarray, pivot: np.ndarray, angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return (points - pivot) @ np.array([[c, s], [-s, c]]) + pivot


def swinging(frames: int, period: float = 40.0, seed: int = 0) -> np.ndarray:
    """(T, 17, 2) image-plane poses: arms and legs swinging widely, drifting across the image, periodic."""
    rng = np.random.default_rng(seed)
    out = np.empty((frames, 17, 2))
    for t in range(frames):
        phase = 2 * np.pi * t / period
        pose = BASE.copy()
        for root, chain, amp in ((11, [12, 13], 1.4), (14, [15, 16], -1.4), (4, [5, 6], 0.6), (1, [2, 3], -0.6)):
            pose[chain] = _rotate(pose[chain], pose[root], amp * np.sin(phase))
        out[t] = 300 * pose + np.array([400 + 2.0 * t, 500]) + rng.normal(0, 0.5, (17, 2))
    return out


def test_similarity_identity_symmetry_invariance():
    rng = np.random.default_rng(0)
    a = BASE + rng.normal(0, 0.05, BASE.shape)
    b = BASE + rng.normal(0, 0.05, BASE.shape)
    assert pose_similarity(a, a) == pytest.approx(1.0)
    assert pose_similarity(a, b) == pytest.approx(pose_similarity(b, a))
    assert pose_similarity(a, b) < 1.0
    moved = 3.7 * a + np.array([120.0, -40.0])  # elsewhere in the image and larger
    assert pose_similarity(moved, b) == pytest.approx(pose_similarity(a, b))
    assert pose_similarity(moved, a) == pytest.approx(1.0)
    batch = pose_similarity(np.stack([a, moved, b]), b)  # broadcasts over leading axes
    np.testing.assert_allclose(batch, [pose_similarity(a, b), pose_similarity(a, b), 1.0])


def test_similarity_is_eq2_after_matching_size():
    """Eq. (2) with A translated onto B's centre and scaled to B's size, computed independently here."""
    rng = np.random.default_rng(1)
    a, b = 2.0 * BASE + rng.normal(0, 0.1, BASE.shape), 5.0 * BASE + rng.normal(0, 0.1, BASE.shape)

    def avg_bone(p):
        return np.mean([np.linalg.norm(p[c] - p[q]) for q, c in H36M17.bones])

    a_trans = (a - a.mean(0)) * avg_bone(b) / avg_bone(a) + b.mean(0)
    expected = 1 - np.linalg.norm(a_trans - b, axis=1).sum() / (17 * avg_bone(b))
    assert pose_similarity(a, b) == pytest.approx(expected)


def test_similarity_decreases_with_pose_difference():
    poses = swinging(11, period=40.0)  # the arms swing further from frame 0 frame after frame
    sims = pose_similarity(poses[:1], poses)
    assert np.all(np.diff(sims) < 0), sims
    assert sims[-1] < 0.7


def _line_pose(x: float) -> np.ndarray:
    """A 'normalised' pose whose joints all sit at (x, 0): eq. (2) between two of them is 1 - |x_a - x_b|."""
    return np.tile([x, 0.0], (17, 1))


def test_greedy_insertion_and_eviction_known_answer():
    bank = PoseBank(capacity=3, threshold=0.7)
    xs = [0.0, 0.1, 0.5, 1.0, 2.0, 1.2, 3.0, -1.0]
    entered = [bank.offer(i, _line_pose(x)) for i, x in enumerate(xs)]
    # 0.1 and 1.2 are within 0.3 of a stored pose (similarity >= 0.7); the rest enter. Full at frame 3 with
    # AS = [0.5, 1.0, 0.5]: 2.0 evicts frame 2 (x=0.5); 3.0 evicts frame 3 (x=1.0, AS 0 vs -1);
    # -1.0 evicts frame 4 (x=2.0, AS -1 vs -3 and -2).
    assert entered == [True, False, True, True, True, False, True, True]
    assert sorted(bank.frames.tolist()) == [0, 6, 7]
    acc = dict(zip(bank.frames.tolist(), bank.accumulated.tolist()))
    assert acc == pytest.approx({0: -2.0, 6: -5.0, 7: -3.0})


def test_bank_capacity_threshold_and_accumulated_similarity():
    poses = normalize_for_similarity(swinging(400, period=57.0) + np.random.default_rng(2).normal(0, 8, (400, 17, 2)))[0]
    for capacity in (5, 80):
        bank = PoseBank(capacity, threshold=0.7)
        for t, pose in enumerate(poses):
            sims = bank.similarities(pose)
            entered = bank.offer(t, pose)
            assert entered == (len(sims) == 0 or sims.max() < 0.7)
            assert bank.size <= capacity
        stored = poses[bank.frames]
        pair = pose_similarity(stored[:, None], stored[None])
        assert np.all(pair[~np.eye(len(stored), dtype=bool)] < 0.7)
        np.testing.assert_allclose(bank.accumulated, pair.sum(1) - np.diag(pair), atol=1e-9)
    assert bank.size > 5  # the capacity-5 bank filled and evicted; the large one kept more


def test_window_layout_is_alternately_symmetric():
    offsets, ranks = window_sources(np.array([4]), 9, causal=False)
    # [t-2, t-1, D3, D1, t, D2, D4, t+1, t+2]: best pair innermost, window frames pushed outwards in order.
    assert offsets[0].tolist() == [-2, -1, 0, 0, 0, 0, 0, 1, 2]
    assert ranks[0].tolist() == [-1, -1, 2, 0, -1, 1, 3, -1, -1]
    offsets, ranks = window_sources(np.arange(0, 27, 2), 27, causal=False)
    mirror = slice(None, None, -1)
    np.testing.assert_array_equal(ranks >= 0, (ranks >= 0)[:, mirror])      # bank slots mirror each other
    np.testing.assert_array_equal(offsets, -offsets[:, mirror])             # window frames mirror each other
    left, right = ranks[:, :13], ranks[:, 14:][:, mirror]
    np.testing.assert_array_equal(right[left >= 0], left[left >= 0] + 1)    # left takes ranks 0,2,.. right 1,3,..
    offsets, ranks = window_sources(np.array([3]), 9, causal=True)
    assert offsets[0].tolist() == [-5, -4, -3, -2, -1, 0, 0, 0, 0]
    assert ranks[0].tolist() == [-1, -1, -1, -1, -1, 2, 1, 0, -1]


def test_fusion_inserts_pairs_of_distant_similar_poses():
    poses = swinging(300)
    for mode in ("online", "offline"):
        plan = plan_fusion(poses, PoseBankConfig(mode=mode), receptive_field=27)
        counts = plan.counts
        assert counts.max() >= 2 and np.all(counts % 2 == 0)
        t, k = np.nonzero(plan.sources >= 0)
        assert np.all(np.abs(plan.sources[t, k] - t) > 13)                # never a frame already in the window
        assert np.all(plan.similarity[t, k] >= 0.7)
        assert np.all(np.diff(np.nan_to_num(plan.similarity, nan=-9), axis=1) <= 0)  # best first
        if mode == "online":
            assert np.all(plan.sources[t, k] < t) and counts[:14].sum() == 0
    capped = plan_fusion(poses, PoseBankConfig(mode="offline", fusion_threshold=0.0, max_fused=2), 27)
    assert capped.counts.max() == 2


def test_equal_bank_poses_leave_the_input_unchanged():
    still = np.tile(BASE * 200 + 300, (60, 1, 1))
    frames = np.arange(20, 40)
    sources = np.full((60, 2), -1)
    sources[frames] = [[2, 55]]
    plan = FusionPlan(sources, np.where(sources >= 0, 1.0, np.nan), np.array([2, 55]))
    torch.manual_seed(0)
    model = randomize_bn(TemporalModel(LifterConfig(filter_widths=(3, 3, 3), channels=16)))
    got_frames, windows = fused_windows(still, plan, 27)
    np.testing.assert_array_equal(got_frames, frames)
    np.testing.assert_allclose(windows, np.broadcast_to(still[:27], windows.shape), atol=1e-9)
    # A pose of the same shape elsewhere and larger is put onto the centre frame: still unchanged.
    moved = still.copy()
    moved[[2, 55]] = 1.8 * moved[[2, 55]] + 250.0
    np.testing.assert_allclose(fused_windows(moved, plan, 27)[1], windows, atol=1e-9)
    x = (still / 500.0 - 1.0).astype(np.float32)
    np.testing.assert_allclose(lift_windows(model, fused_windows(x, plan, 27)[1]), infer(model, x)[frames], atol=1e-5)


def test_online_bank_never_uses_future_frames():
    torch.manual_seed(0)
    model = randomize_bn(TemporalModel(LifterConfig(filter_widths=(3, 3, 3), channels=16)))
    poses = (swinging(240) / 640.0 - 1.0).astype(np.float32)
    future = poses.copy()
    future[150:] = (swinging(90, period=23.0, seed=5) / 500.0 - 0.9).astype(np.float32)
    config = PoseBankConfig(mode="online")
    plan, changed = plan_fusion(poses, config, 27), plan_fusion(future, config, 27)
    assert plan.counts[:150].sum() > 0
    np.testing.assert_array_equal(plan.sources[:150], changed.sources[:150])
    a, b = infer_with_bank(model, poses, config), infer_with_bank(model, future, config)
    np.testing.assert_array_equal(a[: 150 - 13], b[: 150 - 13])  # the window itself reaches 13 frames ahead
    assert not np.allclose(a, infer(model, poses))                   # the bank did change the output


def _arms_up(angle: float) -> np.ndarray:
    pose = BASE.copy()
    for root, chain, sign in ((11, [12, 13], 1.0), (14, [15, 16], -1.0)):
        pose[chain] = _rotate(pose[chain], pose[root], sign * angle)
    return pose


def test_offline_bank_uses_later_frames():
    """Poses P0, P1, P2 with P1 similar to both others (0.8) and P0, P2 not (< 0.7): P1 never enters the bank,
    so only the offline bank, which has seen P2 by then, gives P1's frames a pair to fuse."""
    lo, hi = 0.0, 1.5
    for _ in range(50):  # the arm angle whose pose has similarity 0.8 to the rest pose
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if pose_similarity(_arms_up(0.0), _arms_up(mid)) > 0.8 else (lo, mid)
    steps = [_arms_up(k * lo) for k in (0, 1, 2)]
    assert pose_similarity(steps[0], steps[2]) < 0.7 <= pose_similarity(steps[1], steps[2])
    poses = np.concatenate([np.tile(p * 300 + 400, (50, 1, 1)) for p in steps])
    poses += np.random.default_rng(0).normal(0, 0.01, poses.shape)
    online = plan_fusion(poses, PoseBankConfig(mode="online"), 27)
    offline = plan_fusion(poses, PoseBankConfig(mode="offline"), 27)
    assert sorted(offline.bank_frames.tolist()) == [0, 100]
    assert online.counts[50:100].sum() == 0
    assert np.all(np.sort(offline.sources[64:87, :2], axis=1) == [0, 100])


def test_causal_lifter_with_online_bank_is_causal():
    torch.manual_seed(1)
    model = randomize_bn(TemporalModel(LifterConfig(filter_widths=(3, 3), channels=16, causal=True)))
    poses = (swinging(200) / 640.0 - 1.0).astype(np.float32)
    future = poses.copy()
    future[120:] += 0.2
    config = PoseBankConfig(mode="online")
    assert plan_fusion(poses, config, 9, causal=True).counts[:120].sum() > 0
    np.testing.assert_array_equal(infer_with_bank(model, poses, config)[:120],
                                  infer_with_bank(model, future, config)[:120])


def test_config_checks_and_yaml():
    with pytest.raises(ConfigError, match="mode"):
        PoseBankConfig(mode="sometimes")
    with pytest.raises(ConfigError, match="even"):
        PoseBankConfig(max_fused=3)
    stage = from_dict(LiftStageConfig, {"pose_bank": {"mode": "online", "capacity": 40}}, "run.yaml:lift")
    assert stage.pose_bank == PoseBankConfig(mode="online", capacity=40)
    with pytest.raises(ConfigError, match="threshold"):
        from_dict(LiftStageConfig, {"pose_bank": {"treshold": 0.5}}, "run.yaml:lift")
    model = TemporalModel(LifterConfig(filter_widths=(3,), channels=8))
    x = (swinging(50) / 640.0 - 1.0).astype(np.float32)
    np.testing.assert_array_equal(infer_with_bank(model, x, PoseBankConfig()), infer(model, x))
