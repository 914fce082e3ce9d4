"""The detections dataset (pipeline/evaluation/detections.py): rendered mocap through the 2D stage, resumable."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from pipeline.cli.app import app
from pipeline.errors import ConfigError, InputError
from pipeline.evaluation.detections import (
    DetectionsConfig,
    build_detections,
    clip_path,
    format_scores,
    score_detections,
)
from pipeline.lifting.checkpoint import save_checkpoint
from pipeline.lifting.lifter import Lifter
from pipeline.lifting.model import LifterConfig, TemporalModel
from pipeline.training.mocap import load_motion
from tests.support.detections import write_folder
from tests.support.synth import SHARED, randomize_bn

HELD_OUT = ("3", "7", "12", "2", "8", "17")

WALK = SHARED / "data" / "mocap" / "cmu" / "asfamc" / "02" / "02_01.amc.gz"


def test_settings_are_checked():
    with pytest.raises(ConfigError):
        DetectionsConfig(clips=0)
    with pytest.raises(ConfigError):
        DetectionsConfig(small_share=1.5)


@pytest.mark.skipif(not WALK.exists(), reason="../shared/data/mocap not present")
@pytest.mark.slow
def test_a_build_stores_tracks_with_their_truth_and_resumes(tmp_path):
    motion = load_motion(WALK, fps=30.0)
    config = DetectionsConfig(clips=2, seconds=1.5, small_share=0.0, seed=5, width=640, height=360)
    first = build_detections([motion], tmp_path / "ds", config)
    assert (first.made, first.kept) == (2, 0) and first.frames > 60
    with np.load(clip_path(tmp_path / "ds", 5)) as clip:
        t = len(clip["frames"])
        assert clip["keypoints"].shape == (t, 17, 2) and clip["poses3d"].shape == (t, 17, 3)
        assert np.allclose(clip["poses3d"][:, 0], 0.0) and str(clip["subject"]) == "2"
        # The 2D stage's hips sit near the rendered hips (COCO 11/12 against H36M 4/1), in pixels.
        error = np.nanmean(np.linalg.norm(clip["keypoints"][:, [11, 12]] - clip["keypoints2d"][:, [4, 1]], axis=-1))
        assert error < 0.1 * clip["height"]
    again = build_detections([motion], tmp_path / "ds", DetectionsConfig(clips=3, seconds=1.5, seed=5, width=640,
                                                                          height=360))
    assert (again.made, again.kept) == (1, 2)


def _lifter() -> Lifter:
    return Lifter(randomize_bn(TemporalModel(LifterConfig(filter_widths=(3, 3), channels=16))), 50.0)


def test_stored_tracks_are_scored_by_group(tmp_path):
    folder = write_folder(tmp_path / "val", subjects=("3", "7", "12"))   # the second clip is a small figure
    rows = score_detections(folder, _lifter(), HELD_OUT)
    assert [(r.name, r.clips) for r in rows] == [("all", 3), ("normal", 2), ("small", 1)]
    assert rows[0].frames == rows[1].frames + rows[2].frames
    for r in rows:
        assert 0 < r.p_mpjpe <= r.mpjpe and np.isfinite(r.mpjve)
    # An all-frames mean is the frame-weighted mean of its groups.
    assert rows[0].mpjpe == pytest.approx((rows[1].mpjpe * rows[1].frames + rows[2].mpjpe * rows[2].frames)
                                          / rows[0].frames)
    assert "| small | 1 |" in format_scores(rows)


def test_a_lifter_is_never_scored_on_training_subjects(tmp_path):
    with pytest.raises(InputError, match="evaluation must not see"):
        score_detections(write_folder(tmp_path / "train", subjects=("1",)), _lifter(), HELD_OUT)


def test_evaluate_detections_command(tmp_path):
    folder = write_folder(tmp_path / "val", subjects=("3", "12"))
    weights = tmp_path / "w.pt"
    save_checkpoint(weights, _lifter().model, train_fps=50.0)
    result = CliRunner().invoke(app, ["evaluate-detections", str(folder), "--weights", str(weights), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "| all | 2 |" in result.output
    refused = CliRunner().invoke(app, ["evaluate-detections", str(write_folder(tmp_path / "tr", subjects=("5",)))])
    assert refused.exit_code != 0 and "must not see" in refused.output
