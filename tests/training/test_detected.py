"""Training windows from the 2D stage's own output (pipeline/training/detected.py) and their use in training."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from pipeline.camera import normalize_screen
from pipeline.config import load_config
from pipeline.errors import ConfigError, InputError
from pipeline.keypoints import rebuild_torso
from pipeline.lifting.model import LifterConfig, pose_size_2d
from pipeline.skeleton import H36M17
from pipeline.training.config import AugmentConfig, DetectedConfig, LossConfig, TrainConfig
from pipeline.training.dataset import Clip, PoseWindows
from pipeline.training.detected import DetectedWindows, read_clip, read_folder
from pipeline.training.objective import Objective
from pipeline.training.split import Split
from pipeline.training.train import train
from tests.support.detections import HEIGHT, WIDTH, write_clip, write_folder
from tests.support.synth import moving_person

HELD_OUT = ("3", "7", "12", "2", "8", "17")


def test_a_clip_becomes_runs_at_the_training_rate(tmp_path):
    data = write_clip(tmp_path / "clip_000000.npz", frames=90, gap=slice(40, 45))
    runs = read_clip(tmp_path / "clip_000000.npz", fps=50.0, min_frames=15)
    # 90 frames at 30 Hz with frames 40-44 missing: runs of 40 and 45 frames, each resampled to 50 Hz.
    assert [len(r.x) for r in runs] == [int((40 - 1) * 50 / 30) + 1, int((45 - 1) * 50 / 30) + 1]
    first = runs[0]
    assert np.allclose(first.y[:, 0], 0.0) and first.subject == "1" and first.clip == "clip_000000"
    # The first frame of a run is the stored frame itself: the 2D with the torso rebuilt, normalised.
    expected = normalize_screen(rebuild_torso(data["keypoints2d"][0].astype(np.float64)), WIDTH, HEIGHT)
    assert np.allclose(first.truth[0], expected, atol=1e-5)
    assert np.allclose(first.x[0], expected, atol=1e-4)   # no bias: detection == truth
    assert read_clip(tmp_path / "clip_000000.npz", fps=50.0, min_frames=41)[0].x.shape[0] == len(runs[1].x)


def test_a_clip_where_nobody_was_found_gives_no_runs(tmp_path):
    write_clip(tmp_path / "clip_000000.npz", frames=30, gap=slice(0, 30))
    assert read_clip(tmp_path / "clip_000000.npz", fps=50.0, min_frames=2) == []


def test_a_file_of_another_format_is_refused(tmp_path):
    np.savez(tmp_path / "clip_000000.npz", keypoints=np.zeros((3, 17, 2)))
    with pytest.raises(InputError, match="missing"):
        read_clip(tmp_path / "clip_000000.npz", fps=50.0, min_frames=2)


def test_held_out_subjects_never_train_and_training_subjects_never_score(tmp_path):
    mixed = write_folder(tmp_path / "mixed", subjects=("1", "7"))
    with pytest.raises(InputError, match="7"):
        read_folder(mixed, 50.0, 15, HELD_OUT, training=True)
    with pytest.raises(InputError, match="1"):
        read_folder(mixed, 50.0, 15, HELD_OUT, training=False)
    with pytest.raises(InputError, match="build-detections"):
        read_folder(tmp_path / "empty", 50.0, 15, HELD_OUT)
    val = write_folder(tmp_path / "val", subjects=("3", "12"))
    assert len(read_folder(val, 50.0, 15, HELD_OUT, training=False)) == 2


def _windows(tmp_path, bias=(0.0, 0.0), flip=0.0, rf=9) -> DetectedWindows:
    runs = read_folder(write_folder(tmp_path / "ds", bias=bias), 50.0, 15, HELD_OUT)
    return DetectedWindows(runs, rf, 1, False, flip=flip)


def test_detected_pairs_are_the_stored_frames(tmp_path):
    windows = _windows(tmp_path)
    x, y = windows.sample(64, torch.Generator().manual_seed(0))
    assert x.shape == (64, 9, 17, 2) and y.shape == (64, 1, 17, 3)
    # Each pair's output frame is the 3D of the window's centre frame.
    centre = x[:, 4]
    match = (windows.x[None] - centre[:, None]).abs().amax(dim=(2, 3)).argmin(dim=1)
    assert torch.allclose(y[:, 0], windows.y[match], atol=1e-6)


def test_mirrored_pairs_swap_left_and_right(tmp_path):
    plain = _windows(tmp_path, flip=0.0).sample(16, torch.Generator().manual_seed(1))
    mirrored = _windows(tmp_path, flip=1.0).sample(16, torch.Generator().manual_seed(1))
    perm = H36M17.flip_permutation()
    assert torch.allclose(mirrored[0][..., 0], -plain[0][:, :, perm, 0])
    assert torch.allclose(mirrored[1][..., 0], -plain[1][:, :, perm, 0])


def test_error_windows_are_the_2d_stages_error_in_body_sizes(tmp_path):
    windows = _windows(tmp_path, bias=(12.0, -6.0))
    errors = windows.errors(32, 9, torch.Generator().manual_seed(0))
    # A constant 12 px right, 6 px up on every joint, over the person's 2D size in pixels.
    size_px = pose_size_2d(windows.truth[None])[0, :, 0] * WIDTH / 2
    ratio = errors[..., 0] / errors[..., 1]
    assert torch.allclose(ratio, torch.full_like(ratio, -2.0), atol=1e-3)
    assert 12.0 / size_px.max() - 1e-4 <= errors[..., 0].min() and errors[..., 0].max() <= 12.0 / size_px.min() + 1e-4
    mirrored = DetectedWindows(read_folder(tmp_path / "ds", 50.0, 15, HELD_OUT), 9, 1, False, flip=1.0)
    assert (mirrored.errors(8, 9, torch.Generator().manual_seed(0))[..., 0] < 0).all()


def _mocap() -> list[Clip]:
    return [Clip(torch.from_numpy(moving_person(120, seed=i)).float(), f"c{i}", "1", "walk") for i in range(2)]


def test_real_error_windows_replace_synthetic_noise(tmp_path):
    augment = AugmentConfig(torso_from_limbs=True, noise_px=(0.05, 0.05), clean_fraction=0.0)
    exact_bank = _windows(tmp_path)   # the '2D stage' was exact: its error windows are zero
    windows = PoseWindows(_mocap(), 9, 1, False, TrainConfig().camera, augment, exact_bank, error_share=1.0)
    noisy = windows.film(16, torch.Generator().manual_seed(3), noisy=True)
    exact = windows.film(16, torch.Generator().manual_seed(3), noisy=False)
    assert torch.allclose(noisy.uv, exact.uv, atol=1e-3)
    synthetic = PoseWindows(_mocap(), 9, 1, False, TrainConfig().camera, augment)
    assert not torch.allclose(synthetic.film(16, torch.Generator().manual_seed(3)).uv, exact.uv, atol=1e-3)


def test_a_batch_mixes_detected_and_mocap_windows(tmp_path):
    config = TrainConfig(lifter=LifterConfig(filter_widths=(3, 3), channels=16), detected=DetectedConfig(share=0.25))
    detected = _windows(tmp_path)
    windows = PoseWindows(_mocap(), 9, 1, False, config.camera, config.augment)
    objective = Objective(windows, config, detected)
    x, y = objective.batch(16, torch.Generator().manual_seed(0))
    assert x.shape == (16, 9, 17, 2) and y.shape == (16, 1, 17, 3)
    from_bank = (detected.x[None] - x[:, 4, None]).abs().amax(dim=(2, 3)).amin(dim=1) < 1e-6
    assert from_bank.tolist() == [False] * 12 + [True] * 4
    assert len(objective.batch(16, torch.Generator().manual_seed(0), noisy=False)[0]) == 16   # validation: mocap only


def _tiny(folder) -> TrainConfig:
    return TrainConfig(epochs=1, samples_per_epoch=256, batch_size=64, lr=1e-3, seed=0,
                       lifter=LifterConfig(filter_widths=(3, 3), channels=16, dropout=0.1),
                       loss=LossConfig(velocity=0.0, acceleration=0.0, limb_length=0.0, frames=1),
                       detected=DetectedConfig(folder=str(folder), share=0.5, error_share=0.5))


def test_training_with_detections_runs_and_refuses_what_it_cannot_use(tmp_path):
    split = Split(train=_mocap(), val=_mocap()[:1], test=_mocap()[:1])
    folder = write_folder(tmp_path / "ds")
    result = train(_tiny(folder), tmp_path / "out", split=split)
    assert result.last.exists() and np.isfinite(result.best_val_mpjpe_mm)
    with pytest.raises(ConfigError, match="trajectory"):
        trajectory = LifterConfig(filter_widths=(3, 3), channels=16, target="trajectory",
                                  input_norm="pelvis_scale_pos_size")
        train(replace(_tiny(folder), lifter=trajectory), tmp_path / "t", split=split)
    with pytest.raises(InputError, match="7"):
        train(_tiny(write_folder(tmp_path / "leak", subjects=("1", "7"))), tmp_path / "l", split=split)
    with pytest.raises(ConfigError):
        DetectedConfig(share=1.5)


def test_detected_settings_load_from_yaml(tmp_path):
    (tmp_path / "t.yaml").write_text("detected:\n  folder: runs/detections\n  sahre: 0.3\n")
    with pytest.raises(ConfigError, match="share"):
        load_config(TrainConfig, tmp_path / "t.yaml", {})
    (tmp_path / "t.yaml").write_text("detected:\n  folder: runs/detections\n  share: 0.3\n")
    assert load_config(TrainConfig, tmp_path / "t.yaml", {}).detected == DetectedConfig("runs/detections", 0.3)
    assert TrainConfig().detected.folder is None
