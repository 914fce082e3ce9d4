"""Tests for pipeline/cleanup/cleaner.py: the clean-up stage as a whole, its config, and its place in `pose3d run`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipeline.cleanup.ankle import AnkleConfig, AnkleRegressor
from pipeline.cleanup.cleaner import CleanConfig, Cleaner, clean_track, clean_track_report
from pipeline.cleanup.smooth import SmoothConfig, body_height
from pipeline.config import from_dict, load_config
from pipeline.errors import ConfigError, ModelError
from pipeline.keypoints import h36m_to_coco
from pipeline.run import RunConfig
from pipeline.types import Track
from tests.support.tracks2d import make_track, person

ROOT = Path(__file__).resolve().parents[2]
TEMPORAL = CleanConfig(ankle=AnkleConfig(enabled=False))


def test_clean_track_keeps_everything_but_keypoints_and_invents_nothing():
    rng = np.random.default_rng(5)
    truth = person(120)
    kp = truth + rng.normal(0, 1, truth.shape)
    kp[30:40, 7] = np.nan                                    # unseen inside the span
    kp[:, 8] = np.nan                                        # never seen
    kp[:3, 5] += 200                                         # low-score values at the segment's start
    scores = np.full((120, 17), 0.9)
    scores[np.isnan(kp).any(-1)] = 0.0
    scores[:3, 5] = 0.1
    scores[70, 11] = 0.1
    track = make_track(kp, scores, np.r_[np.arange(60), np.arange(80, 140)])
    out, report = clean_track_report(track, 30.0, TEMPORAL)
    assert out is not track and out.keypoints.dtype == np.float32
    for name in ("frames", "scores", "interpolated"):
        np.testing.assert_array_equal(getattr(out, name), getattr(track, name))
    np.testing.assert_array_equal(np.isnan(out.keypoints), np.isnan(track.keypoints))
    assert np.abs(out.keypoints[:3, 5] - truth[:3, 5]).max() < 5                  # wild low-score start
    assert np.sqrt(np.nanmean((out.keypoints - truth) ** 2)) < np.sqrt(np.nanmean((kp - truth) ** 2))
    assert report.segments == 2 and report.segments_unsmoothed == 0
    assert report.low_score_replaced == 4 and report.outliers == 0 and report.ankles == 0
    assert clean_track(track, 30.0, CleanConfig(enabled=False)) is track


def test_each_step_switches_off():
    rng = np.random.default_rng(6)
    truth = person(100)
    kp = truth + rng.normal(0, 2, truth.shape)
    kp[50, 3] += 150                                         # an outlier frame
    track = make_track(kp)
    off = CleanConfig(ankle=AnkleConfig(enabled=False),
                      smooth=SmoothConfig(outliers=False, rpca=False, smoothing=False))
    same, report = clean_track_report(track, 50.0, off)
    np.testing.assert_array_equal(same.keypoints, track.keypoints)
    assert report == type(report)(segments=1)
    only_outliers, report = clean_track_report(track, 50.0, CleanConfig(
        ankle=AnkleConfig(enabled=False), smooth=SmoothConfig(outliers=True, smoothing=False)))
    changed = (only_outliers.keypoints != track.keypoints).any(-1)
    assert report.outliers == 1 and changed.sum() == 1 and changed[50, 3]


def walking_coco() -> np.ndarray:
    """(86, 17, 2) px: the bundled held-out walk (subject 2, 30 fps) as COCO-17."""
    with np.load(ROOT / "examples" / "walk_2d.npz") as z:
        return h36m_to_coco(z["keypoints"].astype(np.float64)).astype(np.float64)


def test_ankle_corrections_survive_the_later_steps():
    regressor = AnkleRegressor.load()
    truth = walking_coco()
    height = body_height(truth)
    kp = truth.copy()
    scores = np.where(np.isfinite(kp).all(-1), 0.9, 0.0)
    kp[20:60, 15] = kp[20:60, 13] + [0.0, 0.02 * height]     # left ankle lost on the knee for 40 frames
    scores[20:60, 15] = 0.05
    track = Track(2, np.arange(86, dtype=np.int64), kp.astype(np.float32), scores.astype(np.float32),
                  np.zeros(86, bool))

    def ankle_error(config):
        out, report = clean_track_report(track, 30.0, config, regressor)
        return np.linalg.norm(out.keypoints[20:60, 15] - truth[20:60, 15], axis=-1).mean() / height, report

    with_ankle, report = ankle_error(CleanConfig())
    without, _ = ankle_error(TEMPORAL)
    assert report.ankles >= 40 and with_ankle < 0.08 and with_ankle < 0.6 * without


def test_config_from_yaml_and_errors(tmp_path):
    config = from_dict(CleanConfig, {"ankle": {"method": "linear"}, "smooth": {"rpca": True, "window_s": 0.5}})
    assert config.ankle.method == "linear" and config.smooth.rpca and config.smooth.window_s == 0.5
    with pytest.raises(ConfigError, match="smoothing"):
        from_dict(CleanConfig, {"smooth": {"smoothin": False}})
    with pytest.raises(ConfigError, match="ankle"):
        from_dict(CleanConfig, {"ankles": {}})
    run = load_config(RunConfig, ROOT / "configs" / "run.yaml")
    assert run.clean.enabled and isinstance(run.clean, CleanConfig)


def test_cleaner_loads_weights_only_when_needed(tmp_path):
    missing = str(tmp_path / "none.pt")
    assert Cleaner(CleanConfig(ankle=AnkleConfig(weights=missing), enabled=False)).regressor is None
    assert Cleaner(CleanConfig(ankle=AnkleConfig(weights=missing, enabled=False))).regressor is None
    with pytest.raises(ModelError, match="none.pt"):
        Cleaner(CleanConfig(ankle=AnkleConfig(weights=missing)))
    cleaner = Cleaner(CleanConfig())
    tracks = [make_track(person(60)), make_track(person(40, seed=1))]
    out = cleaner.clean_all(tracks, 30.0)
    assert [len(t) for t in out] == [60, 40] and all(np.isfinite(t.keypoints).all() for t in out)
