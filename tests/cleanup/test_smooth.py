"""Tests for pipeline/cleanup/smooth.py: Savitzky-Golay per segment and the outlier test."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.cleanup.ankle import AnkleConfig
from pipeline.cleanup.cleaner import CleanConfig, clean_track
from pipeline.cleanup.smooth import (
    SmoothConfig,
    body_height,
    find_outliers,
    replace_outliers,
    savgol_track,
    window_length,
)
from pipeline.config import from_dict
from pipeline.errors import ConfigError
from tests.support.tracks2d import BASE, cubic, make_track, person, spikes

CFG = SmoothConfig(window_s=0.82)                        # paper 000's 41 frames at 50 Hz
NO_ANKLE = AnkleConfig(enabled=False)

def test_window_scales_with_fps_and_shrinks():
    assert window_length(50, CFG) == 41                    # paper 000
    assert window_length(30, CFG) == 25
    assert window_length(25, CFG) == 21
    assert window_length(60, CFG) == 49
    assert window_length(50, CFG, 15) == 15
    assert window_length(50, CFG, 16) == 15                 # odd
    assert window_length(50, CFG, 5) == 5                   # > polyorder
    assert window_length(50, CFG, 4) == 0                   # too short to smooth
    assert window_length(50, SmoothConfig(window_s=0.05)) == 0
    assert window_length(30, SmoothConfig()) == 15          # the default, 0.5 s


def test_preserves_cubic_and_constant_everywhere():
    ones = np.ones((150, 17))
    for truth in (cubic(150), np.broadcast_to(BASE, (150, 17, 2)).copy()):
        out = savgol_track(truth, ones, 50, CFG)
        assert np.abs(out - truth).max() < 1e-3             # interior and both ends
        assert np.abs(out[:20] - truth[:20]).max() < 1e-3


def test_reduces_white_noise_on_a_sine():
    rng = np.random.default_rng(1)
    t = np.arange(300) / 50
    truth = np.broadcast_to((300 + 50 * np.sin(2 * np.pi * 0.5 * t))[:, None, None], (300, 17, 2))
    noisy = truth + rng.normal(0, 3, truth.shape)
    out = savgol_track(noisy, np.ones((300, 17)), 50, CFG)
    before = np.sqrt(np.mean((noisy - truth) ** 2))
    after = np.sqrt(np.mean((out - truth) ** 2))
    assert after < 0.4 * before


def test_segments_are_smoothed_separately():
    frames = np.r_[np.arange(60), np.arange(200, 260)]
    kp = np.concatenate([np.full((60, 17, 2), 100.0), np.full((60, 17, 2), 300.0)])
    ones = np.ones((120, 17))
    out = savgol_track(kp, ones, 50, CFG, frames=frames)
    np.testing.assert_allclose(out, kp, atol=1e-3)          # the step is not blurred
    blurred = savgol_track(kp, ones, 50, CFG)                # sanity: as one segment it would be
    assert np.abs(blurred - kp).max() > 10


def test_short_segments_unchanged_or_window_shrunk():
    rng = np.random.default_rng(2)
    truth = cubic(19)
    noisy = truth + rng.normal(0, 2, truth.shape)
    frames = np.r_[np.arange(4), np.arange(100, 115)]      # 4 frames (< polyorder + 2), then 15 (< 41)
    out = savgol_track(noisy, np.ones((19, 17)), 50, CFG, frames=frames)
    np.testing.assert_array_equal(out[:4], noisy[:4])
    assert np.isfinite(out).all()
    assert np.sqrt(np.mean((out[4:] - truth[4:]) ** 2)) < np.sqrt(np.mean((noisy[4:] - truth[4:]) ** 2))
    exact = savgol_track(truth, np.ones((19, 17)), 50, CFG, frames=frames)
    assert np.abs(exact[4:] - truth[4:]).max() < 1e-3       # shrunk window still fits a cubic exactly


def test_low_confidence_joint_is_excluded():
    truth = person(150)
    wild = truth.copy()
    wild[60, 9] += 400
    scores = np.ones((150, 17))
    scores[60, 9] = 0.1
    out = savgol_track(wild, scores, 50, CFG)
    reference = savgol_track(truth, scores, 50, CFG)
    np.testing.assert_allclose(out, reference, atol=1e-6)   # the wild value pulls nothing
    assert np.linalg.norm(out[60, 9] - savgol_track(truth, np.ones((150, 17)), 50, CFG)[60, 9]) < 1.0
    pulled = savgol_track(wild, np.ones((150, 17)), 50, CFG)
    assert np.abs(pulled[50:71, 9] - truth[50:71, 9]).max() > 5


@pytest.mark.parametrize("fps", [50.0, 30.0])
def test_find_outliers_finds_injected_spikes_only(fps):
    truth = person(300, fps)
    clean = truth + np.random.default_rng(3).normal(0, 0.5, truth.shape)
    assert not find_outliers(clean, fps, CFG).any()
    height = body_height(clean)
    assert 450 < height < 560
    where = [(0, 3), (299, 5), (50, 7), (51, 8), (120, 9), (121, 9), (200, 16), (250, 0), (251, 12)]
    bad, mask = spikes(clean, where, 0.2 * height)
    np.testing.assert_array_equal(find_outliers(bad, fps, CFG), mask)
    np.testing.assert_array_equal(find_outliers(bad, fps, CFG, height=height), mask)
    # Against the cleaned clean track (the filter itself rounds off the wobble a little): interior spikes
    # are filled from both sides; the first and last frame hold their neighbour, so err a little more.
    temporal = CleanConfig(ankle=NO_ANKLE, smooth=CFG)
    cleaned = clean_track(make_track(bad), fps, temporal).keypoints
    reference = clean_track(make_track(clean), fps, temporal).keypoints
    error = np.linalg.norm(cleaned - reference, axis=-1)
    assert error[1:-1][mask[1:-1]].max() < 0.5 and error[mask].max() < 2.0


def test_find_outliers_handles_gaps_and_jumps():
    truth = person(200)
    kp = truth.copy()
    kp[40:50, 4] = np.nan                                    # joint unseen for a while
    kp[100:, :] += 150.0                                     # ... and the person re-identified elsewhere
    frames = np.r_[np.arange(100), np.arange(300, 400)]
    assert not find_outliers(kp, 50, CFG, frames=frames).any()
    assert find_outliers(kp, 50, CFG).any()                  # sanity: the jump is a "spike" in one segment
    bad, mask = spikes(kp, [(52, 4), (150, 2)], 100)
    found = find_outliers(bad, 50, CFG, frames=frames)
    np.testing.assert_array_equal(found, mask)


def test_replace_outliers_interpolates_within_segments():
    kp = np.broadcast_to(np.arange(20.0)[:, None, None], (20, 17, 2)).copy()
    flags = np.zeros((20, 17), bool)
    flags[[5, 19], 3] = True
    kp[[5, 19], 3] = 999
    out = replace_outliers(kp, flags)
    assert out[5, 3, 0] == pytest.approx(5.0) and out[19, 3, 0] == pytest.approx(18.0)   # edge: held
    np.testing.assert_array_equal(np.delete(out, 3, axis=1), np.delete(kp, 3, axis=1))


@pytest.mark.parametrize("field, value", [
    ("window_s", 0.0), ("window_s", float("nan")), ("polyorder", -1), ("polyorder", 2.5),
    ("min_score", 1.5), ("outlier_accel", 0.0), ("rpca_window_s", -1.0), ("rpca_lambda", 0.0),
    ("rpca_threshold", 0.0),
])
def test_config_errors_name_the_field(field, value):
    with pytest.raises(ConfigError, match=field):
        SmoothConfig(**{field: value})


def test_config_from_dict():
    config = from_dict(SmoothConfig, {"window_s": 1, "rpca": True, "rpca_lambda": 0.1, "smoothing": False})
    assert config.window_s == 1.0 and config.rpca and config.rpca_lambda == 0.1 and not config.smoothing
    assert config.outlier_accel == pytest.approx(150.0)
    with pytest.raises(ConfigError, match="window_s"):
        from_dict(SmoothConfig, {"window": 1.0})
    with pytest.raises(ConfigError, match="min_score"):
        from_dict(SmoothConfig, {"min_score": "high"})
