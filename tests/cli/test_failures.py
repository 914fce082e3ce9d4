"""Bad inputs and faults through the real command line (``python -m pipeline``), one case per failure class.

Each case asserts what docs/failure.md promises: the exit code, at most 3 lines on stderr and no traceback,
nothing left at or beside the destination, inputs byte-identical afterwards, and no child process left.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from pipeline.io.ffmpeg import ffmpeg_exe
from pipeline.io.weights import MODELS
from pipeline.lifting.checkpoint import save_checkpoint
from pipeline.lifting.model import LifterConfig, TemporalModel

ROOT = Path(__file__).resolve().parents[2]
WALK = ROOT / "examples" / "walk.mp4"
WALK_2D = ROOT / "examples" / "walk_2d.npz"
# The offline backend at a small decode size: these tests check failure handling, not accuracy.
FAST_YAML = """\
fetch_weights: false
decode_max_size: 192
twod:
  backend: mediapipe
  mediapipe:
    max_people: 1
    refine_crops: false
"""


def pose3d(*args, cwd: Path, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run the command line in a fresh interpreter, as a user would."""
    return subprocess.run([sys.executable, "-m", "pipeline", *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, **(env or {})})


def assert_fails_cleanly(proc: subprocess.CompletedProcess, code: int, *needles: str) -> None:
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == code, proc.stderr
    assert "Traceback" not in proc.stderr and len(lines) <= 3, proc.stderr
    for needle in needles:
        assert needle in proc.stderr, (needle, proc.stderr)


def digests(folder: Path) -> dict[str, str]:
    """Every file below ``folder`` (hidden ones too) with its SHA-256."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def children_mentioning(text: str) -> list[str]:
    """Command lines of running processes that name ``text`` (an ffmpeg left behind would name its files)."""
    found = []
    for proc in Path("/proc").iterdir():
        with contextlib.suppress(OSError):
            if proc.name.isdigit() and int(proc.name) != os.getpid():
                cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")
                if text in cmdline:
                    found.append(cmdline)
    return found


@pytest.fixture()
def work(tmp_path: Path) -> Path:
    """A folder holding the example clip, its 2D track and the fast config."""
    (tmp_path / "clip.mp4").write_bytes(WALK.read_bytes())
    (tmp_path / "track.npz").write_bytes(WALK_2D.read_bytes())
    (tmp_path / "fast.yaml").write_text(FAST_YAML)
    return tmp_path


@contextlib.contextmanager
def mounted(folder: Path, options: str):
    """A small tmpfs at ``folder`` (skips when this host cannot mount: not root, or no such permission)."""
    folder.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.decode().strip() or 'mount failed'})")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


# 1. A weight file never runs code -----------------------------------------------------------------------------

class _Payload:
    """Unpickling this runs ``touch MARKER``: what a hostile weight file could do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def _hostile_weights(folder: Path, marker: Path) -> None:
    folder.mkdir(exist_ok=True)
    for name in ("yolo11n", "hrnet-w32"):
        with open(folder / MODELS[name].filename, "wb") as f:
            pickle.dump({"model": _Payload(marker)}, f)


def test_hostile_weight_files_are_never_unpickled(work):
    marker = work / "code-ran"
    _hostile_weights(work / "w", marker)
    before = digests(work)
    # Named by $POSE3D_WEIGHTS_DIR, with backend auto: the offline models instead, the shipped lifter still found.
    proc = pose3d("run", "clip.mp4", "--export", "out.json", "-c", "fast.yaml", "--backend", "auto",
                  cwd=work, env={"POSE3D_WEIGHTS_DIR": str(work / "w")})
    assert proc.returncode == 0, proc.stderr
    assert "yolo11n.pt" in proc.stderr and "--trust-weights" in proc.stderr
    assert json.loads((work / "out.json").read_text())["tracks"] and not marker.exists()
    # Asked for explicitly: a one-line model error, before any frame.
    proc = pose3d("run", "clip.mp4", "--out", "o.mp4", "--backend", "yolo-mmpose", "--weights-dir", "w", cwd=work)
    assert_fails_cleanly(proc, 4, "yolo11n.pt", "--trust-weights")
    assert not marker.exists() and not (work / "o.mp4").exists()
    assert {k: v for k, v in digests(work).items() if k != "out.json"} == before


def test_hostile_mmpose_checkpoint_goes_through_the_safe_loader_only(work):
    marker = work / "code-ran"
    _hostile_weights(work / "w", marker)
    (work / "untrained.yaml").write_text("fetch_weights: false\ntwod:\n  backend: yolo-mmpose\n  detector:\n"
                                         "    model: yolo11n.yaml\n")  # an untrained YOLO: no file to unpickle
    proc = pose3d("run", "clip.mp4", "--out", "o.mp4", "-c", "untrained.yaml", "--weights-dir", "w", cwd=work)
    assert_fails_cleanly(proc, 4, MODELS["hrnet-w32"].filename, "safe loader")
    assert not marker.exists() and not (work / "o.mp4").exists()


# 2. The input is never overwritten -----------------------------------------------------------------------------

def test_outputs_never_overwrite_an_input_or_each_other(work):
    os.symlink(work / "clip.mp4", work / "link.mp4")
    os.link(work / "track.npz", work / "hard.npz")
    before = digests(work)
    cases = [
        (["run", "clip.mp4", "--out", "clip.mp4"], "is the input"),
        (["run", "clip.mp4", "--out", "./link.mp4"], "is the input"),             # a symbolic link to it
        (["run", "link.mp4", "--out", f"{work}/clip.mp4"], "is the input"),        # absolute vs relative
        (["run", "clip.mp4", "--out", "r.json", "--export", "r.json"], "--out r.json"),
        (["run", "clip.mp4", "--export", "a.json", "--export", "./a.json"], "also given as"),
        (["lift", "track.npz", "--out", "track.npz"], "is the input"),
        (["lift", "track.npz", "--out", "hard.npz"], "is the input"),              # a hard link to it
    ]
    for args, needle in cases:
        assert_fails_cleanly(pose3d(*args, cwd=work), 2, needle)
    assert digests(work) == before


# 3. A full disk is a failure, not a success --------------------------------------------------------------------

def test_full_disk_fails_with_exit_3_and_leaves_nothing(work):
    with mounted(work / "full", "size=32k"):
        before = digests(work)
        proc = pose3d("run", "clip.mp4", "--out", "full/out.mp4", "-c", "fast.yaml", cwd=work)
        assert_fails_cleanly(proc, 3, "full/out.mp4")
        assert os.listdir(work / "full") == [] and digests(work) == before
        proc = pose3d("run", "clip.mp4", "--export", "full/out.json", "-c", "fast.yaml", cwd=work)
        assert_fails_cleanly(proc, 3, "full/out.json")
        assert os.listdir(work / "full") == [] and digests(work) == before
    assert children_mentioning(str(work)) == []


# 4. Write errors are one line, not a traceback -----------------------------------------------------------------

def test_unwritable_outputs_are_one_line_errors_before_any_work(work):
    (work / "file.txt").write_text("a file, not a folder")
    with mounted(work / "ro", "size=1m,ro"):
        before = digests(work)
        for args, code, needle in [
            (["run", "clip.mp4", "--out", "o.mp4", "--export", "/proc/x.json"], 3, "/proc"),
            (["run", "clip.mp4", "--export", "file.txt/x.json"], 2, "is not a folder"),
            (["run", "clip.mp4", "--out", "ro/o.mp4"], 3, "Read-only file system"),
            (["lift", "track.npz", "--out", "ro/o.npz"], 3, "Read-only file system"),
        ]:
            proc = pose3d(*args, cwd=work)
            assert_fails_cleanly(proc, code, needle)
            assert "2D people" not in proc.stderr                 # refused before the 2D pass
        assert digests(work) == before and not (work / "o.mp4").exists()


def test_unreadable_inputs_are_one_line_errors(work):
    (work / "empty.npz").write_bytes(b"")
    (work / "cut.npz").write_bytes(WALK_2D.read_bytes()[:3000])
    (work / "binary.yaml").write_bytes(bytes(range(256)) * 8)
    before = digests(work)
    assert_fails_cleanly(pose3d("lift", "empty.npz", "--out", "o.npz", cwd=work), 3, "empty.npz")
    assert_fails_cleanly(pose3d("lift", "cut.npz", "--out", "o.npz", cwd=work), 3, "cut.npz")
    assert_fails_cleanly(pose3d("run", "clip.mp4", "--out", "o.mp4", "--config", "binary.yaml", cwd=work), 2,
                         "not a text file")
    assert digests(work) == before


# 5. Options and locations are checked before the first frame ---------------------------------------------------

def test_bad_options_fail_before_the_first_frame(work):
    (work / "crf.yaml").write_text("crf: 99\n")
    before = digests(work)
    for args, needle in [
        (["run", "clip.mp4", "--out", "o.mp4", "--export", "o.txt"], "'.txt'"),
        (["run", "clip.mp4", "--out", "o.avi"], "'.avi'"),
        (["run", "clip.mp4", "--out", "o.mp4", "--fov", "-5", "--trajectory"], "field of view"),
        (["run", "clip.mp4", "--out", "o.mp4", "--config", "crf.yaml"], "crf must be in 0-51"),
        (["run", "clip.mp4", "--out", "o.mp4", "--layout", "nonsense"], "layout must be one of side, pip, overlay"),
    ]:
        proc = pose3d(*args, cwd=work)
        assert_fails_cleanly(proc, 2, needle)
        assert "2D people" not in proc.stderr and "RenderConfig(" not in proc.stderr
    assert digests(work) == before


def test_missing_output_folders_are_created_when_the_run_writes(work):
    proc = pose3d("run", "clip.mp4", "--out", "new/deep/o.mp4", "--export", "new/o.csv", "-c", "fast.yaml", cwd=work)
    assert proc.returncode == 0, proc.stderr
    assert (work / "new" / "deep" / "o.mp4").stat().st_size > 0 and (work / "new" / "o.csv").stat().st_size > 0


# 6. SIGTERM stops a run cleanly --------------------------------------------------------------------------------

def test_sigterm_during_the_encode_exits_143_and_leaves_nothing(work):
    subprocess.run([ffmpeg_exe(), "-v", "error", "-stream_loop", "3", "-i", "clip.mp4", "-c", "copy", "long.mp4"],
                   cwd=work, check=True)
    stale = work / "made" / ".out.mp4.999999999-0badcafe.tmp"     # left by a killed run whose process is gone
    before = digests(work)
    proc = subprocess.Popen([sys.executable, "-m", "pipeline", "run", "long.mp4", "--out", "made/out.mp4",
                             "--export", "made/out.json", "-c", "fast.yaml"], cwd=work, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and not list((work / "made").glob(".out.mp4.*.tmp")):
        assert proc.poll() is None, proc.communicate()[1]
        time.sleep(0.05)
    time.sleep(0.3)                                               # well inside the encode
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert "Traceback" not in err and len([x for x in err.splitlines() if x.strip()]) <= 3, err
    assert not (work / "made").exists() and digests(work) == before
    assert children_mentioning(str(work)) == []
    # A stale temporary file of a dead run is removed by the next run that writes the same output.
    stale.parent.mkdir()
    stale.write_bytes(b"half a video")
    proc = pose3d("run", "clip.mp4", "--out", "made/out.mp4", "-c", "fast.yaml", cwd=work)
    assert proc.returncode == 0, proc.stderr
    assert sorted(os.listdir(work / "made")) == ["out.mp4"]


def test_sigterm_stops_a_batch_with_143(work):
    (work / "in").mkdir()
    for i in range(3):
        (work / "in" / f"c{i}.mp4").write_bytes(WALK.read_bytes())
    proc = subprocess.Popen([sys.executable, "-m", "pipeline", "batch", "in", "--out", "out", "-c", "fast.yaml"],
                            cwd=work, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and not list((work / "out").rglob("*.tmp")) and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    assert "Traceback" not in err and "terminated" in err
    assert not list((work / "out").rglob("*.tmp")) and children_mentioning(str(work / "in")) == []


# 7. Exports keep every frame's time ----------------------------------------------------------------------------

def test_exports_carry_presentation_times_of_variable_rate_video(work):
    # 30 fps, then a 0.5 s pause after frame 40, then frames twice as far apart after frame 60.
    subprocess.run([ffmpeg_exe(), "-v", "error", "-i", "clip.mp4", "-vf",
                    r"setpts='(N/30+gt(N\,40)*0.5+gt(N\,60)*(N-60)/30)/TB'", "-fps_mode", "passthrough",
                    "-enc_time_base", "1:90000", "-c:v", "libx264", "-preset", "ultrafast", "vfr.mp4"],
                   cwd=work, check=True)
    proc = pose3d("run", "vfr.mp4", "--export", "o.json", "--export", "o.npz", "--export", "o.csv",
                  "-c", "fast.yaml", cwd=work)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads((work / "o.json").read_text())
    (track,) = doc["tracks"]
    n = np.array(track["frames"])
    want = n / 30 + (n > 40) * 0.5 + (n > 60) * (n - 60) / 30
    np.testing.assert_allclose(track["times"], want, atol=1e-3)
    with np.load(work / "o.npz") as npz:
        np.testing.assert_allclose(npz[f"track_{track['id']}_times"], want, atol=1e-3)
    rows = (work / "o.csv").read_text().splitlines()
    header, first = rows[0].split(","), rows[1].split(",")
    assert header[2] == "time" and float(first[2]) == pytest.approx(want[0], abs=1e-3)
    assert doc["video"]["skipped_frames"] == 0


def test_undecodable_frames_are_reported_and_times_keep_the_gap(work):
    subprocess.run([ffmpeg_exe(), "-v", "error", "-i", "clip.mp4", "-c:v", "mjpeg", "-q:v", "5", "-an", "mj.avi"],
                   cwd=work, check=True)
    data = bytearray((work / "mj.avi").read_bytes())
    starts = [i for i in range(len(data) - 1) if data[i] == 0xFF and data[i + 1] == 0xD8]   # JPEG frames
    for k in (30, 31, 32):
        data[starts[k] + 2: starts[k] + 400] = bytes(398)       # three frames lose their JPEG headers
    (work / "bad.avi").write_bytes(bytes(data))
    proc = pose3d("run", "bad.avi", "--export", "o.json", "-c", "fast.yaml", cwd=work)
    assert proc.returncode == 0, proc.stderr
    assert "3 of 86 frames could not be decoded" in proc.stderr
    doc = json.loads((work / "o.json").read_text())
    assert doc["video"]["skipped_frames"] == 3 and doc["video"]["decoded_frames"] == 83
    times = np.array(doc["tracks"][0]["times"])
    assert np.diff(times).max() == pytest.approx(4 / 30, abs=2e-3)   # the gap where the three frames were


# 8. Non-regular inputs are refused at once ---------------------------------------------------------------------

def test_fifo_input_is_refused_without_blocking(work):
    os.mkfifo(work / "pipe.mp4")
    proc = pose3d("run", "pipe.mp4", "--out", "o.mp4", cwd=work, timeout=60)
    assert_fails_cleanly(proc, 3, "FIFO")
    proc = pose3d("lift", "pipe.mp4", "--out", "o.npz", cwd=work, timeout=60)
    assert_fails_cleanly(proc, 3, "FIFO")
    assert children_mentioning(str(work)) == []


# 10. Smaller cases -----------------------------------------------------------------------------------------------

def test_a_still_image_says_why_nobody_was_tracked(work):
    subprocess.run([ffmpeg_exe(), "-v", "error", "-i", "clip.mp4", "-frames:v", "1", "still.png"], cwd=work, check=True)
    proc = pose3d("run", "still.png", "--export", "o.json", "-c", "fast.yaml", cwd=work)
    assert proc.returncode == 0, proc.stderr
    assert "0 people tracked" in proc.stderr and "min_length_s" in proc.stderr


def test_infinite_keypoints_are_missing_joints_without_warnings(work):
    with np.load(work / "track.npz") as data:
        arrays = dict(data)
    arrays["keypoints"] = arrays["keypoints"].copy()
    arrays["keypoints"][3, 2] = np.inf
    np.savez(work / "inf.npz", **arrays)
    proc = pose3d("lift", "inf.npz", "--out", "o.npz", cwd=work)
    assert proc.returncode == 0, proc.stderr
    assert "Warning" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    with np.load(work / "o.npz") as out:
        assert np.isfinite(out["poses3d"]).all()


# 11. The rendered-data commands check their settings and folders before any work --------------------------------

def test_rendered_data_commands_fail_cleanly_before_any_work(work):
    before = digests(work)
    done = pose3d("build-detections", "--out", "clip.mp4", "--clips", "1", "--data", "nowhere", cwd=work)
    assert_fails_cleanly(done, 3, "clip.mp4", "dataset folder")
    done = pose3d("build-detections", "--out", "ds", "--small-share", "2", cwd=work)
    assert_fails_cleanly(done, 2, "small_share")
    done = pose3d("build-detections", "--out", "new/ds", "--clips", "1", "--data", "nowhere", cwd=work)
    assert_fails_cleanly(done, 3, "nowhere")                    # the folder it made for the dataset goes again
    cmu = ROOT.parent / "shared" / "data" / "mocap" / "cmu"
    if (cmu / "MANIFEST.tsv").exists():
        done = pose3d("build-detections", "--out", "ds", "--subjects", "999", "--data", cmu, cwd=work)
        assert_fails_cleanly(done, 2, "no motions of subjects 999")
    done = pose3d("evaluate-tracking", "--people", "0", "--data", "nowhere", cwd=work)
    assert_fails_cleanly(done, 2, "people=0")
    done = pose3d("synth", "nowhere.bvh", "--people", "2", "--out", "g.mp4", cwd=work)
    assert_fails_cleanly(done, 3, "nowhere.bvh")
    assert digests(work) == before                              # inputs untouched, nothing written
    assert not (work / "new").exists() and not (work / "ds").exists()


# 11. Skeleton exports and weight averaging refuse what they cannot do, before any work ---------------------------

def test_a_bvh_export_without_the_skeleton_fit_is_refused_up_front(work):
    before = digests(work)
    proc = pose3d("run", "clip.mp4", "--no-fit", "--export", "out/clip.bvh", "-c", "fast.yaml", cwd=work)
    assert_fails_cleanly(proc, 2, "needs the fitted skeleton")
    assert digests(work) == before and not (work / "out").exists()
    (work / "in").mkdir()
    (work / "in" / "a.mp4").write_bytes(WALK.read_bytes())
    before = digests(work)
    proc = pose3d("batch", "in", "--out", "res", "--export", "bvh", "--no-fit", "-c", "fast.yaml", cwd=work)
    assert_fails_cleanly(proc, 2, "needs the fitted skeleton")
    assert digests(work) == before and not (work / "res").exists()


def test_interpolate_refuses_a_bad_share_and_different_lifters(work):
    small = work / "small.pt"
    save_checkpoint(small, TemporalModel(LifterConfig(filter_widths=(3, 3), channels=16)), train_fps=50.0)
    shipped = ROOT / "weights" / "lifter.pt"
    before = digests(work)
    proc = pose3d("interpolate", shipped, shipped, "--alpha", "1.5", "--out", "mix.pt", cwd=work)
    assert_fails_cleanly(proc, 2, "--alpha")
    proc = pose3d("interpolate", shipped, small, "--alpha", "0.5", "--out", "mix.pt", cwd=work)
    assert_fails_cleanly(proc, 4, "different lifters")
    assert digests(work) == before
