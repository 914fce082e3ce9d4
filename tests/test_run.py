"""`pose3d run` end to end on short clips: outputs, exports round trip, CLI errors."""

from __future__ import annotations

import csv
import json
import subprocess
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from pipeline.cli.app import app
from pipeline.errors import InputError, ModelError
from pipeline.io.export import export_tracks, load_tracks_json
from pipeline.io.ffmpeg import ffmpeg_exe, probe
from pipeline.lifting.checkpoint import save_checkpoint
from pipeline.lifting.lifter import Lifter
from pipeline.lifting.model import LifterConfig, TemporalModel
from pipeline.run import LiftStageConfig, RunConfig, load_trajectory, run_video
from pipeline.types import Track, VideoInfo
from tests.support.synth import SHARED

VIDEOS = SHARED / "data" / "videos"
needs_videos = pytest.mark.skipif(not (VIDEOS / "two_kids_jumping_sam2.mp4").exists(),
                                  reason="../shared/data/videos not present")


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory) -> Path:
    """A small random-initialised lifter (the tests check plumbing and shapes, not accuracy)."""
    path = tmp_path_factory.mktemp("w") / "tiny.pt"
    save_checkpoint(path, TemporalModel(LifterConfig(filter_widths=(3, 3), channels=16)).eval(), train_fps=50.0)
    return path


@pytest.fixture(scope="module")
def kids_clip(tmp_path_factory) -> Path:
    """The first 1.5 s of the two-kids clip, with a sine audio track added (the input has none)."""
    out = tmp_path_factory.mktemp("clip") / "kids.mp4"
    subprocess.run([ffmpeg_exe(), "-loglevel", "error", "-i", str(VIDEOS / "two_kids_jumping_sam2.mp4"),
                    "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100", "-t", "1.5",
                    "-map", "0:v", "-map", "1:a", "-c:v", "libx264", "-c:a", "aac", "-shortest", str(out)],
                   check=True)
    return out


def _track(track_id: int, frames: list[int]) -> Track:
    t = len(frames)
    rng = np.random.default_rng(track_id)
    kp = rng.uniform(0, 500, (t, 17, 2)).astype(np.float32)
    kp[0, 3] = np.nan
    return Track(track_id, np.array(frames), kp, rng.uniform(0, 1, (t, 17)).astype(np.float32),
                 np.zeros(t, bool), rng.normal(0, 0.3, (t, 17, 3)).astype(np.float32))


INFO = VideoInfo(Path("clip.mp4"), 640, 480, 30.0, 10, 1 / 3)


def test_exports_round_trip(tmp_path):
    tracks = [_track(1, [0, 1, 2, 3]), _track(4, [2, 3, 4])]
    json_path = export_tracks(tmp_path / "t.json", tracks, INFO)
    video, back = load_tracks_json(json_path)
    assert video["width"] == 640 and [t.track_id for t in back] == [1, 4]
    for a, b in zip(tracks, back):
        np.testing.assert_array_equal(a.frames, b.frames)
        np.testing.assert_allclose(a.keypoints, b.keypoints, atol=0.01)  # NaN survives as null
        np.testing.assert_allclose(a.poses3d, b.poses3d, atol=1e-4)
    doc = json.loads(json_path.read_text())
    assert doc["skeletons"]["poses3d"]["joints"][0] == "pelvis" and doc["skeletons"]["keypoints2d"]["joints"][0] == "nose"
    with np.load(export_tracks(tmp_path / "t.npz", tracks, INFO)) as npz:
        np.testing.assert_array_equal(npz["track_ids"], [1, 4])
        np.testing.assert_array_equal(npz["track_4_poses3d"], tracks[1].poses3d)
    rows = list(csv.DictReader(open(export_tracks(tmp_path / "t.csv", tracks, INFO))))
    assert len(rows) == (4 + 3) * 17
    assert rows[3]["x"] == "" and rows[0]["h36m_joint"] == "pelvis" and rows[0]["coco_joint"] == "nose"
    assert float(rows[17]["X"]) == pytest.approx(tracks[0].poses3d[1, 0, 0], abs=1e-4)


def test_unknown_export_suffix_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="unknown format"):
        export_tracks(tmp_path / "t.txt", [_track(1, [0])], INFO)


@needs_videos
@pytest.mark.slow
def test_run_two_kids_end_to_end(kids_clip, tiny_weights, tmp_path):
    out = tmp_path / "out.mp4"
    seen = []
    result = run_video(kids_clip, out, RunConfig(), exports=[tmp_path / "r.json", tmp_path / "r.npz"],
                       progress=seen.append, lifter=Lifter.load(tiny_weights, "cpu"))
    src, dst = probe(kids_clip), probe(out)
    assert dst.num_frames == src.num_frames == result.frames
    assert abs(dst.duration - src.duration) < 1.5 / src.fps and dst.has_audio and dst.codec == "h264"
    assert dst.height == src.height and dst.width > src.width  # side-by-side 3D panel
    assert len(result.tracks) >= 1
    for t in result.tracks:
        assert t.poses3d.shape == (len(t), 17, 3) and np.isfinite(t.poses3d).all()
        assert np.allclose(t.poses3d[:, 0], 0.0, atol=1e-5)
        seen_kp = t.keypoints[~t.interpolated]
        assert np.nanmax(seen_kp[..., 0]) <= src.width * 1.1 and np.nanmax(seen_kp[..., 1]) <= src.height * 1.1
    assert {p.stage for p in seen} >= {"2d", "lift", "render", "export"}
    _, back = load_tracks_json(tmp_path / "r.json")
    assert [t.track_id for t in back] == [t.track_id for t in result.tracks]


def test_cli_run_error_paths(tmp_path, tiny_weights):
    runner = CliRunner()
    res = runner.invoke(app, ["run", str(tmp_path / "missing.mp4"), "--out", str(tmp_path / "o.mp4"),
                              "--weights", str(tiny_weights)])
    assert res.exit_code == 3 and "Traceback" not in res.output and "missing.mp4" in res.output
    (tmp_path / "notes.mp4").write_text("not a video")
    res = runner.invoke(app, ["run", str(tmp_path / "notes.mp4"), "--out", str(tmp_path / "o.mp4"),
                              "--weights", str(tiny_weights)])
    assert res.exit_code == 3 and "Traceback" not in res.output
    res = runner.invoke(app, ["run", str(tmp_path / "notes.mp4")])
    assert res.exit_code == 2 and "nothing to write" in res.output
    res = runner.invoke(app, ["run", str(tmp_path / "notes.mp4"), "--out", "o.mp4", "--backend", "nope"])
    assert res.exit_code == 2 and "backend" in res.output
    assert not (tmp_path / "o.mp4").exists()


@needs_videos
def test_run_with_trajectory_places_people(kids_clip, tiny_weights, tmp_path):
    traj = tmp_path / "traj.pt"
    save_checkpoint(traj, TemporalModel(LifterConfig(filter_widths=(3, 3), channels=16, target="trajectory",
                                                     input_norm="pelvis_scale_pos_size")).eval(), train_fps=50.0)
    base = RunConfig()
    config = replace(base, lift=replace(base.lift, trajectory=True, trajectory_weights=str(traj), fov_deg=60.0))
    result = run_video(kids_clip, tmp_path / "out.mp4", config, exports=[tmp_path / "r.json"],
                       lifter=Lifter.load(tiny_weights, "cpu"))
    assert result.tracks and all(t.root3d.shape == (len(t), 3) for t in result.tracks)
    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["world"] is not None and all(t["poses3d_world"] is not None for t in doc["tracks"])
    assert probe(tmp_path / "out.mp4").num_frames == result.frames


def test_trajectory_asked_for_without_weights_is_a_model_error(tmp_path):
    with pytest.raises(ModelError, match="not found"):
        load_trajectory(replace(LiftStageConfig(), trajectory=True, trajectory_weights=str(tmp_path / "no.pt")), "cpu")
    assert load_trajectory(LiftStageConfig(), "cpu") is None
