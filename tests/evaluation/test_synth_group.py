"""Clips of several people (pipeline/evaluation/synth_group.py): paths, facing, loops, visibility, truth."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pipeline.errors import ConfigError
from pipeline.evaluation.synth import SynthConfig
from pipeline.evaluation.synth_group import (
    PATHS,
    GroupConfig,
    loop_motion,
    path_points,
    pick_motions,
    place_on_path,
    save_group_truth,
    synthesize_group,
    travels,
    visible_fraction,
)
from pipeline.training.mocap import Motion
from tests.support.synth import STANDING, rot_y

FPS = 30.0


def _walker(frames: int, speed: float = 1.3, heading_deg: float = 90.0, name: str = "walk") -> Motion:
    """STANDING facing ``heading_deg`` (atan2(z, x) convention) and moving that way, with swinging feet."""
    yaw = math.radians(90.0 - heading_deg)                   # rot_y(0) faces +Z (90 degrees)
    pose = STANDING @ rot_y(yaw).T
    direction = np.array([math.cos(math.radians(heading_deg)), 0.0, math.sin(math.radians(heading_deg))])
    t = np.arange(frames)[:, None, None]
    joints = pose[None] + speed * t / FPS * direction
    swing = 0.15 * np.sin(2 * np.pi * t[:, 0, 0] / 30.0)
    joints[:, [3, 6]] += np.stack([swing, -swing], axis=1)[..., None] * direction
    return Motion(joints.astype(np.float32), FPS, "0", name)


def _facing(joints: np.ndarray) -> float:
    hips = (joints[:, 1] - joints[:, 4])[:, [0, 2]].mean(axis=0)
    return math.degrees(math.atan2(-hips[0], hips[1]))


def test_a_walker_is_put_on_its_path_facing_along_it():
    path = np.stack([np.linspace(0, -4, 90), np.full(90, 5.0)], axis=1)       # walking towards -x
    placed = place_on_path(_walker(90, heading_deg=30.0).joints, path)
    assert placed.shape == (90, 17, 3)
    np.testing.assert_allclose(placed[:, 0, [0, 2]], path, atol=0.05)
    assert abs(((_facing(placed) - 180.0) + 180) % 360 - 180) < 2.0
    assert np.allclose(placed[..., 1], _walker(90).joints[..., 1], atol=1e-6)  # heights untouched


def test_a_short_motion_loops_without_jumps():
    motion = _walker(40).joints.astype(np.float64)
    local = motion - np.linspace(motion[0, 0], motion[-1, 0], 40)[:, None] * [1, 0, 1]
    looped = loop_motion(local, 200)
    assert looped.shape == (200, 17, 3)
    step = np.abs(np.diff(looped, axis=0)).max()
    assert step < 2.5 * np.abs(np.diff(local, axis=0)).max()
    assert loop_motion(local, 30).shape == (30, 17, 3)


def test_paths_cover_crossing_leaving_and_staying():
    crossing = path_points(PATHS[0], 101)
    assert crossing[0, 0] == pytest.approx(-0.85) and crossing[-1, 0] == pytest.approx(0.85)
    leaving = path_points(PATHS[2], 101)
    assert leaving[:, 0].max() > 1.2 and leaving[-1, 0] < 0.5      # goes out of view and comes back
    assert travels(PATHS[0]) and not travels(PATHS[3])


def test_visibility_counts_nearer_people_and_the_image_edge():
    boxes = np.array([[[100, 100, 200, 300]], [[150, 100, 250, 300]], [[-50, 100, 50, 300]]], np.float64)
    depths = np.array([[5.0], [4.0], [6.0]])                        # the second is nearest
    visible = visible_fraction(boxes, depths, 640, 360)
    np.testing.assert_allclose(visible[:, 0], [0.5, 1.0, 0.5], atol=0.05)


def test_walkers_get_walks_and_standers_get_the_rest():
    motions = [_walker(60, name="a"), _walker(60, name="b"), _walker(60, speed=0.0, name="still")]
    picked = pick_motions(motions, 4, np.random.default_rng(0))
    assert [m.name == "still" for m in picked] == [False, False, False, True]
    assert len({m.name for m in picked[:2]}) == 2                   # different motions while there are enough
    with pytest.raises(ConfigError):
        pick_motions([], 2, np.random.default_rng(0))


def test_group_clip_truth_and_rendering(tmp_path):
    motions = [_walker(45, name=str(k)) for k in range(3)]
    config = GroupConfig(people=3, seconds=1.0, synth=SynthConfig(width=320, height=180, noise=0.0, blur=0.0))
    clip = synthesize_group(motions, config)
    assert clip.poses3d.shape == (3, 30, 17, 3) and clip.boxes.shape == (3, 30, 4) and clip.num_frames == 30
    assert (clip.poses3d[..., 2] > 1.0).all()                      # everyone in front of the camera
    inside = (clip.keypoints2d >= 0).all(-1) & (clip.keypoints2d < [320, 180]).all(-1)
    assert inside[0].mean() > 0.9 and inside[1].mean() > 0.9
    frames = list(clip.frames)
    assert len(frames) == 30 and frames[0].shape == (180, 320, 3)
    # The people are drawn: pixels inside the first person's box differ from the empty scene's.
    x1, y1, x2, y2 = clip.boxes[0, 0].astype(int)
    assert frames[0][max(y1, 0):y2, max(x1, 0):x2].std() > 10
    save_group_truth(tmp_path / "gt.npz", clip)
    with np.load(tmp_path / "gt.npz") as gt:
        assert gt["ids"].tolist() == [0, 1, 2] and gt["visible"].shape == (3, 30)
    with pytest.raises(ConfigError):
        synthesize_group(motions[:2], config)
    with pytest.raises(ConfigError):
        GroupConfig(people=0)
