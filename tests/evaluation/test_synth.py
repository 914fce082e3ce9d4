"""Synthetic clip generator: images, painter's order, ground truth, determinism, and (slow) BlazePose."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from pipeline.camera import Camera, look_at
from pipeline.errors import ConfigError
from pipeline.evaluation.synth import (
    SynthConfig,
    person_height_px,
    render_background,
    render_frame,
    save_ground_truth,
    synthesize,
    write_clip,
)
from pipeline.evaluation.synth_body import Style
from pipeline.skeleton import H36M17
from pipeline.training.mocap import Motion, load_motion, resample
from tests.support.synth import STANDING, rigid_motion

CMU_WALK = Path(__file__).resolve().parents[3] / "shared" / "data" / "mocap" / "cmu" / "asfamc" / "02" / "02_01.amc.gz"
# Distinct colours (BGR) so a pixel's owner can be told by its hue: red shirt, skin has a strong blue channel.
STYLE = Style(shirt=(0, 0, 200), trousers=(120, 40, 0), skin=(150, 180, 230), hair=(20, 20, 20),
              shoes=(30, 30, 30), long_sleeves=False, light=(0.0, 0.8, 0.6))
SMALL = SynthConfig(width=320, height=240, noise=0.0, blur=0.0)


def _front_camera(width=400, height=540, azimuth_deg=0.0) -> Camera:
    """A camera 3.2 m from the origin at the given azimuth (0 = in front of a person facing +Z)."""
    a = np.radians(azimuth_deg)
    pos = torch.tensor([[3.2 * np.sin(a), 1.2, 3.2 * np.cos(a)]], dtype=torch.float64)
    rot = look_at(pos, torch.tensor([[0.0, 0.9, 0.0]], dtype=torch.float64), torch.zeros(1, dtype=torch.float64))
    return Camera(rot[0].numpy(), pos[0].numpy(), 700.0, np.array([width / 2, height / 2]), width, height)


def _render(world: np.ndarray, camera: Camera, style: Style = STYLE):
    background = render_background(camera, "studio", np.random.default_rng(0), np.zeros(3))
    joints = camera.world_to_camera(world)
    return render_frame(joints, camera, style, background), background, camera.project(joints)


def _motion(frames: int = 12) -> Motion:
    return Motion(rigid_motion(frames, seed=1).astype(np.float32), 30.0, "0", "synthetic")


def test_render_frame_shape_dtype_and_background_untouched():
    image, background, _ = _render(STANDING, _front_camera())
    before = background.copy()
    assert image.shape == (540, 400, 3) and image.dtype == np.uint8
    assert np.array_equal(background, before)
    assert (np.abs(image.astype(int) - background).sum(-1) > 0).mean() > 0.02  # someone was drawn


@pytest.mark.parametrize("azimuth", [0.0, 90.0, 180.0, 300.0])
def test_figure_covers_projected_joints(azimuth):
    image, background, uv = _render(STANDING, _front_camera(azimuth_deg=azimuth))
    for j in (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 14, 15):
        u, v = np.round(uv[j]).astype(int)
        diff = np.abs(image[v, u].astype(int) - background[v, u]).sum()
        assert diff > 20, f"{H36M17.joints[j]} at {(u, v)} is background (azimuth {azimuth})"


def _arm_across(depth: float) -> np.ndarray:
    """STANDING with the right forearm held horizontally across the chest, ``depth`` metres in front (+Z)."""
    pose = STANDING.copy()
    pose[15] = [-0.20, 1.15, depth]   # r_elbow
    pose[16] = [0.15, 1.15, depth]    # r_wrist, past the body's midline
    return pose


def test_painters_order_near_arm_occludes_torso():
    camera = _front_camera()
    front, _, uv = _render(_arm_across(0.25), camera)
    behind, _, uv_back = _render(_arm_across(-0.25), camera)
    # The forearm's middle, over the chest: skin (blue channel high) in front, red shirt when behind.
    u, v = np.round(0.5 * (uv[15] + uv[16])).astype(int)
    assert front[v, u, 0] > 60 and front[v, u, 2] > front[v, u, 0]
    u, v = np.round(0.5 * (uv_back[15] + uv_back[16])).astype(int)
    assert behind[v, u, 0] < 30 and behind[v, u, 2] > 60


def test_degenerate_pose_renders():
    """Coincident joints (a collapsed hip or shoulder line, a zero-length forearm) must not break the geometry."""
    pose = STANDING.copy()
    pose[4] = pose[1]
    pose[11] = pose[14]
    pose[16] = pose[15]
    image, _, _ = _render(pose, _front_camera())
    assert image.shape == (540, 400, 3)


def test_synthesize_ground_truth_is_consistent():
    clip = synthesize(_motion(), SMALL)
    assert clip.poses3d.shape == (12, 17, 3) and clip.keypoints2d.shape == (12, 17, 2)
    assert clip.poses3d.dtype == np.float32 and clip.world.shape == (12, 17, 3)
    np.testing.assert_allclose(clip.camera.project(clip.poses3d), clip.keypoints2d, atol=1e-3)
    np.testing.assert_allclose(clip.camera.world_to_camera(clip.world), clip.poses3d, atol=1e-4)
    assert (clip.poses3d[..., 2] > 0).all()
    kp = clip.keypoints2d
    assert (kp >= 0).all() and (kp[..., 0] < 320).all() and (kp[..., 1] < 240).all()
    height = person_height_px(clip)
    assert height.shape == (12,) and (height > 0.2 * 240).all()


def test_frames_are_lazy_reiterable_and_report_progress():
    calls = []
    clip = synthesize(_motion(5), SMALL, progress=lambda done, total: calls.append((done, total)))
    assert len(clip.frames) == 5 and calls == []
    first = list(clip.frames)
    assert len(first) == 5 and all(f.shape == (240, 320, 3) and f.dtype == np.uint8 for f in first)
    assert calls == [(i, 5) for i in range(1, 6)]
    assert np.array_equal(next(iter(clip.frames)), first[0])


def test_deterministic_for_a_seed():
    cfg = dataclasses.replace(SMALL, noise=2.0, blur=0.7, seed=3)
    a, b = synthesize(_motion(3), cfg), synthesize(_motion(3), cfg)
    for fa, fb in zip(a.frames, b.frames):
        assert np.array_equal(fa, fb)
    other = synthesize(_motion(3), dataclasses.replace(cfg, seed=4))
    assert not np.array_equal(next(iter(other.frames)), next(iter(a.frames)))
    assert a.style == b.style and a.style != other.style


def test_ground_truth_round_trip(tmp_path):
    clip = synthesize(_motion(4), SMALL)
    path = tmp_path / "gt.npz"
    save_ground_truth(path, clip)
    with np.load(path) as z:
        np.testing.assert_array_equal(z["poses3d_absolute"], clip.poses3d)
        np.testing.assert_allclose(z["poses3d"], clip.poses3d - clip.poses3d[:, :1])
        assert np.abs(z["poses3d"][:, 0]).max() == 0
        np.testing.assert_array_equal(z["keypoints2d"], clip.keypoints2d)
        assert list(z["joint_names"]) == list(H36M17.joints)
        assert (float(z["fps"]), int(z["width"]), int(z["height"])) == (30.0, 320, 240)
        cam = Camera(z["camera_rotation"], z["camera_position"], float(z["focal"]), z["center"],
                     int(z["width"]), int(z["height"]))
    np.testing.assert_allclose(cam.project(cam.world_to_camera(clip.world)), clip.keypoints2d, atol=1e-3)


def test_config_is_validated():
    with pytest.raises(ConfigError, match="background"):
        SynthConfig(background="moon")
    with pytest.raises(ConfigError):
        SynthConfig(noise=-1.0)


def test_write_clip(tmp_path):
    pytest.importorskip("pipeline.io.video")
    clip = synthesize(_motion(3), dataclasses.replace(SMALL, width=160, height=120))
    out = tmp_path / "clip.mp4"
    write_clip(clip, out)
    assert out.is_file() and out.stat().st_size > 0


@pytest.mark.skipif(not CMU_WALK.is_file(), reason="CMU mocap not found at ../shared (see shared/README.md)")
def test_cmu_walk_figure_in_frame():
    clip = synthesize(load_motion(CMU_WALK), SynthConfig(seed=0))
    assert clip.fps == 30.0 and clip.camera.width == 960
    frame = next(iter(clip.frames))
    kp = clip.keypoints2d
    assert (kp[..., 0] > 0).all() and (kp[..., 0] < 960).all() and (kp[..., 1] > 0).all() and (kp[..., 1] < 540).all()
    assert frame.shape == (540, 960, 3)


def _mediapipe_limbs(frames) -> np.ndarray:
    """(T, 12, 2) MediaPipe hips, knees, ankles, shoulders, elbows, wrists in H36M order; NaN when missed."""
    mp = pytest.importorskip("mediapipe")

    ids = (24, 26, 28, 23, 25, 27, 11, 13, 15, 12, 14, 16)   # H36M 1-6, 11-16; odd = person's left
    out = []
    with mp.solutions.pose.Pose(static_image_mode=False, model_complexity=1) as pose:
        for image in frames:
            res = pose.process(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
            h, w = image.shape[:2]
            lm = res.pose_landmarks.landmark if res.pose_landmarks else None
            out.append([(lm[i].x * w, lm[i].y * h) if lm else (np.nan, np.nan) for i in ids])
    return np.array(out)


@pytest.mark.slow
@pytest.mark.skipif(not CMU_WALK.is_file(), reason="CMU mocap not found at ../shared (see shared/README.md)")
def test_mediapipe_detects_the_figure():
    motion = resample(load_motion(CMU_WALK), 30.0)
    motion = dataclasses.replace(motion, joints=motion.joints[:60])
    clip = synthesize(motion, SynthConfig(seed=0))
    found = _mediapipe_limbs(clip.frames)
    ok = np.isfinite(found[:, :, 0]).all(axis=1)
    assert ok.mean() >= 0.9, f"MediaPipe found the figure in only {ok.mean():.0%} of frames"
    truth = clip.keypoints2d[:, [1, 2, 3, 4, 5, 6, 11, 12, 13, 14, 15, 16]]
    err = np.linalg.norm(found - truth, axis=-1).mean(axis=1) / person_height_px(clip)
    assert err[ok].mean() < 0.10, f"mean landmark error {err[ok].mean():.1%} of the person's height"
