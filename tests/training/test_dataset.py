"""Tests for pipeline/training/dataset.py: training windows, camera views, flips, bone rescaling and 2D corruption."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from pipeline.errors import InputError
from pipeline.keypoints import coco_to_h36m, h36m_to_coco, rebuild_torso
from pipeline.skeleton import H36M17
from pipeline.training.config import AugmentConfig, CameraConfig
from pipeline.training.dataset import Clip, PoseWindows, corrupt_2d, rescale_bones, symmetric_bone_scale
from pipeline.training.losses import bone_lengths
from tests.support.synth import moving_person, rigid_motion

RF, K = 9, 3
EXACT = AugmentConfig(flip=0.0, clean_fraction=1.0, bone_scale=0.0, global_scale=0.0)


def clips(lengths=(40, 25, 60)) -> list[Clip]:
    return [Clip(torch.tensor(moving_person(n, seed=i), dtype=torch.float32), f"c{i}", str(i), "walk")
            for i, n in enumerate(lengths)]


def windows(augment=EXACT, causal=False, lengths=(40, 25, 60), rf=RF, k=K) -> PoseWindows:
    return PoseWindows(clips(lengths), rf, k, causal, CameraConfig(), augment)


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


# --------------------------------------------------------------------------------------------------------------
# sample


@pytest.mark.parametrize("causal", [False, True])
def test_sample_shapes_and_pelvis(causal):
    data = windows(AugmentConfig(), causal)
    assert len(data) == 125 and data.length == RF + K - 1
    x, y = data.sample(16, gen())
    assert x.shape == (16, RF + K - 1, 17, 2) and y.shape == (16, K, 17, 3)
    assert x.dtype == y.dtype == torch.float32
    assert torch.isfinite(x).all() and torch.isfinite(y).all()
    assert torch.equal(y[:, :, 0], torch.zeros_like(y[:, :, 0]))
    # 2D is in normalised screen coordinates: inside [-1, 1] x [-h/w, h/w] up to the noise.
    assert x[..., 0].abs().max() < 1.2 and x[..., 1].abs().max() < 2.0
    # Skeleton-sized outputs: the head is roughly 0.5-1 m from the pelvis.
    dist = y[:, :, H36M17.index("head")].norm(dim=-1)
    assert (dist > 0.4).all() and (dist < 1.1).all()


def test_sample_reproducible():
    data = windows(AugmentConfig())
    a, b = data.sample(8, gen(3)), data.sample(8, gen(3))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    c = data.sample(8, gen(4))
    assert not torch.equal(a[1], c[1])


def _perspective_residual(x2d: torch.Tensor, rel: torch.Tensor) -> tuple[float, float, float]:
    """Fit x = k * (X + P) / (Z + Pz) for one frame: (J,2) normalised 2D, (J,3) pelvis-relative 3D.

    Unknowns k (2 f / w), the pelvis position P; linear in (Pz, k, k Px, k Py). Returns (max residual, k, Pz).
    """
    x, y = x2d[:, 0].double(), x2d[:, 1].double()
    X, Y, Z = rel[:, 0].double(), rel[:, 1].double(), rel[:, 2].double()
    zero, one = torch.zeros_like(x), torch.ones_like(x)
    # x (Z + Pz) = k X + kPx  ->  -x Pz + k X + kPx = x Z
    a = torch.cat([torch.stack([-x, X, one, zero], 1), torch.stack([-y, Y, zero, one], 1)])
    b = torch.cat([x * Z, y * Z])
    sol = torch.linalg.lstsq(a, b[:, None]).solution[:, 0]
    pz, k = sol[0], sol[1]
    proj = k * (torch.stack([X, Y], 1) + torch.stack([sol[2], sol[3]]) / k) / (Z + pz)[:, None]
    return float((proj - x2d.double()).abs().max()), float(k), float(pz)


@pytest.mark.parametrize("flip", [0.0, 1.0])
def test_exact_2d_is_a_perspective_projection_of_y(flip):
    data = windows(AugmentConfig(flip=flip, clean_fraction=1.0, bone_scale=0.0, global_scale=0.0))
    x, y = data.sample(12, gen(5), noisy=False)
    first = RF // 2
    for i in range(12):
        for j in range(K):
            res, k, pz = _perspective_residual(x[i, first + j], y[i, j])
            assert res < 1e-4, (i, j, res)
            assert pz > 0.5, "the subject must be in front of the camera"
            # k = 2 f / w = (max(w, h) / w) / tan(fov / 2) for fov in [40, 75] degrees
            assert 1 / np.tan(np.radians(37.5)) - 1e-3 < k < 1.78 / np.tan(np.radians(20)) + 1e-3


def test_exact_2d_with_bone_scale_is_still_consistent():
    data = windows(AugmentConfig(flip=0.5, clean_fraction=1.0, bone_scale=0.1, global_scale=0.1))
    x, y = data.sample(6, gen(6), noisy=False)
    for i in range(6):
        assert _perspective_residual(x[i, RF // 2], y[i, 0])[0] < 1e-4


def test_noisy_2d_is_not_exact():
    data = windows(AugmentConfig(flip=0.0, clean_fraction=0.0, bone_scale=0.0, global_scale=0.0))
    x, y = data.sample(6, gen(7), noisy=True)
    assert max(_perspective_residual(x[i, RF // 2], y[i, 0])[0] for i in range(6)) > 1e-3


def test_flip_mirrors_left_and_right():
    base = dict(clean_fraction=1.0, bone_scale=0.05, global_scale=0.05)
    data_plain = windows(AugmentConfig(flip=0.0, **base))
    data_flip = windows(AugmentConfig(flip=1.0, **base))
    x0, y0 = data_plain.sample(10, gen(8), noisy=False)
    x1, y1 = data_flip.sample(10, gen(8), noisy=False)
    perm = torch.as_tensor(H36M17.flip_permutation())
    torch.testing.assert_close(y1[..., perm, :] * torch.tensor([-1.0, 1.0, 1.0]), y0)
    torch.testing.assert_close(x1[..., perm, :] * torch.tensor([-1.0, 1.0]), x0, atol=1e-5, rtol=0)
    assert not torch.allclose(y1, y0)
    # After mirroring, the subject's left hip appears where the right hip was (mirrored).
    hip_l, hip_r = H36M17.index("l_hip"), H36M17.index("r_hip")
    torch.testing.assert_close(y1[..., hip_l, 0], -y0[..., hip_r, 0])


def test_sample_raises_without_clips():
    with pytest.raises(InputError):
        PoseWindows([], RF, K, False, CameraConfig(), AugmentConfig())


# --------------------------------------------------------------------------------------------------------------
# window indices


def _clip_of(data: PoseWindows, idx: torch.Tensor) -> torch.Tensor:
    return torch.searchsorted(data.ends, idx, right=True)


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("rate", [0.0, 1.0])
def test_windows_never_cross_clip_boundaries(causal, rate):
    data = windows(AugmentConfig(rate_prob=rate, rate_intervals=(5,)), causal, lengths=(12, 3, 30, 7))
    idx = data._indices(2000, gen(9))
    assert idx.shape == (2000, data.length)
    clip = _clip_of(data, idx)
    assert (clip == clip[:, :1]).all(), "a window mixes frames of two clips"
    assert (idx >= 0).all() and (idx < len(data)).all()
    assert (idx.diff(dim=1) >= 0).all(), "frames must stay in temporal order"
    # Every clip (even the 3-frame one) gets sampled.
    assert set(clip[:, 0].tolist()) == {0, 1, 2, 3}


@pytest.mark.parametrize("causal", [False, True])
def test_window_anchor(causal):
    data = windows(EXACT, causal, lengths=(500,))
    idx = data._indices(200, gen(10))
    interior = (idx.diff(dim=1) == 1).all(dim=1)          # windows not clamped at a clip end
    assert interior.sum() > 100
    anchor = data.length - 1 if causal else data.length // 2
    assert (idx[interior, anchor] - idx[interior, 0] == anchor).all()
    assert (idx[interior, -1] - idx[interior, 0] == data.length - 1).all()


def test_multi_rate_sampling_spans_three_times_the_frames():
    data = windows(AugmentConfig(rate_prob=1.0, rate_intervals=(3,)), lengths=(1000,))
    idx = data._indices(300, gen(11))
    interior = (idx[:, 0] > 0) & (idx[:, -1] < 999)
    assert interior.sum() > 200
    assert (idx[interior].diff(dim=1) == 3).all()
    assert (idx[interior, -1] - idx[interior, 0] == 3 * (data.length - 1)).all()


def test_multi_rate_probability():
    data = windows(AugmentConfig(rate_prob=0.5, rate_intervals=(1, 4)), lengths=(5000,))
    idx = data._indices(2000, gen(12))
    step = idx[:, 1] - idx[:, 0]
    interior = (idx[:, 0] > 0) & (idx[:, -1] < 4999)
    frac = (step[interior] == 4).float().mean()
    assert 0.4 < frac < 0.6
    assert set(step[interior].tolist()) == {1, 4}
    plain = windows(AugmentConfig(rate_prob=0.0, rate_intervals=(3,)), lengths=(5000,))._indices(500, gen(13))
    assert set((plain[:, 1] - plain[:, 0]).tolist()) <= {0, 1}


def test_multi_rate_mixes_intervals_3_5_7_with_the_original_rate():
    """Paper 003: windows every 3rd, 5th or 7th frame alongside original-rate windows (rate_prob of them)."""
    data = windows(AugmentConfig(rate_prob=0.5, rate_intervals=(1, 3, 5, 7)), lengths=(20000,))
    idx = data._indices(6000, gen(21))
    interior = (idx[:, 0] > 0) & (idx[:, -1] < 19999)
    step = (idx[:, 1] - idx[:, 0])[interior]
    assert ((idx.diff(dim=1)[interior]) == step[:, None]).all(), "a window's frames are evenly spaced"
    share = {s: float((step == s).float().mean()) for s in (1, 3, 5, 7)}
    assert set(step.tolist()) == {1, 3, 5, 7}
    assert share[1] == pytest.approx(0.5, abs=0.04)
    for s in (3, 5, 7):
        assert share[s] == pytest.approx(0.5 / 3, abs=0.03), share


def test_multi_rate_windows_stay_inside_short_clips():
    data = windows(AugmentConfig(rate_prob=1.0, rate_intervals=(3, 5, 7)), lengths=(40, 9, 100))
    idx = data._indices(3000, gen(22))
    clip = _clip_of(data, idx)
    assert (clip == clip[:, :1]).all() and (idx.diff(dim=1) >= 0).all()
    # Near a clip's end the window keeps repeating the end frame, as inference pads a sequence.
    lo, hi = data.starts[clip[:, 0]], data.ends[clip[:, 0]] - 1
    assert ((idx == lo[:, None]) | (idx == hi[:, None])).any(dim=1).float().mean() > 0.5
    steps = idx.diff(dim=1)
    assert set(steps.unique().tolist()) <= {0, 1, 2, 3, 4, 5, 6, 7}


@pytest.mark.parametrize("rate_prob,expected", [(0.0, {1}), (1.0, {3, 5, 7})])
def test_multi_rate_targets_really_skip_frames(rate_prob, expected):
    """The body turns 0.02 rad per captured frame, so consecutive target frames s apart turn by 0.02 s."""
    clip = [Clip(torch.tensor(rigid_motion(3000, seed=2), dtype=torch.float32), "turn", "1", "walk")]
    data = PoseWindows(clip, RF, K, False, CameraConfig(),
                       replace(EXACT, flip=0.5, rate_prob=rate_prob, rate_intervals=(3, 5, 7)))
    _, y = data.sample(400, gen(23), noisy=False)
    hips = y[:, :, H36M17.index("l_hip")] - y[:, :, H36M17.index("r_hip")]
    turn = torch.arccos(torch.nn.functional.cosine_similarity(hips[:, 0], hips[:, 1], dim=-1).clamp(-1, 1))
    frames = torch.round(turn / 0.02)
    interior = torch.isclose(turn, frames * 0.02, atol=1e-3) & (frames > 0)
    assert interior.float().mean() > 0.9
    steps = frames[interior].int()
    assert set(steps.tolist()) >= expected
    # Only windows clamped at the clip's ends (a few per cent here) show other steps.
    assert torch.isin(steps, torch.tensor(sorted(expected))).float().mean() > 0.95


def test_short_clip_replicates_its_end_frames():
    data = windows(EXACT, lengths=(3,))
    idx = data._indices(50, gen(14))
    offsets = range(-(data.length // 2), data.length - data.length // 2)
    seen = set()
    for row in idx.tolist():
        centre = row[data.length // 2]
        seen.add(centre)
        assert row == [min(max(centre + o, 0), 2) for o in offsets]
    assert seen == {0, 1, 2}


# --------------------------------------------------------------------------------------------------------------
# rescale_bones


def _poses(b=2, t=4) -> torch.Tensor:
    return torch.tensor(np.stack([moving_person(t, seed=20 + i) for i in range(b)]), dtype=torch.float32)


def test_rescale_bones_identity():
    joints = _poses()
    torch.testing.assert_close(rescale_bones(joints, torch.ones(2, 17)), joints, rtol=0, atol=1e-6)


@pytest.mark.parametrize("child", [3, 5, 8, 12, 16])
def test_rescale_one_bone(child):
    joints = _poses()
    scale = torch.ones(2, 17)
    scale[:, child] = 1.3
    out = rescale_bones(joints, scale)
    before, after = bone_lengths(joints), bone_lengths(out)
    bones = [c for _, c in H36M17.bones]
    col = bones.index(child)
    torch.testing.assert_close(after[..., col], 1.3 * before[..., col])
    others = [i for i in range(16) if i != col]
    torch.testing.assert_close(after[..., others], before[..., others])
    torch.testing.assert_close(out[:, :, 0], joints[:, :, 0])                    # pelvis stays
    # The bone keeps its direction.
    parent = H36M17.parents[child]
    d0 = joints[:, :, child] - joints[:, :, parent]
    d1 = out[:, :, child] - out[:, :, parent]
    torch.testing.assert_close(torch.nn.functional.normalize(d1, dim=-1), torch.nn.functional.normalize(d0, dim=-1))


def test_rescale_global_scales_about_pelvis():
    joints = _poses()
    out = rescale_bones(joints, torch.full((2, 17), 0.9))
    pelvis = joints[:, :, :1]
    torch.testing.assert_close(out - pelvis, 0.9 * (joints - pelvis))


def test_symmetric_bone_scale():
    scale = symmetric_bone_scale(64, 0.1, gen(15))
    assert scale.shape == (64, 17)
    assert ((scale >= 0.9) & (scale <= 1.1)).all()
    left, right = list(H36M17.left), list(H36M17.right)
    assert torch.equal(scale[:, left], scale[:, right])
    assert scale.std() > 0.02


# --------------------------------------------------------------------------------------------------------------
# corrupt_2d


def _uv(b=64, t=30) -> torch.Tensor:
    g = gen(16)
    base = torch.tensor([[960.0, 540.0]]) + torch.randn(b, 1, 17, 2, generator=g) * 100
    base[..., 1] += torch.linspace(-200, 200, 17)   # ~400 px tall person
    return base + torch.randn(b, t, 1, 2, generator=g).cumsum(1)


def test_corrupt_2d_clean_is_identity():
    uv = _uv()
    out = corrupt_2d(uv, AugmentConfig(clean_fraction=1.0, drop_prob=0.5, swap_prob=0.5), gen(17))
    assert torch.equal(out, uv)


def test_corrupt_2d_noise_level():
    uv = _uv()
    sigma = 0.01
    cfg = AugmentConfig(clean_fraction=0.0, noise_px=(sigma, sigma), drop_prob=0.0, swap_prob=0.0)
    out = corrupt_2d(uv, cfg, gen(18))
    height = (uv[..., 1].amax(dim=(1, 2)) - uv[..., 1].amin(dim=(1, 2)))
    # Each coordinate gets jitter + half-sized per-window bias, scaled by the joint's difficulty factor.
    factor = torch.ones(17)
    factor[[3, 6, 13, 16]] = 1.5
    factor[[10, 12, 15]] = 1.25
    rel = (out - uv) / (height[:, None, None, None] * factor[None, None, :, None])
    assert rel.std().item() == pytest.approx(sigma * np.sqrt(1.25), rel=0.1)
    assert rel.mean().abs() < 0.1 * sigma
    # Half the noise range gives about half the displacement.
    half = corrupt_2d(uv, AugmentConfig(clean_fraction=0.0, noise_px=(sigma / 2, sigma / 2), drop_prob=0.0,
                                        swap_prob=0.0), gen(18))
    torch.testing.assert_close(half - uv, (out - uv) / 2, atol=1e-3, rtol=1e-4)


def test_corrupt_2d_clean_fraction():
    uv = _uv(b=400, t=3)
    out = corrupt_2d(uv, AugmentConfig(clean_fraction=0.4, drop_prob=0.0, swap_prob=0.0), gen(19))
    clean = (out == uv).flatten(1).all(dim=1).float().mean()
    assert 0.3 < clean < 0.5


def test_corrupt_2d_swaps_limbs():
    uv = _uv(b=8, t=200)
    cfg = AugmentConfig(clean_fraction=0.0, noise_px=(1e-6, 1e-6), drop_prob=0.0, swap_prob=0.2)
    out = corrupt_2d(uv, cfg, gen(20))
    r_wrist, l_wrist = H36M17.index("r_wrist"), H36M17.index("l_wrist")
    swapped = (out[:, :, r_wrist] - uv[:, :, l_wrist]).norm(dim=-1) < 0.1
    frac = swapped.float().mean()
    assert 0.12 < frac < 0.28
    # A swapped frame swaps the whole arm, not one joint.
    r_elbow, l_elbow = H36M17.index("r_elbow"), H36M17.index("l_elbow")
    assert ((out[:, :, r_elbow] - uv[:, :, l_elbow]).norm(dim=-1) < 0.1)[swapped].all()


def test_rebuilt_torso_is_what_the_pipeline_builds_from_coco():
    uv = torch.rand(2, 5, 17, 2, generator=torch.Generator().manual_seed(0)) * 1000
    rebuilt = rebuild_torso(uv)
    via_coco = coco_to_h36m(h36m_to_coco(uv.reshape(-1, 17, 2).numpy()))[0].reshape(2, 5, 17, 2)
    np.testing.assert_allclose(rebuilt.numpy(), via_coco, atol=1e-3)
    np.testing.assert_allclose(rebuilt[..., 8, :], (uv[..., 11, :] + uv[..., 14, :]) / 2)
    others = [j for j in range(17) if j not in (0, 7, 8)]
    assert torch.equal(rebuilt[..., others, :], uv[..., others, :])
    assert not torch.equal(rebuilt, uv)  # a new tensor: the input is left as it was
    np.testing.assert_allclose(rebuild_torso(uv.numpy()), rebuilt.numpy())  # numpy arrays too


def test_windows_carry_the_rebuilt_torso_only_when_asked():
    clips = [Clip(torch.from_numpy(moving_person(120, seed=0)).float(), "c", "1", "walk")]
    for flag in (False, True):
        windows = PoseWindows(clips, 9, 1, False, CameraConfig(), AugmentConfig(torso_from_limbs=flag))
        uv = windows.film(16, torch.Generator().manual_seed(3), noisy=False).uv
        rebuilt = torch.allclose(uv[..., 8, :], (uv[..., 11, :] + uv[..., 14, :]) / 2, atol=1e-3)
        assert rebuilt == flag
