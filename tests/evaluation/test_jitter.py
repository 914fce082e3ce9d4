"""Tests for pipeline/evaluation/jitter.py: the jitter and bone-length figures, the 2D cache, and a real clip."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest

from pipeline.evaluation.jitter import (
    accelerations,
    bone_variation,
    compare_clip,
    jitter_stats,
    load_tracks,
    save_tracks,
    two_d_tracks,
)
from pipeline.io.ffmpeg import ffmpeg_exe
from pipeline.lifting.lifter import Lifter
from pipeline.lifting.model import LifterConfig, TemporalModel
from pipeline.run import RunConfig
from pipeline.twod.stage import TwoDConfig
from pipeline.types import Track
from tests.support.synth import SHARED, STANDING, rigid_motion
from tests.support.tracks2d import BASE, make_track

KIDS = SHARED / "data" / "videos" / "two_kids_jumping_sam2.mp4"


def test_accelerations_of_a_parabola_and_across_jumps():
    t = np.arange(10.0)
    values = np.stack([0.5 * 3.0 * t**2, np.zeros(10)], -1)[:, None]     # x = 1.5 t^2: 2nd difference 3
    np.testing.assert_allclose(accelerations(values, np.arange(10)), 3.0)
    frames = np.r_[np.arange(5), np.arange(20, 25)]
    jumpy = np.concatenate([np.zeros((5, 1, 2)), np.full((5, 1, 2), 100.0)])
    out = accelerations(jumpy, frames)
    assert out.shape == (6, 1) and not out.any()                         # nothing measured across the jump


def test_bone_variation_is_zero_for_a_rigid_skeleton_and_scales():
    rigid = rigid_motion(50)
    assert bone_variation(rigid) < 1e-9
    grow = rigid * np.where(np.arange(50) % 2 == 0, 1.0, 1.1)[:, None, None]   # every bone 1.0x / 1.1x
    assert bone_variation(grow) == pytest.approx(0.05 / 1.05, rel=1e-6)


def test_jitter_stats_units():
    t = np.arange(30.0)
    kp = BASE + np.stack([2.0 * t**2 / 2, np.zeros(30)], -1)[:, None]        # 2 px/frame^2 everywhere
    poses = np.broadcast_to(STANDING, (30, 17, 3)) + np.stack([np.zeros(30), 0.001 * t**2 / 2, np.zeros(30)],
                                                                -1)[:, None]  # 1 mm/frame^2
    track = Track(1, np.arange(30), kp.astype(np.float32), np.ones((30, 17), np.float32), np.zeros(30, bool),
                  poses.astype(np.float32))
    stats = jitter_stats([track])
    height = 670 - 190                                                        # BASE's extent (y)
    assert stats.jitter_2d_px == pytest.approx(2.0, rel=1e-4)
    assert stats.jitter_2d == pytest.approx(100 * 2.0 / height, rel=1e-3)
    assert stats.jitter_3d == pytest.approx(1.0, rel=1e-3) and stats.bone_cv < 1e-3
    assert stats.tracks == 1 and stats.frames == 30


def test_cache_round_trip(tmp_path):
    tracks = [make_track(np.broadcast_to(BASE, (5, 17, 2)), frames=[0, 1, 2, 7, 8])]
    save_tracks(tmp_path / "c.npz", tracks, "mediapipe")
    back, backend = load_tracks(tmp_path / "c.npz")
    assert backend == "mediapipe" and back[0].track_id == tracks[0].track_id
    for name in ("frames", "keypoints", "scores", "interpolated"):
        np.testing.assert_array_equal(getattr(back[0], name), getattr(tracks[0], name))


@pytest.mark.skipif(not KIDS.exists(), reason="../shared/data/videos not present")
def test_real_clip_off_and_on_share_one_cached_2d_pass(tmp_path):
    clip = tmp_path / "kids.mp4"
    subprocess.run([ffmpeg_exe(), "-loglevel", "error", "-i", str(KIDS), "-t", "1.2", "-c:v", "libx264",
                    str(clip)], check=True)
    lifter = Lifter(TemporalModel(LifterConfig(filter_widths=(3, 3), channels=16)).eval(), 50.0)
    config = RunConfig(twod=TwoDConfig(backend="mediapipe"))
    row = compare_clip(clip, config, lifter, tmp_path / "cache")
    cached = list((tmp_path / "cache").glob("*.npz"))
    assert len(cached) == 1 and row.backend == "mediapipe" and row.off.tracks == row.on.tracks >= 1
    assert row.on.jitter_2d_px < row.off.jitter_2d_px
    info, tracks, _ = two_d_tracks(clip, config, lifter, tmp_path / "cache")   # from the cache now
    assert cached[0].stat().st_mtime_ns == list((tmp_path / "cache").glob("*.npz"))[0].stat().st_mtime_ns
    assert len(tracks) == row.off.tracks and all(t.poses3d is None for t in tracks)
