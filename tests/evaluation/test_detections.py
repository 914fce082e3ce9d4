"""The detections dataset (pipeline/evaluation/detections.py): rendered mocap through the 2D stage, resumable."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.errors import ConfigError
from pipeline.evaluation.detections import DetectionsConfig, build_detections, clip_path
from pipeline.training.mocap import load_motion
from tests.support.synth import SHARED

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
