"""Tests for pipeline/keypoints.py: COCO-17 -> H36M-17 mapping and gap filling."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.errors import ConfigError, ShapeError
from pipeline.keypoints import coco_to_h36m, fill_gaps, to_h36m
from pipeline.skeleton import COCO17, H36M17

# A hand-built frontal COCO-17 pose in pixels (image y down).
COCO_POSE = {
    "nose": (500, 200), "l_eye": (510, 190), "r_eye": (490, 190), "l_ear": (520, 195), "r_ear": (480, 195),
    "l_shoulder": (560, 260), "r_shoulder": (440, 260), "l_elbow": (580, 340), "r_elbow": (420, 340),
    "l_wrist": (590, 420), "r_wrist": (410, 420), "l_hip": (540, 450), "r_hip": (460, 450),
    "l_knee": (545, 560), "r_knee": (455, 560), "l_ankle": (550, 670), "r_ankle": (450, 670),
}


def coco_frames(t=3) -> np.ndarray:
    pose = np.array([COCO_POSE[name] for name in COCO17.joints], dtype=np.float32)
    return np.stack([pose + np.float32(5 * i) for i in range(t)])


def h(name):
    return H36M17.index(name)


def c(name):
    return COCO17.index(name)


def test_derived_joints():
    kp, scores = coco_to_h36m(coco_frames(1))
    assert kp.shape == (1, 17, 2) and kp.dtype == np.float32
    np.testing.assert_allclose(kp[0, h("pelvis")], [500, 450])          # mid-hips
    np.testing.assert_allclose(kp[0, h("thorax")], [500, 260])          # mid-shoulders
    np.testing.assert_allclose(kp[0, h("spine")], [500, 355])           # halfway pelvis -> thorax
    np.testing.assert_allclose(kp[0, h("neck")], [500, 200])            # the nose
    np.testing.assert_allclose(kp[0, h("head")], [500, 180])            # eyes + (eyes - nose)
    np.testing.assert_array_equal(scores, np.ones((1, 17), np.float32))


def test_direct_joints_equal():
    coco = coco_frames(3)
    kp, _ = coco_to_h36m(coco)
    for side in ("l", "r"):
        for part in ("hip", "knee", "ankle", "shoulder", "elbow", "wrist"):
            np.testing.assert_array_equal(kp[:, h(f"{side}_{part}")], coco[:, c(f"{side}_{part}")], err_msg=part)


def test_left_right_not_swapped():
    kp, _ = coco_to_h36m(coco_frames(1))
    # COCO's left joints are on the image right of this frontal pose; the mapping keeps them left.
    assert kp[0, h("l_wrist"), 0] > kp[0, h("r_wrist"), 0]
    assert kp[0, h("l_ankle"), 0] > kp[0, h("r_ankle"), 0]


def test_scores_of_derived_joints_are_minima():
    coco = coco_frames(2)
    scores = np.linspace(0.2, 0.99, 34, dtype=np.float32).reshape(2, 17)
    _, out = coco_to_h36m(coco, scores)
    assert out.shape == (2, 17)
    np.testing.assert_allclose(out[:, h("pelvis")], np.minimum(scores[:, c("l_hip")], scores[:, c("r_hip")]))
    np.testing.assert_allclose(out[:, h("thorax")],
                               np.minimum(scores[:, c("l_shoulder")], scores[:, c("r_shoulder")]))
    np.testing.assert_allclose(out[:, h("spine")],
                               scores[:, [c("l_hip"), c("r_hip"), c("l_shoulder"), c("r_shoulder")]].min(1))
    np.testing.assert_allclose(out[:, h("head")], scores[:, [c("nose"), c("l_eye"), c("r_eye")]].min(1))
    np.testing.assert_allclose(out[:, h("neck")], scores[:, c("nose")])
    np.testing.assert_allclose(out[:, h("r_knee")], scores[:, c("r_knee")])
    np.testing.assert_allclose(out[:, h("l_wrist")], scores[:, c("l_wrist")])


def test_missing_joints_propagate_as_nan():
    coco = coco_frames(2)
    coco[1, c("l_hip")] = np.nan
    kp, _ = coco_to_h36m(coco)
    assert np.isnan(kp[1, h("pelvis")]).all() and np.isnan(kp[1, h("spine")]).all()
    assert np.isnan(kp[1, h("l_hip")]).all()
    assert np.isfinite(kp[0]).all() and np.isfinite(kp[1, h("thorax")]).all()


@pytest.mark.parametrize("shape", [(3, 16, 2), (3, 17, 3), (17, 2), (3, 17)])
def test_coco_shape_errors(shape):
    with pytest.raises(ShapeError):
        coco_to_h36m(np.zeros(shape, np.float32))


def test_coco_score_shape_error():
    with pytest.raises(ShapeError):
        coco_to_h36m(coco_frames(3), np.ones((3, 16), np.float32))


def test_to_h36m_dispatch():
    coco = coco_frames(2)
    np.testing.assert_array_equal(to_h36m(coco, None, "coco17")[0], coco_to_h36m(coco)[0])
    h36 = np.random.default_rng(0).normal(size=(4, 17, 2))
    kp, scores = to_h36m(h36, None, "h36m17")
    np.testing.assert_allclose(kp, h36.astype(np.float32))
    assert kp.dtype == np.float32 and scores.shape == (4, 17) and (scores == 1).all()
    with pytest.raises(ShapeError):
        to_h36m(np.zeros((4, 16, 2)), None, "h36m17")
    with pytest.raises(ConfigError, match="unknown keypoint format"):
        to_h36m(h36, None, "openpose25")


def test_fill_gaps_linear():
    t = np.arange(10, dtype=np.float64)
    kp = np.stack([np.stack([2 * t + j, -t + 3 * j], -1) for j in range(17)], 1)   # (10, 17, 2), linear in t
    holes = kp.copy()
    holes[3:6, 2] = np.nan        # a run of missing frames
    holes[7, 5, 0] = np.nan       # one missing coordinate
    out = fill_gaps(holes)
    assert out.dtype == np.float32 and out.shape == kp.shape and np.isfinite(out).all()
    np.testing.assert_allclose(out, kp, atol=1e-5)
    assert np.isnan(holes).sum() == 7, "fill_gaps must not modify its input"


def test_fill_gaps_holds_the_ends():
    kp = np.random.default_rng(1).normal(size=(6, 17, 2))
    holes = kp.copy()
    holes[:2, 4] = np.nan
    holes[-3:, 9] = np.nan
    out = fill_gaps(holes)
    np.testing.assert_allclose(out[:2, 4], kp[[2, 2], 4], atol=1e-6)
    np.testing.assert_allclose(out[-3:, 9], kp[[2, 2, 2], 9], atol=1e-6)
    np.testing.assert_allclose(out[2:, 4], kp[2:, 4], atol=1e-6)


def test_fill_gaps_interpolates_between_known_values():
    kp = np.zeros((5, 17, 2))
    kp[0, 3] = [0.0, 10.0]
    kp[4, 3] = [8.0, 30.0]
    kp[1:4, 3] = np.nan
    out = fill_gaps(kp)
    np.testing.assert_allclose(out[:, 3, 0], [0, 2, 4, 6, 8])
    np.testing.assert_allclose(out[:, 3, 1], [10, 15, 20, 25, 30])


def test_fill_gaps_raises_when_joint_missing_throughout():
    kp = np.random.default_rng(2).normal(size=(8, 17, 2))
    kp[:, 11] = np.nan
    with pytest.raises(ShapeError, match="joint 11"):
        fill_gaps(kp)
