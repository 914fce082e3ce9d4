"""Tests for pipeline/cleanup/ankle.py and pipeline/training/ankle.py: the ankle detector, regressors and training."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.assets import asset_dir
from pipeline.cleanup.ankle import (
    ANKLES,
    AnkleConfig,
    AnkleNet,
    AnkleNetConfig,
    AnkleRegressor,
    bad_ankles,
    correct_ankles,
    default_weights,
    leg_features,
    predict_linear,
    running_median,
    torso_scale,
)
from pipeline.cleanup.smooth import body_height
from pipeline.config import from_dict
from pipeline.errors import ConfigError, ModelError
from pipeline.keypoints import h36m_to_coco
from pipeline.training.ankle import AnkleCorruption, AnkleTrainConfig, corrupt_ankles, fit_linear, train_ankle
from pipeline.training.config import CameraConfig, TrainConfig
from pipeline.training.dataset import Clip
from pipeline.training.split import Split
from pipeline.types import Track
from tests.support.synth import moving_person
from tests.support.tracks2d import BASE

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "walk_2d.npz"
CFG = AnkleConfig()


def walk_track() -> tuple[Track, float]:
    """The bundled held-out walk (subject 2, filmed by a virtual camera) as a COCO-17 track, and its fps."""
    with np.load(EXAMPLE) as z:
        coco = h36m_to_coco(z["keypoints"].astype(np.float64))
        fps = float(z["fps"])
    scores = np.where(np.isfinite(coco).all(-1), 0.9, 0.0).astype(np.float32)
    return Track(1, np.arange(len(coco), dtype=np.int64), coco, scores, np.zeros(len(coco), bool)), fps


def test_fit_linear_recovers_the_paper_forms():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, 16))
    coef = np.array([[0.7, 0.0, 0.1], [1.1, -0.2, 0.6], [0.6, 0.0, -0.1], [1.0, 0.3, 0.5]])
    y = np.column_stack([coef[0, 0] * x[:, 4] + coef[0, 2], coef[1, 0] * x[:, 5] + coef[1, 1] * x[:, 1] + coef[1, 2],
                         coef[2, 0] * x[:, 6] + coef[2, 2], coef[3, 0] * x[:, 7] + coef[3, 1] * x[:, 3] + coef[3, 2]])
    fitted = fit_linear(x, y)
    np.testing.assert_allclose(fitted, coef, atol=1e-9)
    np.testing.assert_allclose(predict_linear(fitted, x), y, atol=1e-9)


def test_net_is_one_network_per_coordinate_and_checkpoint_keeps_architecture(tmp_path):
    net = AnkleNet(AnkleNetConfig(hidden=(8, 4)))
    x = torch.randn(5, 16, requires_grad=True)
    out = net(x)
    assert out.shape == (5, 4)
    out[:, 2].sum().backward()
    grads = [w.grad for w in net.weights]
    assert all(g[[0, 1, 3]].abs().sum() == 0 and g[2].abs().sum() > 0 for g in grads)   # only net 2 moved
    regressor = AnkleRegressor(net, np.ones((4, 3)), 0.8, {"note": "test"})
    regressor.save(tmp_path / "a.pt")
    loaded = AnkleRegressor.load(tmp_path / "a.pt")
    assert loaded.net.config == AnkleNetConfig(hidden=(8, 4)) and loaded.shank_ratio == 0.8
    feats = np.random.default_rng(1).normal(size=(7, 16)).astype(np.float32)
    np.testing.assert_allclose(loaded.predict(feats), regressor.predict(feats), atol=1e-6)
    np.testing.assert_allclose(loaded.predict(feats, "linear"), regressor.predict(feats, "linear"))
    assert loaded.extra == {"note": "test"}


def test_load_errors_are_model_errors(tmp_path):
    with pytest.raises(ModelError, match="train-ankle"):
        AnkleRegressor.load(tmp_path / "missing.pt")
    torch.save({"format": "something-else"}, tmp_path / "other.pt")
    with pytest.raises(ModelError, match="not a readable ankle checkpoint"):
        AnkleRegressor.load(tmp_path / "other.pt")


@pytest.mark.parametrize("field, value", [("method", "mlp"), ("min_score", 2.0), ("shank_range", (1.2, 1.5)),
                                          ("scale_window_s", 0.0)])
def test_config_errors_name_the_field(field, value):
    with pytest.raises(ConfigError, match=field):
        AnkleConfig(**{field: value})
    assert from_dict(AnkleConfig, {"shank_range": [0.4, 1.7]}).shank_range == (0.4, 1.7)


def test_running_median_and_torso_scale_follow_a_growing_person():
    np.testing.assert_allclose(running_median(np.array([1.0, np.nan, 3.0, 100.0, 5.0]), 3), [1, 2, 51.5, 5, 52.5])
    t = np.arange(200)
    growth = (1 + t / 400)[:, None, None]                   # walking toward the camera: 50% taller in 4 s
    kp = (BASE - BASE[[11, 12]].mean(0)) * growth + 300
    scale = torso_scale(kp, np.ones((200, 17)), 50.0, CFG)
    true = np.linalg.norm((kp[:, 5] + kp[:, 6] - kp[:, 11] - kp[:, 12]) / 2, axis=-1)
    assert np.abs(scale[50:150] / true[50:150] - 1).max() < 1e-6   # a full window: exact on a linear trend
    assert np.abs(scale / true - 1).max() < 0.07                 # half windows at the ends lag a little
    low = np.ones((200, 17))
    low[:, 5] = 0.1                                         # shoulders never sure: nothing to measure
    assert np.isnan(torso_scale(kp, low, 50.0, CFG)).all()


def test_bad_ankles_flags_low_scores_and_implausible_shanks_only():
    kp = np.broadcast_to(BASE, (40, 17, 2)).copy()
    scores = np.ones((40, 17))
    scale = torso_scale(kp, scores, 30.0, CFG)
    assert not bad_ankles(kp, scores, scale, CFG).any()
    kp[5, 15] = kp[5, 13] + 0.1 * (kp[5, 15] - kp[5, 13])      # left ankle collapsed onto the knee
    kp[9, 16] = kp[9, 14] + 2.5 * (kp[9, 16] - kp[9, 14])      # right ankle far below its knee
    scores[12, 15] = 0.1                                       # unsure
    kp[20, 16] = np.nan                                        # unseen: never "corrected"
    scores[20, 16] = 0.0
    expected = np.zeros((40, 2), bool)
    expected[[5, 9, 12], [0, 1, 0]] = True
    np.testing.assert_array_equal(bad_ankles(kp, scores, scale, CFG), expected)


def test_regressor_fixes_injected_ankle_errors_and_leaves_good_ankles_alone():
    regressor = AnkleRegressor.load()                          # the shipped weights/ankle.pt
    track, fps = walk_track()
    truth = track.keypoints.copy()
    height = body_height(truth)
    rng = np.random.default_rng(3)
    kp, scores = truth.copy(), track.scores.copy()
    bad = np.zeros((len(kp), 2), bool)
    for f in rng.choice(len(kp), 24, replace=False):
        side, kind = rng.integers(2), rng.integers(3)
        knee, ankle = kp[f, 13 + side], truth[f, ANKLES[side]]
        kp[f, ANKLES[side]] = [knee + 0.15 * (ankle - knee), truth[f, ANKLES[1 - side]] + [0.08 * height, 0],
                               ankle + [0.0, 0.25 * height]][kind]
        scores[f, ANKLES[side]] = rng.uniform(0.0, 0.25)
        bad[f, side] = True
    broken = Track(1, track.frames, kp, scores, track.interpolated)
    fixed, corrected = correct_ankles(broken, regressor, CFG, fps)
    np.testing.assert_array_equal(corrected[:, list(ANKLES)], bad)
    assert not corrected[:, :15].any()
    before = np.linalg.norm(kp[:, list(ANKLES)] - truth[:, list(ANKLES)], axis=-1)[bad] / height
    after = np.linalg.norm(fixed.keypoints[:, list(ANKLES)] - truth[:, list(ANKLES)], axis=-1)[bad] / height
    assert after.mean() < 0.4 * before.mean() and after.mean() < 0.08
    good = ~corrected
    np.testing.assert_array_equal(fixed.keypoints[good], kp[good])      # untouched, bit for bit
    same, none = correct_ankles(track, regressor, CFG, fps)
    assert same is track and not none.any()
    linear, _ = correct_ankles(broken, regressor, AnkleConfig(method="linear"), fps)
    assert not np.array_equal(linear.keypoints, fixed.keypoints)


def test_corrupt_ankles_kinds_and_rates():
    rng = np.random.default_rng(0)
    n = 20000
    kp = np.broadcast_to(BASE, (n, 17, 2)).astype(np.float64).copy()
    config = AnkleCorruption()
    out, score, corrupted = corrupt_ankles(kp, np.full(n, 470.0), config, rng)
    moved = np.linalg.norm(out[:, list(ANKLES)] - kp[:, list(ANKLES)], axis=-1) > 0.02 * 470
    np.testing.assert_array_equal(moved, corrupted)             # every corrupted ankle is elsewhere
    expected = 1 - (1 - config.to_knee - config.elsewhere - config.lost - config.other_foot) * (1 - config.swap)
    assert abs(corrupted.mean() - expected) < 0.02
    assert (score >= 0).all() and (score <= 1).all()
    assert score[~corrupted].mean() > score[corrupted].mean() + 0.2
    np.testing.assert_array_equal(np.delete(out, list(ANKLES), 1), np.delete(kp, list(ANKLES), 1))


def test_train_ankle_learns_on_a_tiny_split():
    def clips(seed, n):
        return [Clip(torch.from_numpy(moving_person(120, seed + k).astype(np.float32)), f"m{k}", str(seed), "walk")
                for k in range(n)]

    split = Split(train=clips(0, 3), val=clips(10, 1), test=[])
    cfg = AnkleTrainConfig(epochs=3, samples_per_epoch=6000, window=20, batch_size=128, lr=3e-3, val_samples=2000,
                           net=AnkleNetConfig(hidden=(32, 16)))
    regressor = train_ankle(TrainConfig(camera=CameraConfig()), cfg, split=split)
    best = min(regressor.extra["history"], key=lambda h: h["net_corrupted"])
    assert best["net_corrupted"] < 0.5 * best["observed_corrupted"]
    assert regressor.extra["history"][-1]["loss"] < 0.5 * regressor.extra["history"][0]["loss"]
    assert regressor.extra["split"]["train"] == ["0"] and regressor.extra["split"]["val"] == ["10"]
    assert 0.5 < regressor.shank_ratio < 1.2
    feats, valid = leg_features(np.broadcast_to(BASE, (2, 17, 2)), np.ones((2, 17)), np.full(2, 190.0))
    assert valid.all() and np.isfinite(regressor.predict(feats)).all()


def test_default_weights_path(monkeypatch, tmp_path):
    """$POSE3D_WEIGHTS_DIR names the downloaded YOLO / mmpose files; the shipped regressor stays found."""
    monkeypatch.setenv("POSE3D_WEIGHTS_DIR", str(tmp_path))
    assert default_weights() == asset_dir("weights") / "ankle.pt" and default_weights().is_file()
