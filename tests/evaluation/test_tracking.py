"""`pose3d synth --people` and `pose3d evaluate-tracking`: identities on rendered groups of held-out people."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from pipeline.cli.app import app
from pipeline.evaluation.identities import IdentityScores
from pipeline.evaluation.tracking import TrackingRow, format_tracking
from pipeline.io.ffmpeg import probe
from tests.support.synth import SHARED

WALKS = [SHARED / "data" / "mocap" / "cmu" / "bvh" / "cgspeed-mb" / f"08_0{k}.bvh.gz" for k in (1, 2)]
needs_cmu = pytest.mark.skipif(not all(w.exists() for w in WALKS), reason="../shared/data/mocap not present")


def test_format_tracking_sums_the_clips():
    rows = [TrackingRow("a+b", 90, IdentityScores(180, 175, 170, 170, 1, 160, 3, 2), 4.0),
            TrackingRow("c+d", 90, IdentityScores(180, 180, 180, 180, 0, 180, 2, 2), 5.0)]
    table = format_tracking(rows)
    assert "| **overall** | 180 | 4 | 5 | 98.6% | 97.2% | 100.0% | 1 | 0.958 | 9.0 |" in table


@needs_cmu
@pytest.mark.slow
def test_synth_people_cli_writes_clip_and_truth(tmp_path):
    res = CliRunner().invoke(app, ["synth", *map(str, WALKS), "--people", "3", "--out", str(tmp_path / "g.mp4"),
                                   "--gt", str(tmp_path / "g.npz"), "--duration", "1", "--width", "480",
                                   "--height", "270", "--distance", "6"])
    assert res.exit_code == 0, res.output
    info = probe(tmp_path / "g.mp4")
    with np.load(tmp_path / "g.npz") as gt:
        assert (info.width, info.height, info.num_frames) == (480, 270, 30)
        assert gt["poses3d"].shape == (3, 30, 17, 3) and gt["ids"].tolist() == [0, 1, 2]
        assert set(gt["names"].tolist()) <= {"08_01", "08_02"}


@needs_cmu
@pytest.mark.slow
def test_evaluate_tracking_cli_on_a_short_group(tmp_path):
    res = CliRunner().invoke(app, ["evaluate-tracking", "--data", str(SHARED / "data" / "mocap"), "--subjects", "8",
                                   "--clips", "1", "--people", "2", "--seconds", "2"])
    assert res.exit_code == 0, res.output
    overall = next(line for line in res.output.splitlines() if line.startswith("| **overall**"))
    cells = [c.strip() for c in overall.strip("|").split("|")]
    assert cells[1] == "60" and cells[2] == "2"
    found, recall, idf1 = float(cells[4].rstrip("%")), float(cells[5].rstrip("%")), float(cells[8])
    assert found > 80 and recall > 80 and idf1 > 0.8    # two people crossing, in plain view
