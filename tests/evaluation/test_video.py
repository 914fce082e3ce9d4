"""`pose3d synth` and `pose3d evaluate-video`: rendered held-out mocap through the whole pipeline."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from pipeline.cli.app import app
from pipeline.evaluation.video import VideoEvalRow, evaluate_videos, overall_row, slice_motion
from pipeline.io.ffmpeg import probe
from pipeline.lifting.checkpoint import save_checkpoint
from pipeline.lifting.lifter import Lifter
from pipeline.lifting.model import LifterConfig, TemporalModel
from pipeline.training.mocap import load_motion
from tests.support.synth import SHARED

WALK = SHARED / "data" / "mocap" / "cmu" / "asfamc" / "02" / "02_01.amc.gz"
needs_cmu = pytest.mark.skipif(not WALK.exists(), reason="../shared/data/mocap not present")


def test_overall_row_weights_by_detected_frames():
    rows = [VideoEvalRow("a", 100, 1.0, 0.01, 50.0, 40.0), VideoEvalRow("b", 100, 0.5, 0.03, 80.0, 70.0),
            VideoEvalRow("c", 100, 0.0, float("nan"), float("nan"), float("nan"))]
    total = overall_row(rows)
    assert total.frames == 300 and total.detected == pytest.approx(0.5)
    assert total.mpjpe == pytest.approx((50 * 100 + 80 * 50) / 150)


@needs_cmu
def test_slice_motion():
    motion = load_motion(WALK)
    part = slice_motion(motion, 0.5, 1.0)
    assert len(part.joints) == round(motion.fps) and np.allclose(part.joints[0], motion.joints[round(0.5 * motion.fps)])


@needs_cmu
@pytest.mark.slow
def test_synth_cli_and_evaluate_video(tmp_path):
    res = CliRunner().invoke(app, ["synth", str(WALK), "--out", str(tmp_path / "c.mp4"), "--gt", str(tmp_path / "g.npz"),
                                   "--duration", "1", "--width", "480", "--height", "270"])
    assert res.exit_code == 0, res.output
    info = probe(tmp_path / "c.mp4")
    with np.load(tmp_path / "g.npz") as gt:
        assert (info.width, info.height) == (480, 270) and info.num_frames == len(gt["poses3d"]) == 30
        assert np.allclose(gt["poses3d"][:, 0], 0.0)
    weights = tmp_path / "tiny.pt"
    save_checkpoint(weights, TemporalModel(LifterConfig(filter_widths=(3,), channels=16)).eval(), train_fps=50.0)
    rows = evaluate_videos([slice_motion(load_motion(WALK), 0.0, 1.5)], Lifter.load(weights, "cpu"))
    clip, total = rows
    assert clip.frames == 45 and clip.detected > 0.9
    assert clip.error_2d < 0.1  # MediaPipe finds the rendered figure where it is
    assert np.isfinite(clip.mpjpe) and clip.p_mpjpe <= clip.mpjpe
    assert total.name == "overall" and total.frames == 45
