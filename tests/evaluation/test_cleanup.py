"""Tests for pipeline/evaluation/cleanup.py: detector-like corruption, the settings, and a small evaluation."""

from __future__ import annotations

import numpy as np
import torch

from pipeline.cleanup.ankle import ANKLES, AnkleRegressor
from pipeline.cleanup.cleaner import CleanConfig
from pipeline.cleanup.smooth import body_height
from pipeline.evaluation.cleanup import DetectorNoise, corrupt_track, evaluate_cleanup, format_cleanup_report, settings
from pipeline.keypoints import coco_to_h36m, h36m_to_coco
from pipeline.lifting.lifter import Lifter
from pipeline.lifting.model import LifterConfig, TemporalModel
from pipeline.training.config import CameraConfig
from pipeline.training.dataset import Clip
from tests.support.synth import moving_person
from tests.support.tracks2d import person


def test_h36m_to_coco_round_trips_through_the_lifter_mapping():
    h36m = np.random.default_rng(0).uniform(0, 500, (4, 17, 2))
    coco = h36m_to_coco(h36m)
    assert np.isnan(coco[:, [3, 4]]).all() and np.isfinite(np.delete(coco, [3, 4], 1)).all()
    back, _ = coco_to_h36m(coco)
    shared = [1, 2, 3, 4, 5, 6, 9, 10, 11, 12, 13, 14, 15, 16]      # all but the derived pelvis, spine, thorax
    np.testing.assert_allclose(back[:, shared], h36m[:, shared], atol=1e-3)


def test_corrupt_track_is_detector_like():
    rng = np.random.default_rng(1)
    exact = person(3000)
    exact[:, [3, 4]] = np.nan                                   # ears, as from H36M
    height = body_height(exact)
    kp, scores, wrong = corrupt_track(exact, 30.0, DetectorNoise(), rng)
    assert kp.shape == exact.shape and scores.shape == (3000, 17) and wrong.shape == (3000, 2)
    np.testing.assert_array_equal(np.isnan(kp), np.isnan(exact))
    assert (scores[:, [3, 4]] == 0).all() and 0 <= scores.min() and scores.max() <= 1
    err = np.linalg.norm(kp - exact, axis=-1) / height
    body = [0, 5, 6, 11, 12, 13, 14]
    assert 0.01 < np.nanmedian(err[:, body]) < 0.02                 # ~1% jitter (plus bias)
    assert 0.05 < wrong.mean() < 0.25                               # runs of wrong ankles
    ankle_err = err[:, list(ANKLES)]
    assert ankle_err[wrong].mean() > 5 * np.median(ankle_err[~wrong])
    assert scores[:, list(ANKLES)][wrong].mean() < scores[:, list(ANKLES)][~wrong].mean() - 0.2
    again, _, _ = corrupt_track(exact, 30.0, DetectorNoise(), np.random.default_rng(1))
    np.testing.assert_array_equal(again, kp)                         # seeded


def test_settings_switch_one_step_each():
    named = {s.name: s.config for s in settings(CleanConfig())}
    assert not named["none"].enabled
    steps = {"ankle (net)": "ankle", "ankle (linear)": "ankle", "outliers": "outliers", "rpca": "rpca",
             "smoothing": "smoothing"}
    for name, step in steps.items():
        c = named[name]
        on = {"ankle": c.ankle.enabled, "outliers": c.smooth.outliers, "rpca": c.smooth.rpca,
              "smoothing": c.smooth.smoothing}
        assert [k for k, v in on.items() if v] == [step], name
    assert named["ankle (linear)"].ankle.method == "linear"
    every = named["all (ankle net, outliers, rpca, smoothing)"]
    assert every.ankle.enabled and every.smooth.outliers and every.smooth.rpca and every.smooth.smoothing
    assert named["configured (run.yaml clean)"] == CleanConfig()


def test_small_evaluation_runs_and_the_regressor_helps_ankles():
    torch.manual_seed(0)
    lifter = Lifter(TemporalModel(LifterConfig(filter_widths=(3, 3), channels=16)).eval(), 50.0)
    clips = [Clip(torch.from_numpy(moving_person(240, seed).astype(np.float32)), f"c{seed}", "99", "walk")
             for seed in range(2)]
    noise = DetectorNoise(ankle_rate=0.02)
    report = evaluate_cleanup(lifter, AnkleRegressor.load(), clips, CameraConfig(), CleanConfig(), fps=30.0,
                              noise=noise, segment_s=4.0, seed=0)
    rows = {r.setting: r for r in report.rows}
    assert len(rows) == 1 + len(settings(CleanConfig())) and report.subjects == ("99",)
    assert report.segments == 4 and report.frames == 480 and 0 < report.ankle_wrong_fraction < 1
    assert all(np.isfinite([r.mpjpe, r.p_mpjpe, r.mpjve]).all() for r in report.rows)
    assert rows["exact 2D (no noise)"].ankle_all == 0
    assert rows["ankle (net)"].ankle_wrong < 0.7 * rows["none"].ankle_wrong
    assert rows["smoothing"].ankle_right < rows["none"].ankle_right
    table = format_cleanup_report(report)
    assert all(name in table for name in rows)


def test_no_ankle_errors_without_ankle_runs():
    _, _, wrong = corrupt_track(person(200), 30.0, DetectorNoise(ankle_rate=0.0), np.random.default_rng(2))
    assert not wrong.any()
