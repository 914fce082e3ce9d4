"""Tests for pipeline/io/bvh.py: BVH export of a fitted skeleton, read back by our reader and by Blender."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import time

import numpy as np
import pytest
import torch

from pipeline.errors import InputError, ShapeError
from pipeline.io.bvh import CAMERA_TO_BVH, bvh_motion, bvh_positions, read_bvh, write_bvh
from pipeline.lifting import rig
from pipeline.lifting.fit import fit_skeleton
from pipeline.lifting.world import ANKLE_HEIGHT_M, WorldFrame
from pipeline.skeleton import RIG_JOINTS, RIG_PARENTS
from pipeline.types import SkeletonFit
from tests.support.synth import STANDING, moving_person, random_rotation, rot_y

FLIP = np.diag([1.0, -1.0, -1.0])  # the synthetic Y-up world -> camera axes (y down, z forward)


def _fit_from(rotations: np.ndarray) -> SkeletonFit:
    """A SkeletonFit of STANDING's bone lengths with the given (T, 20, 3, 3) local rotations."""
    poses = (STANDING @ FLIP)[None]
    offsets = rig.rest_offsets(poses, rig.bone_lengths(poses))
    positions, _ = rig.forward_kinematics(torch.from_numpy(rotations), torch.from_numpy(offsets))
    return SkeletonFit(offsets.astype(np.float32), rotations.astype(np.float32), positions.numpy().astype(np.float32))


def _random_fit(frames: int = 12, seed: int = 0) -> SkeletonFit:
    """Uniformly random local rotations for every joint and frame (every Euler range, both x signs)."""
    rng = np.random.default_rng(seed)
    return _fit_from(np.stack([[random_rotation(rng) for _ in RIG_JOINTS] for _ in range(frames)]))


@pytest.fixture(scope="module")
def walking_fit() -> SkeletonFit:
    """fit_skeleton on a synthetic walking-ish track in camera axes (pelvis at the origin)."""
    poses = moving_person(30, seed=3) @ FLIP
    return fit_skeleton(poses - poses[:, :1], fps=25.0)


def _world() -> WorldFrame:
    """A camera pitched 20 degrees down and turned 30 degrees, 1.5 m up, as estimate_world would give."""
    a = np.radians(20.0)
    pitch = np.array([[1, 0, 0], [0, np.cos(a), np.sin(a)], [0, -np.sin(a), np.cos(a)]])
    return WorldFrame(rot_y(np.radians(30.0)) @ pitch @ FLIP, np.array([0.3, 1.5, -0.2]))


def _written(tmp_path, fit, world=None, root3d=None, frame_time=0.04):
    path = tmp_path / "clip_track1.bvh"
    write_bvh(path, fit, frame_time, world, root3d)
    return path


def test_file_reproduces_the_fit_without_world(tmp_path, walking_fit):
    names, positions = bvh_positions(_written(tmp_path, walking_fit))
    legs = walking_fit.offsets[[RIG_JOINTS.index(n) for n in ("r_hip", "r_knee", "r_ankle")], 1].sum()
    expected = walking_fit.positions @ CAMERA_TO_BVH.T + [0.0, ANKLE_HEIGHT_M - legs, 0.0]
    assert names == list(RIG_JOINTS)
    assert np.abs(positions - expected).max() < 1e-3
    # Pelvis fixed at leg height; the feet of a walking person stay near the floor.
    assert np.allclose(positions[:, 0], positions[0, 0]) and positions[0, 0, 1] > 0.7
    ankles = positions[:, [RIG_JOINTS.index("r_ankle"), RIG_JOINTS.index("l_ankle")], 1]
    assert np.abs(ankles.min(axis=1) - ANKLE_HEIGHT_M).max() < 0.1


@pytest.mark.parametrize("seed", [0, 1])
def test_file_reproduces_random_rotations_with_world_and_trajectory(tmp_path, seed):
    fit = _random_fit(seed=seed)
    world = _world()
    root3d = np.random.default_rng(seed).normal(size=(len(fit.positions), 3)) + [0.0, 0.0, 4.0]
    _, positions = bvh_positions(_written(tmp_path, fit, world, root3d))
    assert np.abs(positions - world.apply(fit.positions + root3d[:, None])).max() < 1e-3
    # The world frame without a trajectory: the same body orientation, the pelvis fixed.
    _, still = bvh_positions(_written(tmp_path, fit, world))
    turned = fit.positions @ world.rotation.T
    assert np.abs(still - still[:, :1] - turned).max() < 1e-3


def test_motion_only_turns_the_root():
    fit = _random_fit()
    root, angles = bvh_motion(fit, None, None)
    assert root.shape == (12, 3) and angles.shape == (12, 20, 3)
    from_angles = np.stack([_zxy(a) for a in angles.reshape(-1, 3)]).reshape(12, 20, 3, 3)
    assert np.abs(from_angles[:, 1:] - fit.rotations[:, 1:]).max() < 1e-5
    assert np.abs(from_angles[:, 0] - CAMERA_TO_BVH @ fit.rotations[:, 0]).max() < 1e-5


def _zxy(angles_deg: np.ndarray) -> np.ndarray:
    """Rz(z) @ Rx(x) @ Ry(y) from (z, x, y) degrees, written out by hand (independent of scipy)."""
    z, x, y = np.radians(angles_deg)
    rz = np.array([[np.cos(z), -np.sin(z), 0], [np.sin(z), np.cos(z), 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, np.cos(x), -np.sin(x)], [0, np.sin(x), np.cos(x)]])
    return rz @ rx @ rot_y(y)


def test_header(tmp_path):
    fit = _random_fit(frames=7)
    path = _written(tmp_path, fit, frame_time=1 / 30)
    joints, motion, frame_time = read_bvh(path)
    names, parents, channels = [j.name for j in joints], [j.parent for j in joints], [j.channels for j in joints]
    offsets = np.array([j.offset for j in joints])
    text = path.read_text()
    assert names == list(RIG_JOINTS) and len(names) == 20 and parents == list(RIG_PARENTS)
    assert np.allclose(offsets[1:], fit.offsets[1:], atol=1e-6) and np.allclose(offsets[0], 0)
    assert channels[0] == ["Xposition", "Yposition", "Zposition", "Zrotation", "Xrotation", "Yrotation"]
    assert all(c == ["Zrotation", "Xrotation", "Yrotation"] for c in channels[1:])
    assert motion.shape == (7, 6 + 19 * 3) and "Frames: 7\n" in text and "Frame Time: 0.033333\n" in text
    assert frame_time == pytest.approx(1 / 30, abs=1e-6)
    assert text.count("End Site") == len(rig.LEAVES) and "ROOT pelvis\n" in text
    assert sum(j.end_site is not None for j in joints) == len(rig.LEAVES)


def test_writes_to_an_open_file(tmp_path):
    buffer = io.StringIO()
    fit = _random_fit(frames=3)
    write_bvh(buffer, fit, 0.04)
    assert buffer.getvalue() == _written(tmp_path, fit).read_text()


def test_euler_angles_are_continuous():
    # Three full turns about the vertical: the y channel climbs steadily to 1080.
    turns = np.linspace(0.0, 3 * 2 * np.pi, 121)
    spin = np.tile(np.eye(3), (len(turns), 20, 1, 1))
    spin[:, 0] = CAMERA_TO_BVH @ np.stack([rot_y(a) for a in turns])
    _, angles = bvh_motion(_fit_from(spin), None, None)
    yaw = angles[:, 0, 2]
    assert np.all(np.diff(yaw) > 0) and abs(abs(yaw[-1] - yaw[0]) - 1080) < 1e-3
    assert np.abs(np.diff(angles, axis=0)).max() < 180
    # A twisted somersault passes x = +-90 (exactly, at gimbal lock), where the principal z-x-y angles flip:
    # the curves stay smooth and x keeps climbing.
    a = np.radians(np.arange(0.0, 361.0, 5.0))
    flip = np.tile(np.eye(3), (len(a), 20, 1, 1))
    flip[:, 0] = CAMERA_TO_BVH @ np.stack([_zxy(np.array([0.0, np.degrees(x), 30.0])) for x in a])
    _, angles = bvh_motion(_fit_from(flip), None, None)
    assert np.abs(np.diff(angles, axis=0)).max() < 5.01
    assert np.allclose(angles[:, 0, 1], np.arange(0.0, 361.0, 5.0), atol=1e-3)
    assert np.allclose(angles[:, 0, [0, 2]], [0.0, 30.0], atol=1e-3)


def test_bad_inputs(tmp_path):
    fit = _random_fit(frames=4)
    with pytest.raises(InputError):
        bvh_motion(fit, None, np.zeros((4, 3)))
    with pytest.raises(ShapeError):
        bvh_motion(fit, _world(), np.zeros((5, 3)))
    with pytest.raises(ShapeError):
        write_bvh(tmp_path / "x.bvh", fit, 0.0)
    (tmp_path / "bad.bvh").write_text("HIERARCHY\nROOT a\n{\nOFFSET 0 0 0\nCHANNELS 2 Xposition Yposition\n}\n"
                                      "MOTION\nFrames: 2\nFrame Time: 0.1\n1.0 2.0\n3.0\n")
    with pytest.raises(InputError):
        read_bvh(tmp_path / "bad.bvh")


_BLENDER_SCRIPT = """
import builtins, json, sys
import bpy
from io_anim_bvh import import_bvh
# Blender 3.4's importer opens the file with mode 'rU', which Python 3.11 (Debian's Blender build) rejects.
import_bvh.open = lambda file, mode="r", *args, **kw: builtins.open(file, mode.replace("U", ""), *args, **kw)
path, frames = sys.argv[-2], [int(f) for f in sys.argv[-1].split(",")]
bpy.ops.import_anim.bvh(filepath=path, global_scale=1.0, rotate_mode='NATIVE', axis_forward='-Z', axis_up='Y',
                        update_scene_fps=False, update_scene_duration=True)
arm = next(o for o in bpy.context.scene.objects if o.type == 'ARMATURE')
heads = {}
for f in frames:
    bpy.context.scene.frame_set(f)
    heads[f] = {b.name: list(arm.matrix_world @ b.head) for b in arm.pose.bones}
lengths = {b.name: b.length for b in arm.data.bones}
print("BVHJSON " + json.dumps({"bones": len(arm.data.bones), "range": list(arm.animation_data.action.frame_range),
                               "heads": heads, "lengths": lengths}))
"""


@pytest.mark.skipif(shutil.which("blender") is None, reason="Blender is not installed (the blender command)")
@pytest.mark.parametrize("motion", ["walking", "random"])
def test_blender_imports_the_file(tmp_path, walking_fit, motion):
    fit = walking_fit if motion == "walking" else _random_fit(frames=30, seed=5)
    world = _world()
    root3d = np.stack([np.linspace(-1, 1, 30), np.zeros(30), np.full(30, 4.0)], axis=1)
    path = _written(tmp_path, fit, world, root3d)
    names, positions = bvh_positions(path)
    assert np.abs(positions[-1] - positions[0]).max() > 0.5  # the comparison below is of a moving body
    t = len(positions)
    frames = [1, t // 2, t]
    started = time.monotonic()
    done = subprocess.run(["blender", "-b", "--factory-startup", "--python-expr", _BLENDER_SCRIPT, "--",
                           str(path), ",".join(map(str, frames))], capture_output=True, text=True, timeout=300)
    seconds = time.monotonic() - started
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("BVHJSON ")), None)
    assert line is not None, f"Blender printed no result (exit {done.returncode}):\n{done.stdout}\n{done.stderr}"
    out = json.loads(line[len("BVHJSON "):])
    # Every joint is a bone (End Sites are bone tails, not bones); the zero-length pelvis gets a 10 cm stub.
    assert out["bones"] == 20 and min(out["lengths"].values()) > 0
    assert out["range"] == [1.0, float(t)]
    blender_axes = np.array([[1.0, 0, 0], [0, 0, -1], [0, 1, 0]])  # BVH (x, y, z) -> Blender (x, -z, y)
    error = max(np.linalg.norm(np.array(out["heads"][str(f)][n]) - blender_axes @ positions[f - 1, j])
                for f in frames for j, n in enumerate(names))
    print(f"Blender import ({motion}): max joint error {100 * error:.4f} cm over frames {frames}, {seconds:.1f} s")
    assert error < 0.01, f"Blender's joints are {100 * error:.3f} cm off ours"
