"""Tests for pipeline/camera.py (screen normalisation, the pinhole Camera, look_at) and pipeline/training/cameras.py
(random cameras)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pipeline.camera import Camera, default_focal, look_at, normalize_screen, unnormalize_screen
from pipeline.errors import ShapeError
from pipeline.training.cameras import sample_cameras
from pipeline.training.config import CameraConfig
from tests.support.synth import moving_person, random_rotation

SIZES = [(1920, 1080), (1080, 1920), (640, 640)]


# --------------------------------------------------------------------------------------------------------------
# normalize_screen / unnormalize_screen


@pytest.mark.parametrize("w,h", SIZES)
def test_normalize_known_values(w, h):
    pts = np.array([[w / 2, h / 2], [0.0, 0.0], [w, h], [w, 0.0]])
    out = normalize_screen(pts, w, h)
    np.testing.assert_allclose(out, [[0, 0], [-1, -h / w], [1, h / w], [1, -h / w]], atol=1e-12)


def test_normalize_keeps_aspect_ratio():
    # One pixel is the same normalised distance horizontally and vertically.
    out = normalize_screen(np.array([[100.0, 200.0], [101.0, 201.0]]), 1080, 1920)
    d = out[1] - out[0]
    assert d[0] == pytest.approx(d[1]) == pytest.approx(2 / 1080)


@pytest.mark.parametrize("w,h", SIZES)
def test_round_trip_numpy(w, h):
    rng = np.random.default_rng(0)
    pts = rng.uniform(-50, max(w, h) + 50, size=(5, 17, 2))
    norm = normalize_screen(pts, w, h)
    assert isinstance(norm, np.ndarray) and norm.shape == pts.shape
    np.testing.assert_allclose(unnormalize_screen(norm, w, h), pts, rtol=0, atol=1e-9)


@pytest.mark.parametrize("w,h", SIZES)
def test_round_trip_torch(w, h):
    pts = torch.rand(3, 4, 17, 2, dtype=torch.float64) * max(w, h)
    norm = normalize_screen(pts, w, h)
    assert isinstance(norm, torch.Tensor) and norm.shape == pts.shape
    torch.testing.assert_close(unnormalize_screen(norm, w, h), pts, rtol=0, atol=1e-9)
    np.testing.assert_allclose(norm.numpy(), normalize_screen(pts.numpy(), w, h), atol=1e-12)


def test_normalize_per_sample_sizes_broadcast():
    # The dataset passes one (width, height) per window as (B, 1, 1) tensors.
    size = torch.tensor([[1920.0, 1080.0], [1080.0, 1920.0]])
    uv = size[:, None, None] / 2 * torch.ones(2, 3, 17, 2)  # every point at the image centre
    out = normalize_screen(uv, size[:, 0, None, None], size[:, 1, None, None])
    torch.testing.assert_close(out, torch.zeros_like(out))
    corner = normalize_screen(torch.zeros(2, 1, 1, 2), size[:, 0, None, None], size[:, 1, None, None])
    torch.testing.assert_close(corner[:, 0, 0], torch.tensor([[-1.0, -1080 / 1920], [-1.0, -1920 / 1080]]))


# --------------------------------------------------------------------------------------------------------------
# Camera


def _camera(rotation=None, position=(0.0, 0.0, -5.0), focal=1000.0, center=(960.0, 540.0), w=1920, h=1080):
    rotation = np.eye(3) if rotation is None else rotation
    return Camera(np.asarray(rotation, float), np.asarray(position, float), focal, np.asarray(center, float), w, h)


def test_camera_hand_computed_projection():
    cam = _camera()
    p_cam = cam.world_to_camera(np.array([1.0, 0.5, 0.0]))
    np.testing.assert_allclose(p_cam, [1.0, 0.5, 5.0])
    np.testing.assert_allclose(cam.project(p_cam), [960 + 1000 * 1 / 5, 540 + 1000 * 0.5 / 5])


def test_camera_hand_computed_projection_rotated():
    # Camera at the origin looking down world +X (Y up): its z axis is world +X, so its x axis (right,
    # x = y_down cross z) is world +Z.
    rot = np.array([[0.0, 0.0, 1.0], [0.0, -1.0, 0.0], [1.0, 0.0, 0.0]])
    cam = _camera(rot, position=(0.0, 0.0, 0.0), focal=500.0, center=(320.0, 240.0), w=640, h=480)
    p = cam.world_to_camera(np.array([4.0, 1.0, 2.0]))   # 4 m ahead, 1 m up, 2 m to the camera's right
    np.testing.assert_allclose(p, [2.0, -1.0, 4.0])
    np.testing.assert_allclose(cam.project(p), [320 + 500 * 2 / 4, 240 - 500 * 1 / 4])


def test_camera_round_trip_random():
    rng = np.random.default_rng(1)
    for _ in range(5):
        cam = _camera(random_rotation(rng), rng.normal(size=3) * 3)
        pts = rng.normal(size=(4, 17, 3))
        back = cam.camera_to_world(cam.world_to_camera(pts))
        np.testing.assert_allclose(back, pts, atol=1e-12)
        # Distances are preserved (rigid transform).
        c = cam.world_to_camera(pts)
        np.testing.assert_allclose(np.linalg.norm(c[:, 1] - c[:, 0], axis=-1),
                                   np.linalg.norm(pts[:, 1] - pts[:, 0], axis=-1), atol=1e-12)
        # The camera centre maps to the camera-frame origin.
        np.testing.assert_allclose(cam.world_to_camera(cam.position), 0.0, atol=1e-12)


def test_camera_projection_is_scale_invariant_along_rays():
    cam = _camera(random_rotation(np.random.default_rng(2)))
    p = np.array([0.3, -0.2, 2.0])
    np.testing.assert_allclose(cam.project(p), cam.project(3.7 * p))


@pytest.mark.parametrize("kwargs", [
    dict(rotation=np.eye(2)),
    dict(rotation=2 * np.eye(3)),
    dict(rotation=np.array([[1.0, 0.5, 0], [0, 1, 0], [0, 0, 1]])),
    dict(position=(0.0, 0.0)),
    dict(center=(1.0, 2.0, 3.0)),
    dict(focal=0.0),
    dict(focal=-10.0),
    dict(w=0),
    dict(h=-1),
])
def test_camera_rejects_bad_values(kwargs):
    with pytest.raises(ShapeError):
        _camera(**kwargs)


def test_default_focal():
    assert default_focal(1920, 1080, 90.0) == pytest.approx(960.0)
    assert default_focal(1080, 1920, 90.0) == pytest.approx(960.0)   # longer side
    assert default_focal(1000, 500, 60.0) == pytest.approx(500 / math.tan(math.radians(30)))


# --------------------------------------------------------------------------------------------------------------
# look_at


def _random_look_at(n=64, seed=0, roll_deg=10.0):
    gen = torch.Generator().manual_seed(seed)
    target = torch.randn(n, 3, generator=gen, dtype=torch.float64)
    offset = torch.randn(n, 3, generator=gen, dtype=torch.float64)
    offset[:, 1] = offset[:, 1].clamp(-0.8, 0.8)  # keep away from looking straight up/down
    position = target + 3 * offset
    roll = torch.deg2rad((torch.rand(n, generator=gen, dtype=torch.float64) * 2 - 1) * roll_deg)
    return position, target, roll


def test_look_at_gives_proper_rotations():
    position, target, roll = _random_look_at()
    rot = look_at(position, target, roll)
    assert rot.shape == (64, 3, 3)
    eye = torch.eye(3, dtype=rot.dtype).expand_as(rot)
    torch.testing.assert_close(rot @ rot.transpose(1, 2), eye, atol=1e-10, rtol=0)
    torch.testing.assert_close(torch.linalg.det(rot), torch.ones(64, dtype=rot.dtype), atol=1e-10, rtol=0)


@pytest.mark.parametrize("with_roll", [False, True])
def test_look_at_target_on_optical_axis(with_roll):
    position, target, roll = _random_look_at(seed=1)
    roll = roll if with_roll else torch.zeros_like(roll)
    rot = look_at(position, target, roll)
    cam = torch.einsum("bij,bj->bi", rot, target - position)
    torch.testing.assert_close(cam[:, :2], torch.zeros_like(cam[:, :2]), atol=1e-10, rtol=0)
    torch.testing.assert_close(cam[:, 2], (target - position).norm(dim=-1))


def test_look_at_y_axis_points_down_and_x_is_level():
    position, target, _ = _random_look_at(seed=2)
    rot = look_at(position, target, torch.zeros(len(position), dtype=torch.float64))
    assert (rot[:, 1, 1] < 0).all(), "camera y (image down) must have a negative world-Y component"
    torch.testing.assert_close(rot[:, 0, 1], torch.zeros(len(rot), dtype=rot.dtype), atol=1e-10, rtol=0)
    # A point below the target lands lower in the image (larger v); one to the camera's right, larger u.
    for i in range(8):
        cam = Camera(rot[i].numpy(), position[i].numpy(), 800.0, np.array([400.0, 300.0]), 800, 600)
        t = target[i].numpy()
        v_target = cam.project(cam.world_to_camera(t))[1]
        v_lower = cam.project(cam.world_to_camera(t - np.array([0.0, 0.3, 0.0])))[1]
        assert v_lower > v_target
        assert cam.project(cam.world_to_camera(t + 0.3 * rot[i, 0].numpy()))[0] > 400.0


def test_look_at_roll_turns_about_optical_axis():
    position, target, _ = _random_look_at(n=8, seed=3)
    angle = math.radians(12.0)
    r0 = look_at(position, target, torch.zeros(8, dtype=torch.float64))
    r1 = look_at(position, target, torch.full((8,), angle, dtype=torch.float64))
    torch.testing.assert_close(r1[:, 2], r0[:, 2])   # same viewing direction
    cos = (r1[:, 0] * r0[:, 0]).sum(-1)
    torch.testing.assert_close(cos, torch.full((8,), math.cos(angle), dtype=torch.float64))


# --------------------------------------------------------------------------------------------------------------
# sample_cameras


def _windows(b=48, t=9, seed=0):
    return torch.tensor(np.stack([moving_person(t, seed=seed + i, jitter=0.1) for i in range(b)]), dtype=torch.float32)


@pytest.fixture(scope="module")
def sampled():
    joints = _windows()
    config = CameraConfig()
    cams = sample_cameras(joints, config, torch.Generator().manual_seed(0))
    return joints, config, cams


def test_sample_cameras_shapes_and_sizes(sampled):
    joints, config, cams = sampled
    b = len(joints)
    assert cams.rotation.shape == (b, 3, 3) and cams.position.shape == (b, 3)
    assert cams.focal.shape == (b,) and cams.center.shape == (b, 2) and cams.size.shape == (b, 2)
    assert {tuple(int(v) for v in s) for s in cams.size.tolist()} <= set(config.sizes)
    assert len({tuple(s) for s in cams.size.tolist()}) > 1, "image sizes should vary"
    torch.testing.assert_close(cams.center, cams.size / 2)
    eye = torch.eye(3).expand(b, 3, 3)
    torch.testing.assert_close(cams.rotation @ cams.rotation.transpose(1, 2), eye, atol=1e-5, rtol=0)
    torch.testing.assert_close(torch.linalg.det(cams.rotation), torch.ones(b), atol=1e-5, rtol=0)


def test_sample_cameras_subject_in_frame(sampled):
    joints, config, cams = sampled
    cam3d = cams.to_camera(joints)
    assert (cam3d[..., 2] > 0.1).all(), "every joint must be in front of the camera"
    uv = cams.project(cam3d)
    half = (cams.size / 2 * (1 - config.margin))[:, None, None]
    off = (uv - cams.center[:, None, None]).abs()
    assert (off <= half + 0.5).all(), f"worst overshoot {(off - half).max():.2f} px"


def test_sample_cameras_matches_numpy_camera(sampled):
    joints, _, cams = sampled
    uv = cams.project(cams.to_camera(joints))
    for i in (0, 5):
        cam = cams.camera(i)
        np.testing.assert_allclose(cam.project(cam.world_to_camera(joints[i].double().numpy())),
                                   uv[i].double().numpy(), atol=0.05)


def test_sample_cameras_elevation_in_range(sampled):
    joints, config, cams = sampled
    target = joints[:, joints.shape[1] // 2, 0]
    d = cams.position - target
    elev = torch.rad2deg(torch.asin(d[:, 1] / d.norm(dim=-1)))
    lo, hi = config.elevation_deg
    assert (elev >= lo - 1e-3).all() and (elev <= hi + 1e-3).all()
    assert elev.max() - elev.min() > 0.3 * (hi - lo), "elevations should spread over the range"


def test_sample_cameras_elevation_custom_range():
    joints = _windows(b=32, seed=100)
    config = CameraConfig(elevation_deg=(20.0, 25.0))
    cams = sample_cameras(joints, config, torch.Generator().manual_seed(3))
    d = cams.position - joints[:, joints.shape[1] // 2, 0]
    height_ratio = d[:, 1] / d.norm(dim=-1)
    assert (height_ratio >= math.sin(math.radians(20.0)) - 1e-4).all()
    assert (height_ratio <= math.sin(math.radians(25.0)) + 1e-4).all()


def test_sample_cameras_fov_in_range(sampled):
    _, config, cams = sampled
    fov = torch.rad2deg(2 * torch.atan(cams.size.max(dim=1).values / 2 / cams.focal))
    lo, hi = config.fov_deg
    assert (fov >= lo - 1e-3).all() and (fov <= hi + 1e-3).all()
    assert fov.max() - fov.min() > 0.3 * (hi - lo)


def test_sample_cameras_subject_not_always_centred(sampled):
    joints, _, cams = sampled
    target = joints[:, joints.shape[1] // 2, :1]
    uv = cams.project(cams.to_camera(target[:, None]))[:, 0, 0]
    rel = (uv - cams.center) / cams.size   # fraction of the image size, 0 = centred
    assert (rel.abs().max(dim=1).values > 0.05).float().mean() > 0.3, "pan/tilt should move the subject"
    assert rel[:, 0].std() > 0.03 and rel[:, 1].std() > 0.01
    assert (rel[:, 0] > 0.02).any() and (rel[:, 0] < -0.02).any(), "both sides of the image should occur"


def test_sample_cameras_places_lopsided_subject_in_free_space():
    """Target at the body's lowest point: the free space is below it, so it should sit low in the image.

    A camera that cannot be panned/tilted keeps the target on the optical axis (image centre); that fallback
    must stay rare.
    """
    joints = _windows(b=64, seed=200)
    joints[:, :, 0] = joints[:, :, 3]          # the target slot (pelvis) at the right ankle
    cams = sample_cameras(joints, CameraConfig(), torch.Generator().manual_seed(0))
    uv = cams.project(cams.to_camera(joints))
    half = (cams.size / 2 * (1 - CameraConfig().margin))[:, None, None]
    assert ((uv - cams.center[:, None, None]).abs() <= half + 0.5).all()
    target = uv[:, joints.shape[1] // 2, 0]
    centred = ((target - cams.center).abs().max(dim=1).values < 0.5).float().mean()
    assert centred < 0.15, f"{centred:.0%} of cameras fell back to centring the target"
    assert ((target - cams.center)[:, 1] / cams.size[:, 1]).mean() > 0.05


def test_sample_cameras_places_sideways_subject_in_free_space():
    # Camera on world +Z looking back (its x axis is world +X); the body reaches 0.8 m to +X of the target.
    joints = _windows(b=64, seed=300)
    joints[:, :, 1:, 0] += 0.8
    config = CameraConfig(azimuth_deg=(0.0, 0.0), roll_deg=0.0)
    cams = sample_cameras(joints, config, torch.Generator().manual_seed(1))
    assert (cams.rotation[:, 0, 0] > 0.7).all(), "camera x axis should be roughly world +X (up to the pan)"
    assert (cams.position[:, 2] > joints[:, 4, 0, 2]).all(), "camera should stand on the +Z side"
    uv = cams.project(cams.to_camera(joints))
    half = (cams.size / 2 * (1 - config.margin))[:, None, None]
    assert ((uv - cams.center[:, None, None]).abs() <= half + 0.5).all()
    target = uv[:, joints.shape[1] // 2, 0]
    centred = ((target - cams.center).abs().max(dim=1).values < 0.5).float().mean()
    assert centred < 0.15, f"{centred:.0%} of cameras fell back to centring the target"
    assert ((target - cams.center)[:, 0] / cams.size[:, 0]).mean() < -0.05, "target should sit left of centre"


def test_sample_cameras_distance_scale():
    # Same seed, 3x the distance: the subject looks about 3x smaller.
    joints = _windows(b=24, seed=50)

    def extent(scale):
        cams = sample_cameras(joints, CameraConfig(distance_scale=(scale, scale), roll_deg=0.0),
                              torch.Generator().manual_seed(7))
        uv = cams.project(cams.to_camera(joints))
        return (uv.flatten(1, 2).amax(1) - uv.flatten(1, 2).amin(1))[:, 1]

    ratio = extent(3.0) / extent(1.0)
    assert 0.25 < ratio.median() < 0.42, ratio


def test_sample_cameras_reproducible():
    joints = _windows(b=8, seed=7)
    config = CameraConfig()
    a = sample_cameras(joints, config, torch.Generator().manual_seed(11))
    b = sample_cameras(joints, config, torch.Generator().manual_seed(11))
    c = sample_cameras(joints, config, torch.Generator().manual_seed(12))
    for name in ("rotation", "position", "focal", "center", "size"):
        torch.testing.assert_close(getattr(a, name), getattr(b, name), rtol=0, atol=0)
    assert not torch.allclose(a.position, c.position)


def test_camera_rejects_reflection():
    reflection = np.diag([1.0, 1.0, -1.0])
    with pytest.raises(ShapeError):
        _camera(reflection)


def test_centred_cameras_put_the_target_at_the_principal_point():
    world = torch.from_numpy(moving_person(9, seed=3)).float()[None].repeat(64, 1, 1, 1)
    cams = sample_cameras(world, CameraConfig(off_centre=False), torch.Generator().manual_seed(0))
    centre = cams.project(cams.to_camera(world))[:, 4, 0]  # pelvis of the centre frame: the look-at target
    np.testing.assert_allclose(centre.numpy(), cams.center.numpy(), atol=0.5)
    moved = sample_cameras(world, CameraConfig(), torch.Generator().manual_seed(0))
    assert (moved.project(moved.to_camera(world))[:, 4, 0] - moved.center).abs().max() > 20
