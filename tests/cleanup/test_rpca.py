"""Tests for pipeline/cleanup/rpca.py: principal component pursuit and the per-track replacement."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.cleanup.ankle import AnkleConfig
from pipeline.cleanup.cleaner import CleanConfig, clean_track, clean_track_report
from pipeline.cleanup.rpca import rpca, rpca_track
from pipeline.cleanup.smooth import SmoothConfig, body_height
from pipeline.errors import ShapeError
from tests.support.tracks2d import make_track, person, spikes

CFG = SmoothConfig()


def test_rpca_recovers_low_rank_matrix():
    rng = np.random.default_rng(4)
    low0 = rng.normal(size=(120, 3)) @ rng.normal(size=(3, 60))
    sparse0 = np.where(rng.random((120, 60)) < 0.05, rng.uniform(-10, 10, (120, 60)), 0.0)
    low, sparse = rpca(low0 + sparse0)
    assert np.linalg.norm(low - low0) / np.linalg.norm(low0) < 1e-4
    assert np.linalg.norm(sparse - sparse0) / np.linalg.norm(sparse0) < 1e-4
    zero_low, zero_sparse = rpca(np.zeros((5, 4)))
    assert not zero_low.any() and not zero_sparse.any()
    with pytest.raises(ShapeError):
        rpca(np.full((3, 3), np.nan))


def test_rpca_track_fixes_spikes():
    truth = person(200)
    ones = np.ones((200, 17))
    same, replaced = rpca_track(truth, ones, 50, CFG)
    assert not replaced.any() and np.array_equal(same, truth)
    where = [(3, 1), (40, 6), (41, 6), (90, 15), (150, 10), (199, 0)]
    bad, mask = spikes(truth, where, 0.2 * body_height(truth))
    fixed, replaced = rpca_track(bad, ones, 50, CFG)
    np.testing.assert_array_equal(replaced, mask)
    assert np.linalg.norm(fixed - truth, axis=-1).max() < 10.0     # from 100 px spikes
    config = CleanConfig(ankle=AnkleConfig(enabled=False), smooth=SmoothConfig(outliers=False, rpca=True))
    track, report = clean_track_report(make_track(bad), 50, config)
    assert report.rpca_replaced == len(where) and report.outliers == 0
    reference = clean_track(make_track(truth), 50, config).keypoints
    error = np.linalg.norm(track.keypoints - reference, axis=-1)
    assert error[1:-1][mask[1:-1]].max() < 0.5 and error[mask].max() < 2.0
