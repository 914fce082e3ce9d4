"""The pose bank as users reach it: `pose3d lift/run --pose-bank`, subsampled evaluation, `pose3d ablate`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from pipeline.cli.app import app
from pipeline.errors import ConfigError
from pipeline.evaluation.ablate import format_ablation, methods_for, parse_model, run_ablation
from pipeline.evaluation.evaluate import evaluate
from pipeline.keypoints import coco_to_h36m, fill_gaps
from pipeline.lifting.bank import PoseBankConfig
from pipeline.lifting.checkpoint import save_checkpoint
from pipeline.lifting.lifter import Lifter
from pipeline.lifting.model import LifterConfig, TemporalModel
from pipeline.run import lift_tracks
from pipeline.skeleton import COCO17, H36M17
from pipeline.training.config import TrainConfig
from pipeline.training.dataset import Clip
from pipeline.types import Track, VideoInfo
from tests.lifting.test_bank import swinging
from tests.support.synth import SHARED, moving_person, randomize_bn

CMU = SHARED / "data" / "mocap" / "cmu"
W, H = 1280, 720


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    model = randomize_bn(TemporalModel(LifterConfig(filter_widths=(3, 3, 3), channels=16)))
    path = tmp_path_factory.mktemp("w") / "tiny.pt"
    save_checkpoint(path, model, train_fps=50.0)
    return path


def _invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def test_cli_lift_pose_bank_offline(tmp_path, weights):
    kp = swinging(200).astype(np.float32)
    src = tmp_path / "in.npz"
    np.savez(src, keypoints=kp, width=np.int64(W), height=np.int64(H), fps=np.float64(50.0), format=np.str_("h36m17"))
    outs = {}
    for mode in ("off", "offline"):
        res = _invoke("lift", src, "--out", tmp_path / f"{mode}.npz", "--weights", weights, "--device", "cpu",
                      "--pose-bank", mode)
        assert res.exit_code == 0, res.output
        with np.load(tmp_path / f"{mode}.npz") as data:
            outs[mode] = data["poses3d"]
    expected = Lifter.load(weights, "cpu").lift(kp, W, H, 50.0, bank=PoseBankConfig(mode="offline"))
    np.testing.assert_allclose(outs["offline"], expected, atol=1e-5)
    assert outs["offline"].shape == (200, 17, 3) and np.isfinite(outs["offline"]).all()
    changed = np.abs(outs["offline"] - outs["off"]).max(axis=(1, 2)) > 1e-6
    assert 0 < changed.sum() < 200  # only frames with bank poses to fuse differ
    res = _invoke("lift", src, "--out", tmp_path / "x.npz", "--weights", weights, "--pose-bank", "sometimes")
    assert res.exit_code == 2 and "Traceback" not in res.output and "mode" in res.output


def test_cli_run_rejects_unknown_pose_bank_mode(tmp_path):
    res = _invoke("run", tmp_path / "clip.mp4", "--out", tmp_path / "o.mp4", "--pose-bank", "always")
    assert res.exit_code == 2 and "pose_bank.mode" in res.output and "Traceback" not in res.output


def _coco(h36m: np.ndarray) -> np.ndarray:
    """(T, 17, 2) COCO-17 pixels from an H36M-17 track (face points around the neck/head)."""
    out = np.empty_like(h36m)
    for name in ("l_shoulder", "r_shoulder", "l_elbow", "r_elbow", "l_wrist", "r_wrist", "l_hip", "r_hip",
                 "l_knee", "r_knee", "l_ankle", "r_ankle"):
        out[:, COCO17.index(name)] = h36m[:, H36M17.index(name)]
    nose, up = h36m[:, H36M17.index("neck")], h36m[:, H36M17.index("head")] - h36m[:, H36M17.index("neck")]
    for name, dx, k in (("nose", 0, 0.0), ("l_eye", 6, 0.5), ("r_eye", -6, 0.5), ("l_ear", 12, 0.4), ("r_ear", -12, 0.4)):
        out[:, COCO17.index(name)] = nose + k * up + [dx, 0]
    return out


def test_lift_tracks_passes_the_bank(weights):
    kp = _coco(swinging(150)).astype(np.float32)
    track = Track(1, np.arange(150), kp, np.ones((150, 17), np.float32), np.zeros(150, bool))
    info = VideoInfo(Path("clip.mp4"), W, H, 50.0, 150, 3.0)
    lifter, bank = Lifter.load(weights, "cpu"), PoseBankConfig(mode="online")
    got = lift_tracks([track], lifter, info, bank=bank)[0].poses3d
    h36m = fill_gaps(coco_to_h36m(kp, track.scores)[0])
    np.testing.assert_allclose(got, lifter.lift(h36m, W, H, 50.0, bank=bank), atol=1e-6)
    assert not np.allclose(got, lift_tracks([track], lifter, info)[0].poses3d)


def _clips() -> list[Clip]:
    return [Clip(torch.from_numpy(moving_person(n, seed=i, jitter=0.2)).float(), f"c{i}", "9", a)
            for i, (n, a) in enumerate([(301, "walk"), (122, "jump")])]


def test_evaluate_subsampled_scores_every_frame_once(weights):
    model = Lifter.load(weights, "cpu").model
    camera = TrainConfig().camera
    plain = evaluate(model, _clips(), camera, segment_frames=100)
    for interval in (3, 7):
        report = evaluate(model, _clips(), camera, segment_frames=100, interval=interval)
        for protocol in ("gt", "noisy"):
            assert report.overall(protocol).frames == 423  # all phases: every frame scored once
            assert np.isfinite(report.overall(protocol).mpjve)
        assert report.overall().mpjve != plain.overall().mpjve
    off = evaluate(model, _clips(), camera, segment_frames=100, bank=PoseBankConfig(mode="off"))
    assert off.overall() == plain.overall()
    with pytest.raises(ConfigError):
        evaluate(model, _clips(), camera, interval=0)


def test_ablation_rows_and_table(weights):
    methods = methods_for([parse_model(f"tiny={weights}")], ["off", "online", "offline"])
    assert [m.name for m in methods] == ["tiny", "tiny + pose bank (online)", "tiny + pose bank (offline)"]
    assert parse_model("shipped") == ("shipped", None)
    with pytest.raises(ConfigError):
        methods_for([("tiny", weights)], ["sideways"])
    cells = run_ablation(methods, _clips(), TrainConfig().camera, intervals=(1, 5), segment_frames=100, device="cpu")
    assert len(cells) == 3 * 2 * 2
    table = format_ablation(cells, "gt")
    assert table.count("\n") == 1 + 6 and "| 1 in 5 frames | tiny + pose bank (online) | 423 |" in table
    base = next(c for c in cells if c.method == "tiny" and c.interval == 5 and c.protocol == "gt")
    online = next(c for c in cells if c.method.endswith("(online)") and c.interval == 5 and c.protocol == "gt")
    assert f"{online.mpjpe:.1f} ({online.mpjpe - base.mpjpe:+.1f})" in table


@pytest.mark.skipif(not (CMU / "MANIFEST.tsv").exists(), reason="../shared/data/mocap not present")
def test_cli_ablate_on_shared_mocap(tmp_path, weights):
    rows = (CMU / "MANIFEST.tsv").read_text().splitlines()
    picked = [r for r in rows[1:] if r.startswith("bvh/cgspeed-mb/08_0")][:2]
    absolute = [str(CMU / r.split("\t")[0]) + r[r.index("\t"):] for r in picked]
    (tmp_path / "m.tsv").write_text("\n".join([rows[0], *absolute]) + "\n")
    res = _invoke("ablate", "--data", tmp_path / "m.tsv", "--subjects", "8", "--model", f"tiny={weights}",
                  "--intervals", "1,3", "--device", "cpu", "--json", tmp_path / "cells.json")
    assert res.exit_code == 0, res.output
    for needle in ("exact 2D (gt)", "detector-like noisy 2D (noisy)", "| original | tiny |",
                   "| 1 in 3 frames | tiny + pose bank (offline) |"):
        assert needle in res.output, res.output
    assert (tmp_path / "cells.json").exists()
    res = _invoke("ablate", "--data", tmp_path / "m.tsv", "--intervals", "1,x")
    assert res.exit_code == 2 and "--intervals" in res.output
