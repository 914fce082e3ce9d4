"""Joint angles for sports analysis (pipeline/lifting/angles.py) on synthetic poses with known angles."""

from __future__ import annotations

import csv
import io
import warnings

import numpy as np
import pytest

from pipeline.errors import ShapeError
from pipeline.lifting.angles import ANGLE_NAMES, JointAngles, joint_angles, write_angles_csv
from pipeline.skeleton import H36M17
from tests.support.synth import random_rotation

# The test person faces +x with +y up, so +z is their right (X anterior, Y superior, Z right, as in the ISB).
UP = np.array([0.0, 1.0, 0.0])
X, Y, Z = np.eye(3)
J = {name: i for i, name in enumerate(H36M17.joints)}
SIDE = {"l": -1.0, "r": 1.0}
THIGH, SHANK, UPPER_ARM, FOREARM = 0.45, 0.43, 0.28, 0.25
UPPER_BODY = [J[n] for n in ("spine", "thorax", "neck", "head", "l_shoulder", "l_elbow", "l_wrist", "r_shoulder",
                             "r_elbow", "r_wrist")]


def _rotation(axis: np.ndarray, degrees: float) -> np.ndarray:
    """Right-handed rotation by ``degrees`` about the unit ``axis`` (Rodrigues)."""
    a = np.radians(degrees)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(a) * k + (1 - np.cos(a)) * k @ k


def _direction(forward: float, lateral: float, side: str) -> np.ndarray:
    """Unit vector from straight down: swung ``forward`` degrees towards +x, then ``lateral`` degrees outwards."""
    a, b = np.radians(forward), np.radians(lateral)
    return np.array([np.sin(a) * np.cos(b), -np.cos(a) * np.cos(b), SIDE[side] * np.sin(b)])


def _limb(pose, side, joints, lengths, upper, lower) -> None:
    """Place a limb's middle and end joints from its root along the (forward, lateral) directions given."""
    root, mid, end = (J[f"{side}_{n}"] for n in joints)
    pose[mid] = pose[root] + lengths[0] * _direction(*upper, side)
    pose[end] = pose[mid] + lengths[1] * _direction(*lower, side)


def _pose(thighs=None, knees=None, arms=None, elbows=None, lean=(0.0, 0.0), turn=0.0) -> np.ndarray:
    """(17, 3) a person standing straight, with the named angles set.

    thighs / arms: {side: (forward, lateral)} degrees; knees / elbows: {side: degrees bent}; lean: the upper
    body's (forward, sideways-right) tilt about the pelvis; turn: degrees about +y (counter-clockwise from above).
    """
    thighs, knees, arms, elbows = thighs or {}, knees or {}, arms or {}, elbows or {}
    p = np.zeros((17, 3))
    p[J["pelvis"]] = (0.0, 1.0, 0.0)
    for name, height in (("spine", 1.25), ("thorax", 1.5), ("neck", 1.6), ("head", 1.75)):
        p[J[name]] = (0.0, height, 0.0)
    for s, z in SIDE.items():
        p[J[f"{s}_hip"]] = (0.0, 1.0, 0.1 * z)
        p[J[f"{s}_shoulder"]] = (0.0, 1.45, 0.18 * z)
        thigh, arm = thighs.get(s, (0.0, 0.0)), arms.get(s, (0.0, 0.0))
        _limb(p, s, ("hip", "knee", "ankle"), (THIGH, SHANK), thigh, (thigh[0] - knees.get(s, 0.0), thigh[1]))
        _limb(p, s, ("shoulder", "elbow", "wrist"), (UPPER_ARM, FOREARM), arm, (arm[0] + elbows.get(s, 0.0), arm[1]))
    tilt = _rotation(Z, -lean[0]) @ _rotation(X, lean[1])  # sideways (+y towards +z), then forward (towards +x)
    p[UPPER_BODY] = (p[UPPER_BODY] - p[J["pelvis"]]) @ tilt.T + p[J["pelvis"]]
    return p @ _rotation(Y, turn).T


def _angles(*poses, times=None) -> dict[str, np.ndarray]:
    """Column name -> (T,) degrees of the poses, plus name + '_velocity'."""
    times = np.arange(len(poses)) * 0.04 if times is None else times
    result = joint_angles(np.stack(poses), UP, times)
    out = dict(zip(result.names, result.degrees.T))
    return out | {f"{n}_velocity": v for n, v in zip(result.names, result.velocities.T)}


def test_standing_straight_is_zero():
    a = _angles(*[_pose()] * 3)
    for name in ANGLE_NAMES:
        np.testing.assert_allclose(a[name], 0.0, atol=1e-9, err_msg=name)
        np.testing.assert_allclose(a[f"{name}_velocity"], 0.0, atol=1e-9, err_msg=name)


def test_bent_knee_and_elbow_read_their_angle():
    a = _angles(_pose(knees={"r": 60.0, "l": 15.0}, elbows={"l": 90.0, "r": 135.0}))
    assert a["r_knee_flexion"][0] == pytest.approx(60.0, abs=0.1)
    assert a["l_knee_flexion"][0] == pytest.approx(15.0, abs=0.1)
    assert a["l_elbow_flexion"][0] == pytest.approx(90.0, abs=0.1)
    assert a["r_elbow_flexion"][0] == pytest.approx(135.0, abs=0.1)
    # Bending the knee moves only the shank: the thigh, hence the hip, stays put.
    assert a["r_hip_flexion"][0] == pytest.approx(0.0, abs=1e-9)


def test_hip_flexion_forward_and_abduction_away_from_the_midline():
    a = _angles(_pose(thighs={"r": (30.0, 0.0), "l": (-20.0, 0.0)}), _pose(thighs={"r": (0.0, 30.0), "l": (0.0, 30.0)}))
    np.testing.assert_allclose(a["r_hip_flexion"], [30.0, 0.0], atol=1e-6)
    np.testing.assert_allclose(a["l_hip_flexion"], [-20.0, 0.0], atol=1e-6)     # extension is negative
    np.testing.assert_allclose(a["r_hip_abduction"], [0.0, 30.0], atol=1e-6)
    np.testing.assert_allclose(a["l_hip_abduction"], [0.0, 30.0], atol=1e-6)
    crossed = _angles(_pose(thighs={"r": (0.0, -10.0)}))                         # knee towards the midline
    assert crossed["r_hip_abduction"][0] == pytest.approx(-10.0, abs=1e-6)


def test_deep_hip_flexion_keeps_its_abduction():
    a = _angles(_pose(thighs={"r": (110.0, 25.0)}, knees={"r": 120.0}))
    assert a["r_hip_flexion"][0] == pytest.approx(110.0, abs=1e-6)
    assert a["r_hip_abduction"][0] == pytest.approx(25.0, abs=1e-6)


def test_shoulder_flexion_and_abduction_beyond_ninety_degrees():
    a = _angles(_pose(arms={"r": (120.0, 0.0), "l": (0.0, 150.0)}), _pose(arms={"r": (-30.0, 0.0), "l": (0.0, 90.0)}))
    np.testing.assert_allclose(a["r_shoulder_flexion"], [120.0, -30.0], atol=1e-6)
    np.testing.assert_allclose(a["r_shoulder_abduction"], [0.0, 0.0], atol=1e-6)
    np.testing.assert_allclose(a["l_shoulder_abduction"], [150.0, 90.0], atol=1e-6)
    np.testing.assert_allclose(a["l_shoulder_flexion"], [0.0, 0.0], atol=1e-6)


def test_shoulder_components_split_the_elevation_by_its_plane():
    # Arm horizontal, halfway between forward and sideways: elevation 90 in the 45-degree plane.
    diagonal = _pose(arms={"r": (90.0, 45.0)})
    a = _angles(diagonal)
    assert a["r_shoulder_flexion"][0] == pytest.approx(90.0 / np.sqrt(2.0), abs=1e-6)
    assert a["r_shoulder_abduction"][0] == pytest.approx(90.0 / np.sqrt(2.0), abs=1e-6)
    across = _angles(_pose(arms={"l": (90.0, -20.0)}))                         # horizontal, across the chest
    assert across["l_shoulder_abduction"][0] < -20.0
    assert np.hypot(across["l_shoulder_flexion"][0], across["l_shoulder_abduction"][0]) == pytest.approx(90.0)


def test_trunk_lean_forward_and_sideways():
    a = _angles(_pose(lean=(20.0, 0.0)), _pose(lean=(0.0, 15.0)), _pose(lean=(-10.0, -5.0)))
    np.testing.assert_allclose(a["trunk_lean_forward"], [20.0, 0.0, -10.0], atol=1e-6)
    np.testing.assert_allclose(a["trunk_lean_sideways"], [0.0, 15.0, -5.0], atol=1e-6)
    # Leaning forward over straight legs is hip flexion; the arms lean with the thorax, so the shoulders do not move.
    assert a["r_hip_flexion"][0] == pytest.approx(20.0, abs=1e-6)
    assert a["l_shoulder_flexion"][0] == pytest.approx(0.0, abs=1e-6)


def test_pelvis_turning_at_ninety_degrees_per_second_past_half_a_turn():
    rng = np.random.default_rng(1)
    times = np.cumsum(rng.uniform(0.02, 0.06, 90))                               # variable frame rate, ~3.6 s
    a = _angles(*[_pose(turn=90.0 * t) for t in times], times=times)
    assert a["pelvis_rotation"].max() > 300.0
    np.testing.assert_allclose(a["pelvis_rotation"], 90.0 * (times - times[0]), atol=1e-6)
    np.testing.assert_allclose(a["pelvis_rotation_velocity"], 90.0, atol=1e-6)
    np.testing.assert_allclose(a["trunk_lean_forward"], 0.0, atol=1e-6)          # turning is not leaning


def test_velocity_takes_the_short_way_round_at_plus_minus_180():
    times = np.arange(7) * 0.5
    a = _angles(*[_pose(lean=(150.0 + 20.0 * t, 0.0)) for t in times], times=times)  # past upside down
    assert a["trunk_lean_forward"][-1] == pytest.approx(-150.0)
    np.testing.assert_allclose(a["trunk_lean_forward_velocity"], 20.0, atol=1e-6)


def test_velocities_are_numpy_gradient_over_uneven_times():
    rng = np.random.default_rng(2)
    times = np.cumsum(rng.uniform(0.01, 0.05, 60))
    knee = 40.0 + 30.0 * np.sin(3.0 * times)
    result = joint_angles(np.stack([_pose(knees={"l": k}) for k in knee]), UP, times)
    column = ANGLE_NAMES.index("l_knee_flexion")
    np.testing.assert_allclose(result.degrees[:, column], knee, atol=1e-9)
    np.testing.assert_allclose(result.velocities[:, column], np.gradient(knee, times), atol=1e-9)
    np.testing.assert_allclose(result.velocities[1:-1, column], 90.0 * np.cos(3.0 * times[1:-1]), atol=2.0)


def test_mirrored_pose_swaps_left_and_right():
    times = np.array([0.0, 0.1, 0.25, 0.3])
    poses = np.stack([_pose(thighs={"r": (30.0 + 10 * i, 10.0), "l": (-5.0, 20.0)}, knees={"l": 45.0},
                            arms={"r": (60.0, 0.0), "l": (20.0, 100.0)}, elbows={"r": 30.0 + i},
                            lean=(10.0, 8.0 - 4 * i), turn=25.0 * i) for i in range(4)])
    mirrored = poses[:, H36M17.flip_permutation()] * [1.0, 1.0, -1.0]          # reflect z, relabel sides
    a, m = joint_angles(poses, UP, times), joint_angles(mirrored, UP, times)
    assert np.ptp(a.degrees[:, ANGLE_NAMES.index("pelvis_rotation")]) > 50.0
    for k, name in enumerate(ANGLE_NAMES):
        sign = -1.0 if name in ("trunk_lean_sideways", "pelvis_rotation") else 1.0
        twin = {"l": "r", "r": "l"}.get(name[0], "") + name[1:] if name[1] == "_" else name
        for field in ("degrees", "velocities"):
            np.testing.assert_allclose(getattr(m, field)[:, k], sign * getattr(a, field)[:, ANGLE_NAMES.index(twin)],
                                       atol=1e-9, err_msg=f"{name} {field}")
    assert not np.allclose(a.degrees[:, ANGLE_NAMES.index("l_hip_flexion")],
                           a.degrees[:, ANGLE_NAMES.index("r_hip_flexion")])    # the swap is visible


def test_invariant_to_a_rotated_and_moved_scene():
    rng = np.random.default_rng(3)
    times = np.cumsum(rng.uniform(0.02, 0.05, 12))
    poses = np.stack([_pose(thighs={"r": tuple(rng.uniform(-30, 90, 2)), "l": tuple(rng.uniform(-30, 40, 2))},
                            knees={"r": rng.uniform(0, 90)}, arms={"l": tuple(rng.uniform(-40, 150, 2))},
                            elbows={"l": rng.uniform(0, 120)}, lean=tuple(rng.uniform(-20, 40, 2)),
                            turn=rng.uniform(-60, 60)) for _ in times])
    poses += rng.normal(0, 0.01, poses.shape)                                    # not a tidy person any more
    rotation = random_rotation(rng)
    moved = poses @ rotation.T + rng.normal(0, 3, 3)
    a, b = joint_angles(poses, UP, times), joint_angles(moved, 2.0 * rotation @ UP, times)  # up need not be unit
    assert np.isfinite(a.degrees).all()
    np.testing.assert_allclose(b.degrees, a.degrees, atol=1e-8)
    np.testing.assert_allclose(b.velocities, a.velocities, atol=1e-6)


def test_camera_frame_with_y_down():
    camera = np.diag([1.0, -1.0, -1.0])                                         # y up -> y down, a proper rotation
    pose = _pose(thighs={"r": (30.0, 0.0)}, lean=(20.0, 0.0))
    a = joint_angles(pose[None] @ camera.T, np.array([0.0, -1.0, 0.0]), np.zeros(1))
    assert a.degrees[0, ANGLE_NAMES.index("trunk_lean_forward")] == pytest.approx(20.0)
    assert a.degrees[0, ANGLE_NAMES.index("r_hip_flexion")] == pytest.approx(50.0)


def test_degenerate_and_missing_joints_give_nan_without_warnings():
    poses = np.stack([_pose(knees={"r": 10.0 * i}) for i in range(7)])
    poses[2, J["r_knee"]] = poses[2, J["r_hip"]]                                 # zero-length thigh
    poses[4, J["l_wrist"]] = np.nan                                              # an unseen joint
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = joint_angles(poses, UP, np.arange(7) * 0.1)
        empty = joint_angles(np.full((3, 17, 3), np.nan), UP, np.arange(3) * 0.1)
    a = dict(zip(result.names, result.degrees.T))
    v = dict(zip(result.names, result.velocities.T))
    for name in ("r_knee_flexion", "r_hip_flexion", "r_hip_abduction"):
        assert np.isnan(a[name][2]) and np.isfinite(np.delete(a[name], 2)).all(), name
    assert np.isnan(a["l_elbow_flexion"][4]) and np.isfinite(np.delete(a["l_elbow_flexion"], 4)).all()
    assert np.isnan(result.degrees).sum() == 4                                   # nothing else was lost
    # Velocities are NaN only where the angle is, one-sided next to the hole.
    np.testing.assert_array_equal(np.isnan(result.velocities), np.isnan(result.degrees))
    np.testing.assert_allclose(v["r_knee_flexion"][[0, 1, 3, 4, 5, 6]], 100.0, atol=1e-9)
    assert np.isnan(empty.degrees).all() and np.isnan(empty.velocities).all()


def test_a_single_frame_has_zero_velocity():
    result = joint_angles(_pose(knees={"l": 30.0})[None], UP, np.array([5.0]))
    assert result.degrees.shape == result.velocities.shape == (1, len(ANGLE_NAMES))
    np.testing.assert_array_equal(result.velocities, 0.0)


def test_shapes_are_checked():
    poses, times = np.stack([_pose()] * 2), np.array([0.0, 0.1])
    result = joint_angles(poses.astype(np.float32), UP, times)
    assert result.names == ANGLE_NAMES and result.degrees.dtype == np.float64 and len(result) == 2
    with pytest.raises(ShapeError, match="poses"):
        joint_angles(poses[:, :16], UP, times)
    with pytest.raises(ShapeError, match="times"):
        joint_angles(poses, UP, times[:1])
    with pytest.raises(ShapeError, match="times"):
        joint_angles(poses, UP, times[::-1])
    with pytest.raises(ShapeError, match="up"):
        joint_angles(poses, np.zeros(3), times)
    with pytest.raises(ShapeError, match="degrees"):
        JointAngles(ANGLE_NAMES, np.zeros((2, 14)), np.zeros((2, 15)), times)
    with pytest.raises(ShapeError, match="velocities"):
        JointAngles(ANGLE_NAMES, np.zeros((2, 15)), np.zeros((3, 15)), times)


def test_csv_round_trip(tmp_path):
    first = joint_angles(np.stack([_pose(knees={"r": 20.0 + i}) for i in range(4)]), UP, np.arange(4) / 30)
    poses = np.stack([_pose(arms={"l": (45.0, 0.0)})] * 2)
    poses[1, J["l_elbow"]] = np.nan
    second = joint_angles(poses, UP, np.array([1.0, 1.5]))
    tracks = [(3, np.arange(10, 14), first), (7, np.array([30, 45]), second)]
    write_angles_csv(tmp_path / "angles.csv", tracks)
    with open(tmp_path / "angles.csv", newline="") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
    assert reader.fieldnames == ["track_id", "frame", "time", *ANGLE_NAMES, *(f"{n}_velocity" for n in ANGLE_NAMES)]
    assert len(rows) == 6
    assert [(int(r["track_id"]), int(r["frame"])) for r in rows] == [(3, 10), (3, 11), (3, 12), (3, 13), (7, 30),
                                                                       (7, 45)]
    assert float(rows[5]["time"]) == 1.5
    assert rows[1]["r_knee_flexion"] == "21.000" and float(rows[1]["r_knee_flexion_velocity"]) == pytest.approx(30.0)
    assert rows[4]["l_shoulder_flexion"] == "45.000"
    assert rows[5]["l_elbow_flexion"] == "" and rows[5]["l_shoulder_flexion"] == ""    # NaN -> empty cell
    for row, (_, _, angles), t in zip(rows, [tracks[0]] * 4 + [tracks[1]] * 2, [0, 1, 2, 3, 0, 1]):
        for k, name in enumerate(ANGLE_NAMES):
            if np.isfinite(angles.degrees[t, k]):
                assert float(row[name]) == pytest.approx(angles.degrees[t, k], abs=5e-4)
    stream = io.StringIO(newline="")
    write_angles_csv(stream, tracks)
    assert stream.getvalue() == (tmp_path / "angles.csv").read_bytes().decode()


def test_csv_rejects_frames_that_do_not_match():
    angles = joint_angles(np.stack([_pose()] * 3), UP, np.arange(3) * 0.1)
    with pytest.raises(ShapeError, match="frames"):
        write_angles_csv(io.StringIO(), [(1, np.arange(2), angles)])
