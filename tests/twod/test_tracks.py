"""Tests for pipeline/twod/tracks.py: gap filling, splitting, dropping, ids."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from pipeline.config import from_dict
from pipeline.errors import ConfigError, ShapeError
from pipeline.twod.tracks import TrackBuilder, TrackConfig, build_tracks, every_joint_seen
from pipeline.types import Detections, Track

FPS = 30.0


def pose(value: float) -> np.ndarray:
    """(17, 2) keypoints all at ``value`` (x) and ``value + 1000`` (y), so interpolation is easy to check."""
    kp = np.zeros((17, 2), np.float32)
    kp[:, 0], kp[:, 1] = value, value + 1000
    return kp


def sightings(people: dict[int, dict[int, float]], num_frames: int, score: float = 0.8):
    """Per-frame tuples for build_tracks from {track_id: {frame: keypoint value}}; frames nobody is in are empty."""
    for f in range(num_frames):
        here = [(tid, seen[f]) for tid, seen in people.items() if f in seen]
        if not here:
            yield f, Detections.empty(), np.zeros((0, 17, 2), np.float32), np.zeros((0, 17), np.float32)
            continue
        boxes = np.array([[v, v, v + 50, v + 100] for _, v in here], np.float32)
        det = Detections(boxes, np.full(len(here), 0.9, np.float32), np.array([t for t, _ in here], np.int64))
        yield f, det, np.stack([pose(v) for _, v in here]), np.full((len(here), 17), score, np.float32)


def test_short_gap_is_interpolated_and_flagged():
    seen = {f: float(10 * f) for f in range(40) if not 10 <= f < 15}   # 5 missing frames < 0.5 s
    (track,) = build_tracks(sightings({4: seen}, 40), 40, FPS)
    assert isinstance(track, Track) and track.track_id == 4
    np.testing.assert_array_equal(track.frames, np.arange(40))
    assert track.interpolated.tolist() == [10 <= f < 15 for f in range(40)]
    np.testing.assert_allclose(track.keypoints[:, 0, 0], 10.0 * np.arange(40))   # linear across the gap
    np.testing.assert_allclose(track.keypoints[:, 3, 1], 10.0 * np.arange(40) + 1000)
    np.testing.assert_allclose(track.scores[10:15], 0.8 * 0.5)                    # interpolated x factor
    np.testing.assert_allclose(track.scores[~track.interpolated], 0.8)
    assert np.isfinite(track.keypoints).all()


def test_interpolated_score_factor_is_configurable():
    seen = {f: 1.0 for f in range(30) if f != 12}
    (track,) = build_tracks(sightings({1: seen}, 30), 30, FPS, TrackConfig(interpolated_score=0.0))
    assert track.scores[12].max() == 0 and track.interpolated[12]


def test_gap_of_exactly_max_gap_is_filled_and_one_more_splits():
    for missing, pieces in ((15, 1), (16, 2)):                       # 0.5 s at 30 fps = 15 frames
        seen = {f: 1.0 for f in range(60) if not 20 <= f < 20 + missing}
        assert len(build_tracks(sightings({1: seen}, 60), 60, FPS)) == pieces


def test_long_gap_splits_into_a_new_id():
    seen = {f: float(f) for f in range(100) if not 30 <= f < 60}    # 1 s away
    other = {f: 500.0 for f in range(100)}
    tracks = build_tracks(sightings({3: seen, 7: other}, 100), 100, FPS)
    assert [t.track_id for t in tracks] == [3, 7, 8]                # next free id above every tracker id
    first, _, second = tracks
    np.testing.assert_array_equal(first.frames, np.arange(30))
    np.testing.assert_array_equal(second.frames, np.arange(60, 100))
    assert not first.interpolated.any() and not second.interpolated.any()
    np.testing.assert_allclose(second.keypoints[0, 0, 0], 60.0)


def test_split_ids_are_numbered_by_start_frame():
    a = {f: 1.0 for f in list(range(0, 20)) + list(range(80, 100))}
    b = {f: 2.0 for f in list(range(10, 30)) + list(range(60, 100))}
    tracks = build_tracks(sightings({1: a, 2: b}, 100), 100, FPS)
    starts = {t.track_id: int(t.frames[0]) for t in tracks}
    assert starts == {1: 0, 2: 10, 3: 60, 4: 80}


def test_short_tracks_are_dropped():
    people = {1: {f: 1.0 for f in range(50)}, 2: {f: 2.0 for f in range(20, 34)},   # 14 frames < 0.5 s
              3: {f: 3.0 for f in range(20, 35)}}                                  # 15 frames = 0.5 s
    tracks = build_tracks(sightings(people, 50), 50, FPS)
    assert [t.track_id for t in tracks] == [1, 3]
    assert build_tracks(sightings(people, 50), 50, FPS, TrackConfig(min_length_s=0.0))[1].track_id == 2


def test_short_piece_after_a_split_is_dropped_and_first_kept_piece_keeps_the_id():
    seen = {f: 1.0 for f in list(range(0, 5)) + list(range(40, 80))}   # 5-frame blip, 1 s gap, long piece
    (track,) = build_tracks(sightings({9: seen}, 80), 80, FPS)
    assert track.track_id == 9 and track.frames[0] == 40


def test_empty_frames_leave_gaps_never_zeros():
    seen = {f: 100.0 + f for f in range(90) if not 20 <= f < 70}    # nobody at all for 50 frames
    tracks = build_tracks(sightings({1: seen}, 90), 90, FPS)
    covered = np.concatenate([t.frames for t in tracks])
    assert not np.isin(np.arange(20, 70), covered).any()
    for t in tracks:
        assert (t.keypoints > 0).all() and (t.scores > 0).all()


def test_untracked_people_are_ignored_and_ids_kept():
    builder = TrackBuilder()
    for f in range(20):
        det = Detections(np.array([[0, 0, 10, 10], [50, 50, 60, 60], [90, 90, 99, 99]], np.float32),
                         np.array([0.9, 0.9, 0.9], np.float32), np.array([42, -1, 5], np.int64))
        kp = np.stack([pose(1), pose(2), pose(3)])
        builder.add(f, det, kp, np.ones((3, 17), np.float32))
    tracks = builder.build(20, FPS)
    assert [t.track_id for t in tracks] == [5, 42]
    assert tracks[0].keypoints[0, 0, 0] == 3 and tracks[1].keypoints[0, 0, 0] == 1


def test_duplicate_id_in_a_frame_keeps_the_more_confident():
    builder = TrackBuilder(TrackConfig(min_length_s=0))
    det = Detections(np.zeros((2, 4), np.float32), np.array([0.3, 0.8], np.float32), np.array([1, 1], np.int64))
    builder.add(0, det, np.stack([pose(1), pose(2)]), np.ones((2, 17), np.float32))
    (track,) = builder.build(1, FPS)
    assert track.keypoints[0, 0, 0] == 2


def test_fps_sets_the_frame_limits():
    seen = {f: 1.0 for f in range(40) if not 10 <= f < 20}           # 10 missing frames
    assert len(build_tracks(sightings({1: seen}, 40), 40, 30.0)) == 1  # 0.33 s at 30 fps: filled
    assert len(build_tracks(sightings({1: seen}, 40), 40, 10.0, TrackConfig(min_length_s=0.5))) == 2  # 1 s


def test_bad_inputs_raise():
    builder = TrackBuilder()
    det = Detections(np.zeros((1, 4), np.float32), np.ones(1, np.float32), np.array([1], np.int64))
    with pytest.raises(ShapeError):
        builder.add(0, det, np.zeros((1, 16, 2), np.float32), np.zeros((1, 17), np.float32))
    builder.add(5, det, np.zeros((1, 17, 2), np.float32), np.zeros((1, 17), np.float32))
    with pytest.raises(ShapeError, match="outside"):
        builder.build(5, FPS)
    with pytest.raises(ShapeError):
        builder.build(10, 0.0)
    with pytest.raises(ConfigError):
        TrackConfig(interpolated_score=1.5)
    assert from_dict(TrackConfig, {"max_gap_s": 1, "min_length_s": 0.2}).max_gap_s == 1.0


def test_no_sightings_no_tracks():
    assert build_tracks(sightings({}, 10), 10, FPS) == []


def test_every_joint_seen_per_run():
    kp = np.zeros((4, 17, 2), np.float32)
    track = Track(1, np.array([0, 1, 5, 6]), kp, np.ones((4, 17), np.float32), np.zeros(4, bool))
    assert every_joint_seen(track)
    kp = kp.copy()
    kp[2:, 3] = np.nan                       # the second run (frames 5, 6) never sees joint 3
    assert not every_joint_seen(replace(track, keypoints=kp))
    kp[2, 3] = 1.0
    assert every_joint_seen(replace(track, keypoints=kp))
