"""`pose3d batch`: discovery by content, outputs mirrored, bad files recorded, resume after a kill."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from pipeline.batch.clip import FAULT_ENV, ClipJob, commit, earlier_result, remove_partials
from pipeline.batch.local import ClipModels
from pipeline.batch.plan import BatchConfig, plan_batch
from pipeline.batch.runner import run_batch
from pipeline.cli.app import app
from pipeline.evaluation.synth import SynthConfig, synthesize
from pipeline.evaluation.synth import write_clip as write_synth
from pipeline.evaluation.video import slice_motion
from pipeline.run import load_run_config
from pipeline.training.mocap import load_motion
from tests.support.clips import fast_config, mixed_folder, write_clip
from tests.support.synth import SHARED

WALK = SHARED / "data" / "mocap" / "cmu" / "asfamc" / "02" / "02_01.amc.gz"


def _mtimes(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in sorted(folder.rglob("*")) if p.is_file()}


def _leftovers(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if ".partial-" in p.name or p.name.endswith(".tmp")]


def test_plan_finds_videos_by_content(tmp_path):
    src = tmp_path / "in"
    expected = mixed_folder(src)
    image = np.full((32, 32, 3), 90, np.uint8)
    (src / "photo_no_suffix").write_bytes(cv2.imencode(".png", image)[1].tobytes())   # known by its header
    (src / "still.webp").write_bytes(cv2.imencode(".webp", image)[1].tobytes())       # ffmpeg: one frame
    write_clip(src / "x.mp4", frames=4)
    write_clip(src / "x.mov", frames=4)
    write_clip(src / "out" / "already_an_output.mp4", frames=4)   # the output folder inside the input
    plan = plan_batch(src, src / "out", load_run_config(fast_config(tmp_path)))
    jobs = {job.name: job for job in plan.jobs}
    assert set(jobs) == {n for n, s in expected.items() if s == "done"} | {"x.mp4", "x.mov"}
    assert jobs["nested/c_no_suffix"].frames == 12 and jobs["nested/deeper/b.mov"].folder == src / "out/nested/deeper"
    assert (jobs["x.mp4"].base, jobs["x.mov"].base, jobs["a.mp4"].base) == ("x.mp4", "x.mov", "a")
    broken = {job.name: reason for job, reason in plan.broken}
    assert broken["broken.mp4"].startswith("truncated or corrupt") and "empty" in broken["empty.mp4"]
    ignored = {r.name: r.reason for r in plan.settled}
    assert ignored == {"notes.txt": "not a video: a text file", "photo_no_suffix": "not a video: a PNG image",
                       "still.webp": "not a video: a still image (webp)"}
    assert plan.frames == sum(job.frames for job in plan.jobs) == 12 * 3 + 4 * 2


def _job(tmp_path: Path) -> ClipJob:
    source = tmp_path / "clip.mp4"
    source.write_bytes(b"not really a video, the record rules only look at size and mtime")
    stat = source.stat()
    return ClipJob(source, "clip.mp4", tmp_path / "out", "clip", (".mp4", ".json"), stat.st_size,
                   stat.st_mtime_ns, 10, "settings-a")


def _complete(job: ClipJob) -> None:
    job.folder.mkdir(parents=True, exist_ok=True)
    temps = {}
    for path in job.outputs:
        temps[path.name] = job.folder / f".{job.base}.partial-test{path.suffix}"
        temps[path.name].write_bytes(b"x" * 100)
    commit(job, temps, 10, 1, 0.5, job.folder)


def test_completion_rules(tmp_path):
    job = _job(tmp_path)
    assert earlier_result(job) is None                        # nothing written yet
    _complete(job)
    assert earlier_result(job).status == "skipped" and not _leftovers(job.folder)
    assert earlier_result(replace(job, settings="settings-b")) is None          # other settings
    assert earlier_result(replace(job, suffixes=(".mp4", ".json", ".csv"))) is None   # more outputs asked
    assert earlier_result(replace(job, mtime_ns=job.mtime_ns + 10**9)) is None  # the input changed
    (job.folder / "clip.json").write_bytes(b"y" * 99)         # an output changed
    assert earlier_result(job) is None
    _complete(job)
    (job.folder / "clip.mp4").unlink()                        # an output went missing
    assert earlier_result(job) is None
    _complete(job)
    job.record.write_text("{\"format\": \"pose3d-batch-rec")   # a record cut short
    assert earlier_result(job) is None
    stale = [job.folder / ".clip.partial-dead.mp4", job.folder / "..clip.partial-dead.mp4.ab12.tmp"]
    for path in stale:
        path.write_bytes(b"half")
    remove_partials(job)
    assert not any(p.exists() for p in stale) and (job.folder / "clip.json").exists()


def test_batch_cli_folder_records_bad_files_and_reruns_nothing(tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    expected = mixed_folder(src)
    args = ["batch", str(src), "--out", str(out), "-c", str(fast_config(tmp_path)), "-e", "json", "-e", "csv"]
    first = CliRunner().invoke(app, args)
    assert first.exit_code == 1, first.output
    doc = json.loads((out / "pose3d-batch.json").read_text())
    statuses = {c["clip"]: c["status"] for c in doc["clips"]}
    assert statuses == expected and doc["counts"]["done"] == 3 and doc["frames_done"] == 36
    reasons = {c["clip"]: c["reason"] for c in doc["clips"]}
    assert reasons["broken.mp4"].startswith("truncated or corrupt") and reasons["empty.mp4"].startswith("file is empty")
    assert reasons["notes.txt"] == "not a video: a text file"
    for stem in ("a", "nested/c_no_suffix", "nested/deeper/b"):
        assert {(out / f"{stem}{s}").is_file() for s in (".mp4", ".json", ".csv")} == {True}
    tracks = json.loads((out / "a.json").read_text())
    assert tracks["format"] == "pose3d-tracks" and tracks["video"]["num_frames"] == 12
    assert "broken.mp4" in (out / "pose3d-batch.csv").read_text() and not _leftovers(out)
    assert not (out / ".hidden.json").exists()

    before = _mtimes(out)
    second = CliRunner().invoke(app, args)
    assert second.exit_code == 1, second.output
    after = _mtimes(out)
    summaries = {"pose3d-batch.json", "pose3d-batch.csv"}
    assert {k: v for k, v in after.items() if k not in summaries} == {k: v for k, v in before.items()
                                                                       if k not in summaries}
    counts = json.loads((out / "pose3d-batch.json").read_text())["counts"]
    assert counts == {"done": 0, "skipped": 3, "failed": 2, "ignored": 1, "interrupted": 0}

    newer = time.time() + 5
    os.utime(src / "a.mp4", (newer, newer))                  # an edited input is done again, alone
    third = CliRunner().invoke(app, args)
    doc = json.loads((out / "pose3d-batch.json").read_text())
    assert third.exit_code == 1 and [c["clip"] for c in doc["clips"] if c["status"] == "done"] == ["a.mp4"]


def test_killed_batch_resumes_without_redoing_finished_clips(tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    names = ["c1.mp4", "c2.mp4", "sub/c3.mp4"]
    for i, name in enumerate(names):
        write_clip(src / name, frames=24, seed=i)
    cmd = [sys.executable, "-m", "pipeline", "batch", str(src), "--out", str(out), "-c", str(fast_config(tmp_path))]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    first_record = out / ".c1.record.json"
    deadline = time.monotonic() + 240
    while not first_record.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)                      # the batch and its ffmpeg children, at once
    proc.wait()
    assert first_record.exists(), "the first clip never finished"
    finished = first_record.read_text()
    assert not (out / "sub" / ".c3.record.json").exists() and not (out / "sub" / "c3.mp4").exists() and not (out / "pose3d-batch.json").exists()

    rerun = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    doc = json.loads((out / "pose3d-batch.json").read_text())
    statuses = {c["clip"]: c["status"] for c in doc["clips"]}
    assert statuses["c1.mp4"] == "skipped" and statuses["sub/c3.mp4"] == "done", statuses
    assert first_record.read_text() == finished and not _leftovers(out)
    assert all((out / Path(n).with_suffix(s)).is_file() for n in names for s in (".mp4", ".json"))


def test_interrupted_batch_keeps_finished_clips_and_writes_the_summary(tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    for i in range(3):
        write_clip(src / f"c{i}.mp4", seed=i)
    plan = plan_batch(src, out, load_run_config(fast_config(tmp_path)))
    finished = []

    def stop_after_first(event):
        if getattr(event, "status", None) == "done":
            finished.append(event.name)
        elif finished and getattr(event, "stage", None) == "2d":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_batch(plan, progress=stop_after_first)
    doc = json.loads((out / "pose3d-batch.json").read_text())
    assert [c["status"] for c in doc["clips"]] == ["done", "interrupted", "interrupted"]
    assert not _leftovers(out) and not (out / ".c1.record.json").exists()
    assert [j.name for j in plan_batch(src, out, plan.run_config).jobs] == ["c1.mp4", "c2.mp4"]


def test_threads_share_one_set_of_models(tmp_path, monkeypatch):
    src, out = tmp_path / "in", tmp_path / "out"
    for i in range(3):
        write_clip(src / f"c{i}.mp4", frames=6, seed=i)
    loads = []
    real = ClipModels.load.__func__
    monkeypatch.setattr(ClipModels, "load", classmethod(lambda cls, *a: loads.append(a) or real(cls, *a)))
    config = BatchConfig(workers=2, pool="threads")
    summary = run_batch(plan_batch(src, out, load_run_config(fast_config(tmp_path)), config), config)
    assert [r.status for r in summary.results] == ["done"] * 3 and len(loads) == 1
    assert len({r.worker for r in summary.results}) == 1   # one process


@pytest.mark.slow
def test_process_workers_retry_a_clip_whose_worker_died(tmp_path, monkeypatch):
    src, out = tmp_path / "in", tmp_path / "out"
    for i in range(3):
        write_clip(src / f"c{i}.mp4", frames=6, seed=i)
    marker = tmp_path / "first-attempt"
    monkeypatch.setenv(FAULT_ENV, f"c1.mp4={marker}")       # its first worker dies with os._exit
    config = BatchConfig(workers=2, pool="processes")
    summary = run_batch(plan_batch(src, out, load_run_config(fast_config(tmp_path)), config), config)
    by_name = {r.name: r for r in summary.results}
    assert [r.status for r in summary.results] == ["done"] * 3, summary.results
    assert by_name["c1.mp4"].attempts == 2 and marker.read_text() != by_name["c1.mp4"].worker
    assert by_name["c0.mp4"].worker.split(":")[1] != str(os.getpid()) and not _leftovers(out)


@pytest.mark.skipif(not WALK.exists(), reason="../shared/data/mocap (CMU walk 02_01) not present")
def test_batch_tracks_a_rendered_person(tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    (src / "walks").mkdir(parents=True)
    motion = slice_motion(load_motion(WALK), 1.0, 1.5)
    write_synth(synthesize(motion, SynthConfig(width=192, height=144, fps=15, seed=3)), src / "walks" / "walk.mp4")
    batch = BatchConfig(exports=("json", "bvh", "angles"), video=False)
    summary = run_batch(plan_batch(src, out, load_run_config(fast_config(tmp_path)), batch), batch)
    result = summary.results[0]
    assert result.status == "done" and result.people >= 1 and result.frames == 23
    tracks = json.loads((out / "walks" / "walk.json").read_text())["tracks"]
    assert tracks and len(tracks[0]["poses3d"]) == len(tracks[0]["frames"]) > 10
    # One BVH per person with the clip's name, and the joint angles; a second run finds them complete.
    bvh = sorted(p.name for p in (out / "walks").glob("*.bvh"))
    assert bvh == [f"walk_track{t['id']}.bvh" for t in tracks] and (out / "walks" / "walk_angles.csv").exists()
    assert set(result.outputs) == {f"walks/{n}" for n in bvh + ["walk.json", "walk_angles.csv"]}
    again = run_batch(plan_batch(src, out, load_run_config(fast_config(tmp_path)), batch), batch)
    assert again.results[0].status == "skipped" and not _leftovers(out / "walks")
