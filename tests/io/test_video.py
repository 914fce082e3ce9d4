"""Tests of stage 1 video I/O on tiny clips made here with the ffmpeg binary (lavfi testsrc/sine), plus
the shared sample clips when they are present."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

from pipeline.errors import InputError, Pose3DError, ShapeError
from pipeline.io.ffmpeg import capabilities, ffmpeg_exe, probe
from pipeline.io.video import VideoReader, VideoWriter, read_frames
from tests.support.synth import SHARED

CLIPS = SHARED / "data" / "videos"
W, H, FPS = 160, 120, 30


def ffmpeg(*args: str) -> str:
    """Run the ffmpeg the module uses; returns its stderr (fails the test on a non-zero exit)."""
    run = subprocess.run([ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y", *args],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    return run.stderr


def header(path: Path) -> str:
    """``ffmpeg -i`` stderr: the stream descriptions."""
    return subprocess.run([ffmpeg_exe(), "-hide_banner", "-i", str(path)], capture_output=True, text=True).stderr


def container_duration(path: Path) -> float:
    h, m, s = re.search(r"Duration: (\d+):(\d+):([\d.]+)", header(path)).groups()
    return int(h) * 3600 + int(m) * 60 + float(s)


def top_level_atoms(path: Path) -> list[str]:
    """Types of the top-level MP4 boxes in file order."""
    data, pos, out = path.read_bytes(), 0, []
    while pos + 8 <= len(data):
        size, kind = int.from_bytes(data[pos:pos + 4], "big"), data[pos + 4:pos + 8].decode("latin-1")
        if size == 1:
            size = int.from_bytes(data[pos + 8:pos + 16], "big")
        out.append(kind)
        if size < 8:
            break
        pos += size
    return out


def alive(pid: int) -> bool:
    """True while the process exists, zombies included (a reaped child has no /proc entry)."""
    return Path(f"/proc/{pid}").exists()


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    """Tiny clips: CFR with 3 s of audio under 2 s of video, VFR (1 s at 30 fps then 1 s at 10 fps), rotated."""
    d = tmp_path_factory.mktemp("clips")
    cfr, vfr, rot = d / "cfr.mp4", d / "vfr.mp4", d / "rot.mp4"
    ffmpeg("-f", "lavfi", "-i", f"testsrc=size={W}x{H}:rate={FPS}:duration=2", "-f", "lavfi",
           "-i", "sine=frequency=440:duration=3", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", str(cfr))
    ffmpeg("-filter_complex", f"testsrc=size={W}x{H}:rate=30:duration=1[a];testsrc=size={W}x{H}:rate=10:duration=1[b];"
           "[a][b]concat=n=2:v=1:a=0", "-c:v", "libx264", "-pix_fmt", "yuv420p", capabilities(ffmpeg_exe())[0], "passthrough",
           str(vfr))
    try:    # ffmpeg >= 6: display matrix set on input, counter-clockwise degrees
        ffmpeg("-display_rotation:v:0", "90", "-i", str(cfr), "-c", "copy", str(rot))
    except AssertionError:   # older ffmpeg: the clockwise "rotate" tag
        ffmpeg("-i", str(cfr), "-c", "copy", "-metadata:s:v:0", "rotate=270", str(rot))
    return {"cfr": cfr, "vfr": vfr, "rot": rot, "dir": d}


# ---------------------------------------------------------------- probing and decoding

def test_probe_cfr(clips):
    info = probe(clips["cfr"])
    assert (info.width, info.height, info.num_frames, info.rotation, info.codec) == (W, H, 60, 0, "h264")
    assert info.fps == pytest.approx(30.0) and info.duration == pytest.approx(2.0)
    assert info.has_audio and info.path == clips["cfr"]


def test_decode_cfr_count_and_times(clips):
    frames = list(read_frames(clips["cfr"]))
    assert len(frames) == 60
    assert [f.index for f in frames] == list(range(60))
    assert np.allclose([f.time for f in frames], np.arange(60) / 30, atol=1e-3)
    assert all(f.image.shape == (H, W, 3) and f.image.dtype == np.uint8 for f in frames)
    assert frames[0].image.flags.writeable and frames[0].image.std() > 10     # real pixels, not a blank frame


def test_vfr_probe_and_timestamps(clips):
    info = probe(clips["vfr"])
    assert info.num_frames == 40 and info.duration == pytest.approx(2.0) and info.fps == pytest.approx(20.0)
    times = [f.time for f in read_frames(clips["vfr"])]
    expected = np.concatenate([np.arange(30) / 30, 1 + np.arange(10) / 10])
    assert len(times) == 40 and np.allclose(times, expected, atol=1e-3)


def test_rotation_metadata_gives_display_orientation(clips):
    info = probe(clips["rot"])
    assert (info.width, info.height, info.rotation) == (H, W, 270)
    with VideoReader(clips["rot"]) as reader:
        rotated = next(iter(reader)).image.astype(float)
    original = next(iter(read_frames(clips["cfr"]))).image.astype(float)
    assert rotated.shape == (W, H, 3)
    errors = {k: np.abs(np.rot90(original, k) - rotated).mean() for k in (1, 3)}
    assert errors[1] < 3 < errors[3]        # 90 degrees counter-clockwise, as the display matrix says


def test_max_size_downscales_long_side(clips):
    with VideoReader(clips["cfr"], max_size=80) as reader:
        frame = next(iter(reader))
        assert (reader.width, reader.height, reader.scale) == (80, 60, 0.5)
        assert (reader.info.width, reader.info.height) == (W, H)
    assert frame.image.shape == (60, 80, 3)
    with VideoReader(clips["cfr"], max_size=1000) as reader:
        assert (reader.width, reader.height, reader.scale) == (W, H, 1.0)


@pytest.mark.parametrize("ext,codec", [("mkv", "libx264"), ("webm", "libvpx-vp9"), ("avi", "mpeg4"),
                                       ("avi", "msmpeg4v3"), ("mov", "libx265")])
def test_other_containers_and_codecs(tmp_path, ext, codec):
    path = tmp_path / f"clip.{ext}"
    extra = ["-x265-params", "log-level=error"] if codec == "libx265" else []
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=64x48:rate=10:duration=1", "-c:v", codec, *extra,
           "-pix_fmt", "yuv420p", str(path))
    info = probe(path)
    frames = list(read_frames(path))
    assert (info.width, info.height, info.num_frames, len(frames)) == (64, 48, 10, 10)
    assert np.allclose([f.time for f in frames], np.arange(10) / 10, atol=2e-3)


def test_early_break_kills_ffmpeg(clips):
    with VideoReader(clips["cfr"]) as reader:
        for frame in reader:
            pid = reader._proc.pid
            if frame.index == 2:
                break
        assert not alive(pid) and reader._proc is None
    gen = read_frames(clips["cfr"])
    next(gen)
    gen.close()
    it = iter(reader)                       # a reader can be iterated again, and closed mid-way
    next(it)
    pid = reader._proc.pid
    reader.close()
    assert not alive(pid)
    assert list(it) == []                   # the closed decode just ends


def test_iterating_twice_restarts(clips):
    reader = VideoReader(clips["vfr"])
    assert len(list(reader)) == len(list(reader)) == 40
    assert reader._proc is None


# ---------------------------------------------------------------- errors

def test_input_errors(tmp_path, clips):
    text, empty, audio = tmp_path / "notes.mp4", tmp_path / "empty.mp4", tmp_path / "tone.m4a"
    text.write_text("this is not a video\n" * 20)
    empty.touch()
    ffmpeg("-f", "lavfi", "-i", "sine=duration=1", "-c:a", "aac", str(audio))
    data = clips["cfr"].read_bytes()
    cut = tmp_path / "cut.mp4"                 # moov atom (at the end) lost
    cut.write_bytes(data[:len(data) // 2])
    fast = tmp_path / "fast.mp4"
    ffmpeg("-i", str(clips["cfr"]), "-c", "copy", "-movflags", "+faststart", str(fast))
    cut_fast = tmp_path / "cut_fast.mp4"       # index intact, half the frame data gone
    cut_fast.write_bytes(fast.read_bytes()[:len(data) // 2])
    cases = {tmp_path / "missing.mp4": "no such file", empty: "empty", text: "not a readable video",
             cut: "not a readable video", cut_fast: "truncated", tmp_path: "folder", audio: "no video stream"}
    for path, words in cases.items():
        with pytest.raises(InputError, match=re.escape(str(path)) + ".*" + words):
            probe(path)
        with pytest.raises(InputError):
            VideoReader(path)
        assert "\n" not in str(pytest.raises(InputError, probe, path).value)


# ---------------------------------------------------------------- writing

def copy_video(src: Path, dst: Path, **kwargs) -> None:
    info = probe(src)
    with VideoWriter(dst, width=info.width, height=info.height, fps=info.fps, **kwargs) as writer:
        for frame in read_frames(src):
            writer.write(frame.image, frame.time)


def test_writer_h264_faststart_and_audio(clips, tmp_path):
    out = tmp_path / "out.mp4"
    copy_video(clips["cfr"], out, audio_from=clips["cfr"])
    info = probe(out)
    assert (info.width, info.height, info.num_frames, info.codec) == (W, H, 60, "h264")
    assert info.fps == pytest.approx(30.0) and info.duration == pytest.approx(2.0, abs=1 / 30)
    assert info.has_audio
    assert container_duration(out) == pytest.approx(2.0, abs=0.05)    # the 3 s of audio were cut to the video
    assert re.search(r"Video: h264.*yuv420p", header(out))
    atoms = top_level_atoms(out)
    assert atoms.index("moov") < atoms.index("mdat")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mp4"]   # no temp files left
    src, dec = next(iter(read_frames(clips["cfr"]))).image, next(iter(read_frames(out))).image
    assert np.abs(src.astype(float) - dec).mean() < 4


def test_writer_without_audio_source_has_no_audio(clips, tmp_path):
    out = tmp_path / "silent.mp4"
    copy_video(clips["vfr"], out, audio_from=clips["vfr"])     # a source without audio is fine
    assert not probe(out).has_audio
    atoms = top_level_atoms(out)
    assert atoms.index("moov") < atoms.index("mdat")


def test_writer_keeps_vfr_timing(clips, tmp_path):
    out = tmp_path / "vfr_out.mp4"
    copy_video(clips["vfr"], out)
    src, dst = [f.time for f in read_frames(clips["vfr"])], [f.time for f in read_frames(out)]
    assert len(dst) == len(src) == 40 and np.allclose(dst, src, atol=1e-3)
    assert probe(out).duration == pytest.approx(probe(clips["vfr"]).duration, abs=0.1)


def test_writer_irregular_times_and_default_times(tmp_path):
    rng = np.random.default_rng(0)
    times = np.concatenate([[0.0], np.cumsum(rng.uniform(0.02, 0.08, 24))])
    out, cfr = tmp_path / "irregular.mp4", tmp_path / "cfr.mp4"
    with VideoWriter(out, width=64, height=48, fps=25) as writer, \
            VideoWriter(cfr, width=64, height=48, fps=25) as plain:
        for i, t in enumerate(times):
            image = np.full((48, 64, 3), i * 10, np.uint8)
            writer.write(image, float(t))
            plain.write(image)
    assert np.allclose([f.time for f in read_frames(out)], times, atol=1e-3)
    assert np.allclose([f.time for f in read_frames(cfr)], np.arange(25) / 25, atol=1e-3)
    assert probe(cfr).duration == pytest.approx(1.0, abs=1e-3)


def test_writer_pads_odd_sizes(tmp_path):
    out = tmp_path / "odd.mp4"
    image = np.zeros((47, 65, 3), np.uint8)
    image[:, :, 2] = 200
    with VideoWriter(out, width=65, height=47, fps=10) as writer:
        for _ in range(5):
            writer.write(image)
    frames = list(read_frames(out))
    assert len(frames) == 5 and frames[0].image.shape == (48, 66, 3)
    assert np.abs(frames[0].image[:46, :64].astype(float) - image[:46, :64]).mean() < 4
    with VideoWriter(tmp_path / "even.mp4", width=64, height=48, fps=10) as writer:
        writer.write(np.zeros((48, 64, 3), np.uint8))
    assert (probe(tmp_path / "even.mp4").width, probe(tmp_path / "even.mp4").height) == (64, 48)


def test_writer_failure_leaves_nothing(tmp_path):
    out = tmp_path / "fail.mp4"
    with pytest.raises(RuntimeError):
        with VideoWriter(out, width=64, height=48, fps=10) as writer:
            writer.write(np.zeros((48, 64, 3), np.uint8))
            pid = writer._proc.pid
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == [] and not alive(pid)
    with pytest.raises(ShapeError):
        with VideoWriter(out, width=64, height=48, fps=10) as writer:
            writer.write(np.zeros((48, 64), np.uint8))
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(InputError, match="no frames"):
        with VideoWriter(out, width=64, height=48, fps=10):
            pass
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(InputError, match="encoding failed.*preset"):    # ffmpeg itself fails
        with VideoWriter(out, width=64, height=48, fps=10, preset="no-such-preset") as writer:
            for _ in range(30):
                writer.write(np.zeros((48, 64, 3), np.uint8))
    assert list(tmp_path.iterdir()) == []


def test_writer_unwritable_destination(tmp_path):
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    for path in (tmp_path / "missing" / "out.mp4", blocker / "out.mp4"):
        with pytest.raises(InputError, match=re.escape(str(path))):
            VideoWriter(path, width=64, height=48, fps=10)
    with pytest.raises(InputError, match="no such file"):
        VideoWriter(tmp_path / "o.mp4", width=64, height=48, fps=10, audio_from=tmp_path / "nope.mp4")
    if os.geteuid() != 0:                       # root writes through permission bits
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        with pytest.raises(InputError, match="writable"):
            VideoWriter(locked / "out.mp4", width=64, height=48, fps=10)
    assert sorted(p.name for p in tmp_path.iterdir()) in (["file.txt"], ["file.txt", "locked"])


def test_pose3d_error_family():
    assert issubclass(InputError, Pose3DError)


# ---------------------------------------------------------------- shared sample clips

def manifest() -> dict[str, dict[str, str]]:
    path = CLIPS / "MANIFEST.tsv"
    if not path.exists():
        return {}
    rows = [line.split("\t") for line in path.read_text().splitlines() if line.strip()]
    return {r[0]: dict(zip(rows[0], r)) for r in rows[1:]}


SHARED_CLIPS = ["running_track_phalp.mp4", "dance_aerobics_romp.mp4", "two_kids_jumping_sam2.mp4",
                "pedestrians_vtest_opencv.avi"]


def shared_clip(name: str) -> Path:
    path = CLIPS / name
    if not path.exists():
        pytest.skip(f"shared clip {path} not present (set POSE3D_SHARED to the shared folder)")
    return path


@pytest.mark.parametrize("name", SHARED_CLIPS)
def test_shared_clip_first_frames(name):
    path = shared_clip(name)
    info, row = probe(path), manifest().get(name)
    if row:
        assert (info.width, info.height) == (int(row["width"]), int(row["height"]))
        assert info.num_frames == int(row["frames_decoded"])
    frames = []
    with VideoReader(path) as reader:
        for frame in reader:
            frames.append(frame)
            if len(frames) == 10:
                break
    assert [f.image.shape for f in frames] == [(info.height, info.width, 3)] * 10
    assert np.allclose(np.diff([f.time for f in frames]), 1 / info.fps, atol=2e-3)


@pytest.mark.slow
def test_shared_clip_full_decode_matches_probe():
    path = shared_clip("two_kids_jumping_sam2.mp4")
    info = probe(path)
    count = sum(1 for _ in read_frames(path))
    assert count == info.num_frames == 200
