"""Root trajectory model (pipeline/lifting/trajectory.py): decoding, loss, shapes, flip symmetry, training objective."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pipeline.errors import ConfigError, ShapeError
from pipeline.keypoints import rebuild_torso
from pipeline.lifting.checkpoint import save_checkpoint
from pipeline.lifting.model import LifterConfig, TemporalModel, flip_2d, pose_size_2d
from pipeline.lifting.trajectory import TrajectoryLifter, decode, focal_from_fov, infer_roots, to_rays
from pipeline.training.config import CameraConfig, TrainConfig
from pipeline.training.dataset import Clip, PoseWindows
from pipeline.training.objective import Objective
from pipeline.training.trajectory import training_pair, wmpjpe
from tests.support.synth import randomize_bn

TRAJ = LifterConfig(filter_widths=(3, 3), channels=16, input_norm="pelvis_scale_pos_size", target="trajectory")


def _code_for(root: torch.Tensor, rays: torch.Tensor) -> torch.Tensor:
    """The (dx, dy, log k) code that decodes to ``root``: the inverse of decode, for the test."""
    size = pose_size_2d(rays)[..., 0]
    depth = root[..., 2]
    dxy = root[..., :2] / depth[..., None] - rays[:, :, 0]
    return torch.cat([dxy, (depth * size).log()[..., None]], dim=-1)[:, :, None]


def test_decode_inverts_the_code():
    rng = torch.Generator().manual_seed(0)
    rays = torch.randn(2, 5, 17, 2, generator=rng) * 0.1
    root = torch.stack([torch.randn(2, 5, generator=rng), torch.randn(2, 5, generator=rng),
                        3 + 5 * torch.rand(2, 5, generator=rng)], -1)
    torch.testing.assert_close(decode(_code_for(root, rays), rays), root, atol=1e-5, rtol=1e-5)


def test_zero_code_puts_the_root_on_the_pelvis_ray():
    rays = torch.randn(1, 4, 17, 2) * 0.1
    roots = decode(torch.zeros(1, 4, 1, 3), rays)
    torch.testing.assert_close(roots[..., :2] / roots[..., 2:], rays[:, :, 0])
    # Twice as big on screen (twice as close) halves the depth.
    torch.testing.assert_close(decode(torch.zeros(1, 4, 1, 3), rays * 2)[..., 2], roots[..., 2] / 2)


def test_wmpjpe_is_zero_on_truth_and_weights_by_inverse_depth():
    truth = torch.tensor([[0.0, 0.0, 2.0], [0.0, 0.0, 10.0]])
    assert wmpjpe(truth, truth) == 0
    pred = truth + torch.tensor([0.1, 0.0, 0.0])
    assert wmpjpe(pred, truth).item() == pytest.approx((0.1 / 2 + 0.1 / 10) / 2)


def test_rays_and_focal():
    assert focal_from_fov(1920, 1080, 90.0) == pytest.approx(960.0)
    rays = to_rays(np.array([[960.0, 540.0], [1920.0, 540.0]]), 960.0, np.array([960.0, 540.0]))
    np.testing.assert_allclose(rays, [[0, 0], [1, 0]])
    with pytest.raises(ConfigError):
        focal_from_fov(100, 100, 0.0)


def test_model_shapes_and_flip_symmetry():
    torch.manual_seed(0)
    model = TemporalModel(TRAJ).eval()
    rays = (np.random.default_rng(0).normal(0, 0.05, (30, 17, 2)) + [0.1, 0.2]).astype(np.float32)
    roots = infer_roots(model, rays)
    assert roots.shape == (30, 3) and np.isfinite(roots).all()
    # Averaging with the mirror makes the prediction exactly mirror-equivariant: x flips, y and z stay.
    mirrored = infer_roots(model, flip_2d(torch.from_numpy(rays)).numpy())
    np.testing.assert_allclose(mirrored * [-1, 1, 1], roots, rtol=1e-4, atol=1e-5)
    with pytest.raises(ShapeError):
        infer_roots(model, rays[..., :1])


def test_lifter_rejects_a_pose_checkpoint(tmp_path):
    path = tmp_path / "pose.pt"
    save_checkpoint(path, TemporalModel(LifterConfig(filter_widths=(3,), channels=8)), train_fps=50.0)
    with pytest.raises(ConfigError, match="not a trajectory model"):
        TrajectoryLifter.load(path)
    traj = tmp_path / "traj.pt"
    save_checkpoint(traj, TemporalModel(TRAJ), train_fps=50.0)
    kp = np.random.default_rng(1).uniform(400, 600, (12, 17, 2))
    roots = TrajectoryLifter.load(traj).lift(kp, 1280, 720, fps=30.0, focal=1000.0)
    assert roots.shape == (12, 3) and roots.dtype == np.float32


def test_trajectory_lifter_gives_the_network_the_torso_its_checkpoint_trained_on(tmp_path):
    torch.manual_seed(0)
    model = randomize_bn(TemporalModel(TRAJ), 0)
    kp = np.random.default_rng(2).uniform(400, 600, (20, 17, 2))
    for flag in (False, True):
        save_checkpoint(tmp_path / "t.pt", model, train_fps=50.0, torso_from_limbs=flag)
        lifter = TrajectoryLifter.load(tmp_path / "t.pt")
        out = lifter.lift(kp, 1280, 720, fps=50.0, focal=1000.0)
        rebuilt = lifter.lift(rebuild_torso(kp), 1280, 720, fps=50.0, focal=1000.0)
        assert lifter.torso_from_limbs == flag and np.allclose(out, rebuilt, atol=1e-6) == flag


def test_training_pairs_are_rays_and_absolute_pelvis_positions():
    rng = np.random.default_rng(0)
    joints = torch.from_numpy(rng.normal(0, 0.3, (200, 17, 3)).astype(np.float32) + [0, 1, 0])
    config = TrainConfig(lifter=TRAJ)
    windows = PoseWindows([Clip(joints, "c", "1", "walk")], TRAJ.receptive_field, 1, False, CameraConfig(),
                          config.augment)
    shot = windows.film(8, torch.Generator().manual_seed(0), noisy=False)
    x, y = training_pair(shot, windows.first_output)
    assert x.shape == (8, 9, 17, 2) and y.shape == (8, 1, 3)
    # Exact 2D: the pelvis ray of the output frame points at the target root.
    torch.testing.assert_close(x[:, windows.first_output, 0], y[:, 0, :2] / y[:, 0, 2:], atol=1e-4, rtol=1e-4)
    objective = Objective(windows, config)
    total, error = objective.loss(TemporalModel(TRAJ), *objective.batch(4, torch.Generator().manual_seed(1)))
    assert total.ndim == 0 and error.item() > 0
