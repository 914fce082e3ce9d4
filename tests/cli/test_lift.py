"""End-to-end tests of ``pose3d lift`` through typer's CliRunner with a tiny checkpoint made here."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from pipeline.camera import Camera, default_focal
from pipeline.cli.app import app
from pipeline.keypoints import coco_to_h36m, fill_gaps
from pipeline.lifting.checkpoint import save_checkpoint
from pipeline.lifting.lifter import Lifter
from pipeline.lifting.model import LifterConfig, TemporalModel
from pipeline.skeleton import COCO17, H36M17
from tests.support.synth import moving_person, randomize_bn

W, H, T = 1280, 720, 48


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    torch.manual_seed(0)
    model = randomize_bn(TemporalModel(LifterConfig(filter_widths=(3, 3), channels=16)))
    path = tmp_path_factory.mktemp("w") / "tiny.pt"
    save_checkpoint(path, model, train_fps=50.0, extra={"test": True})
    return path


def h36m_pixels(t=T) -> np.ndarray:
    """(T, 17, 2) pixels of a walking person seen by a fixed camera 4 m away."""
    rot = np.array([[-1.0, 0.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, 1.0]])   # looks along +Z, Y up -> image down
    cam = Camera(rot, np.array([0.0, 1.0, -4.0]), default_focal(W, H), np.array([W / 2, H / 2]), W, H)
    return cam.project(cam.world_to_camera(moving_person(t, seed=3))).astype(np.float32)


def coco_pixels(t=T) -> np.ndarray:
    """(T, 17, 2) COCO-17 pixels built from the H36M track (face from the head and neck)."""
    h = h36m_pixels(t)
    out = np.empty((t, 17, 2), np.float32)
    for name in ("l_shoulder", "r_shoulder", "l_elbow", "r_elbow", "l_wrist", "r_wrist", "l_hip", "r_hip",
                 "l_knee", "r_knee", "l_ankle", "r_ankle"):
        out[:, COCO17.index(name)] = h[:, H36M17.index(name)]
    nose = h[:, H36M17.index("neck")]
    up = h[:, H36M17.index("head")] - nose
    out[:, COCO17.index("nose")] = nose
    out[:, COCO17.index("l_eye")] = nose + 0.5 * up + [6, 0]
    out[:, COCO17.index("r_eye")] = nose + 0.5 * up - [6, 0]
    out[:, COCO17.index("l_ear")] = nose + 0.4 * up + [12, 0]
    out[:, COCO17.index("r_ear")] = nose + 0.4 * up - [12, 0]
    return out


def write_input(path, keypoints, fmt, **extra):
    arrays = dict(keypoints=keypoints, width=np.int64(W), height=np.int64(H), fps=np.float64(30.0), format=np.str_(fmt))
    arrays.update(extra)
    arrays = {k: v for k, v in arrays.items() if v is not None}
    np.savez(path, **arrays)
    return path


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def assert_one_line_error(result, code, *needles):
    assert result.exit_code == code, (result.exit_code, result.output)
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    text = result.output.strip()
    assert "Traceback" not in text
    lines = text.splitlines()
    assert len(lines) == 1, text
    assert lines[0].startswith("error:"), text
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


@pytest.mark.parametrize("fmt", ["h36m17", "coco17"])
def test_lift_end_to_end(tmp_path, weights, fmt):
    kp = h36m_pixels() if fmt == "h36m17" else coco_pixels()
    kp[5, 3] = np.nan                 # one joint in one frame
    kp[20:24, 9] = np.nan             # a short run
    kp[30] = np.nan                   # a whole frame
    src = write_input(tmp_path / "in.npz", kp, fmt)
    out = tmp_path / "sub" / "out.npz"
    result = invoke("lift", src, "--out", out, "--weights", weights, "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert f"lifted {T} frames" in result.output
    with np.load(out) as data:
        poses, names = data["poses3d"], data["joint_names"]
        kp2d, fps = data["keypoints2d"], float(data["fps"])
    assert poses.shape == (T, 17, 3) and poses.dtype == np.float32
    assert np.isfinite(poses).all()
    assert np.array_equal(poses[:, 0], np.zeros((T, 3), np.float32))
    assert np.abs(poses[:, 1:]).max() > 0
    assert list(names) == list(H36M17.joints) and len(names) == 17
    assert fps == 30.0
    assert kp2d.shape == (T, 17, 2) and np.isfinite(kp2d).all()
    # The CLI's result is exactly the library pipeline: map, fill gaps, lift (at 30 fps -> 50 fps and back).
    h36 = (coco_to_h36m(kp)[0] if fmt == "coco17" else kp)
    filled = fill_gaps(h36)
    np.testing.assert_allclose(kp2d, filled, atol=1e-4)
    expected = Lifter.load(weights, device="cpu").lift(filled, W, H, 30.0)
    np.testing.assert_allclose(poses, expected, atol=1e-5)


def test_lift_options(tmp_path, weights):
    src = write_input(tmp_path / "in.npz", h36m_pixels(), "h36m17", fps=None)
    out = tmp_path / "out.npz"
    result = invoke("lift", src, "-o", out, "--weights", weights, "--device", "cpu", "--fps", 50, "--no-flip")
    assert result.exit_code == 0, result.output
    with np.load(out) as data:
        poses, fps = data["poses3d"], float(data["fps"])
    assert fps == 50.0
    expected = Lifter.load(weights, device="cpu").lift(h36m_pixels(), W, H, 50.0, flip=False)
    np.testing.assert_allclose(poses, expected, atol=1e-5)


def test_missing_input_file(tmp_path, weights):
    result = invoke("lift", tmp_path / "nope.npz", "-o", tmp_path / "o.npz", "--weights", weights)
    assert_one_line_error(result, 3, "not found", "nope.npz")
    assert not (tmp_path / "o.npz").exists()


def test_input_without_keypoints(tmp_path, weights):
    src = tmp_path / "bad.npz"
    np.savez(src, points=np.zeros((4, 17, 2)), width=W, height=H, fps=30.0)
    result = invoke("lift", src, "-o", tmp_path / "o.npz", "--weights", weights)
    assert_one_line_error(result, 3, "keypoints")


def test_input_without_fps(tmp_path, weights):
    src = write_input(tmp_path / "in.npz", h36m_pixels(), "h36m17", fps=None)
    result = invoke("lift", src, "-o", tmp_path / "o.npz", "--weights", weights)
    assert_one_line_error(result, 3, "fps")


def test_input_not_an_npz(tmp_path, weights):
    src = tmp_path / "junk.npz"
    src.write_text("hello")
    result = invoke("lift", src, "-o", tmp_path / "o.npz", "--weights", weights)
    assert_one_line_error(result, 3, "junk.npz")


def test_input_wrong_joint_count(tmp_path, weights):
    src = write_input(tmp_path / "in.npz", h36m_pixels()[:, :15], "h36m17")
    result = invoke("lift", src, "-o", tmp_path / "o.npz", "--weights", weights)
    assert_one_line_error(result, 3, "(T>0, 17, 2)")


def test_missing_weights(tmp_path):
    src = write_input(tmp_path / "in.npz", h36m_pixels(), "h36m17")
    result = invoke("lift", src, "-o", tmp_path / "o.npz", "--weights", tmp_path / "none.pt", "--device", "cpu")
    assert_one_line_error(result, 4, "none.pt", "not found")


def test_cuda_without_gpu(tmp_path, weights, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    src = write_input(tmp_path / "in.npz", h36m_pixels(), "h36m17")
    result = invoke("lift", src, "-o", tmp_path / "o.npz", "--weights", weights, "--device", "cuda")
    assert_one_line_error(result, 2, "cuda")
    assert not (tmp_path / "o.npz").exists()


def test_joint_missing_in_every_frame(tmp_path, weights):
    kp = h36m_pixels()
    kp[:, 7] = np.nan
    src = write_input(tmp_path / "in.npz", kp, "h36m17")
    result = invoke("lift", src, "-o", tmp_path / "o.npz", "--weights", weights, "--device", "cpu")
    assert result.exit_code != 0
    assert_one_line_error(result, result.exit_code, "joint 7")


def test_unreadable_weights_one_line(tmp_path):
    src = write_input(tmp_path / "in.npz", h36m_pixels(), "h36m17")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    result = invoke("lift", src, "-o", tmp_path / "o.npz", "--weights", junk, "--device", "cpu")
    assert_one_line_error(result, 4, "junk.pt")
