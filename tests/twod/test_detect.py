"""Tests for pipeline/twod/detect.py: the ByteTrack / BoT-SORT wrapper on synthetic box sequences, offline import."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pipeline.config import from_dict
from pipeline.errors import ConfigError
from pipeline.twod.detect import PersonTracker, TrackerConfig, box_iou
from pipeline.types import Detections

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Any attempt to open a connection or resolve a name fails the test."""
    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


def box(cx: float, cy: float, w: float = 80, h: float = 200) -> list[float]:
    return [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]


def dets(boxes, scores=None) -> Detections:
    b = np.array(boxes, np.float32).reshape(-1, 4)
    s = np.full(len(b), 0.9, np.float32) if scores is None else np.array(scores, np.float32)
    return Detections(b, s, np.full(len(b), -1, np.int64))


def run(tracker: PersonTracker, frames) -> list[Detections]:
    return [tracker.update(d) for d in frames]


def test_single_person_keeps_one_id_and_boxes_come_back_unchanged():
    tracker = PersonTracker(TrackerConfig(), fps=30)
    frames = [dets([box(100 + 5 * f, 300)], [0.8]) for f in range(20)]
    out = run(tracker, frames)
    assert {int(o.track_ids[0]) for o in out} == {1}
    for d, o in zip(frames, out):
        np.testing.assert_array_equal(o.boxes, d.boxes)  # the detector's boxes, not Kalman-smoothed ones
        np.testing.assert_array_equal(o.scores, d.scores)


def test_ids_follow_their_boxes_whatever_the_detection_order():
    tracker = PersonTracker(TrackerConfig(), fps=30)
    rng = np.random.default_rng(0)
    seen: dict[str, set] = {"left": set(), "right": set()}
    for f in range(30):
        people = {"left": box(100 + 2 * f, 300), "right": box(600 - 2 * f, 320, h=180)}
        order = list(rng.permutation(["left", "right"]))
        out = tracker.update(dets([people[k] for k in order]))
        for k, track_id, b in zip(order, out.track_ids, out.boxes):
            np.testing.assert_array_equal(b, np.float32(people[k]))
            seen[k].add(int(track_id))
    assert len(seen["left"]) == len(seen["right"]) == 1 and seen["left"] != seen["right"]


@pytest.mark.parametrize("tracker_type", ["bytetrack", "botsort"])
def test_two_people_crossing(tracker_type):
    """ByteTrack is motion-only: identical boxes that pass through each other may swap at the crossing
    frames (measured: 2 transient switches per person, 4 in all), but the Kalman velocities restore the ids."""
    tracker = PersonTracker(TrackerConfig(tracker=tracker_type, gmc_method="none"), fps=30)
    ids = np.array([o.track_ids for o in run(tracker, [dets([box(100 + 10 * f, 300), box(700 - 10 * f, 300)])
                                                           for f in range(60)])])
    assert ids[0].tolist() == ids[-1].tolist() == [1, 2]
    switches = int((np.diff(ids[1:], axis=0) != 0).sum())
    assert switches <= 4
    changed = np.flatnonzero((np.diff(ids[1:], axis=0) != 0).any(axis=1)) + 2
    assert all(abs(f - 30) <= 3 for f in changed)  # only where the boxes coincide


def test_two_people_crossing_at_different_depths_never_switch():
    tracker = PersonTracker(TrackerConfig(), fps=30)
    ids = np.array([o.track_ids for o in run(tracker, [dets([box(100 + 10 * f, 300), box(700 - 10 * f, 330, h=150)])
                                                           for f in range(60)])])
    assert (ids[1:] == [1, 2]).all()


def test_short_occlusion_keeps_the_id():
    tracker = PersonTracker(TrackerConfig(), fps=30)
    frames = [dets([box(100 + 5 * f, 300)]) if not 15 <= f < 20 else Detections.empty() for f in range(40)]
    out = run(tracker, frames)
    assert all(len(out[f]) == 0 for f in range(15, 20))
    assert {int(out[f].track_ids[0]) for f in range(40) if not 15 <= f < 20} == {1}


def test_exit_and_reentry_after_two_seconds_gets_a_new_id():
    """ByteTrack drops a lost track after track_buffer (1 s at 30 fps) and has no appearance model: a
    person back after 2 s is a new identity (measured the same with a 4 s buffer: the Kalman prediction
    has drifted away). Re-identification across long gaps is not this stage's job."""
    tracker = PersonTracker(TrackerConfig(), fps=30)
    frames = ([dets([box(400 + 5 * f, 300)]) for f in range(40)] + [Detections.empty()] * 60
              + [dets([box(600 - 5 * f, 300)]) for f in range(30)])
    out = run(tracker, frames)
    assert out[39].track_ids.tolist() == [1]
    assert out[100].track_ids.tolist() == [-1]        # a new track is confirmed on its second frame
    assert {int(o.track_ids[0]) for o in out[101:]} == {2}


def test_new_person_mid_clip_is_unconfirmed_for_one_frame():
    tracker = PersonTracker(TrackerConfig(), fps=30)
    run(tracker, [dets([box(100, 300)])] * 5)
    first = tracker.update(dets([box(100, 300), box(500, 300)]))
    second = tracker.update(dets([box(100, 300), box(500, 300)]))
    assert first.track_ids.tolist() == [1, -1] and second.track_ids.tolist() == [1, 2]


def test_low_score_boxes_only_extend_tracks():
    tracker = PersonTracker(TrackerConfig(), fps=30)
    out = run(tracker, [dets([box(100 + 3 * f, 300)], [0.9 if f < 5 else 0.15]) for f in range(10)])
    assert [int(o.track_ids[0]) for o in out] == [1] * 10
    lonely = PersonTracker(TrackerConfig(), fps=30)
    assert all((o.track_ids == -1).all() for o in run(lonely, [dets([box(100, 300)], [0.15])] * 5))


def test_track_buffer_scales_with_fps():
    assert PersonTracker(TrackerConfig(track_buffer=30), fps=60)._tracker.max_frames_lost == 60
    assert PersonTracker(TrackerConfig(track_buffer=30), fps=15)._tracker.max_frames_lost == 15


def test_empty_frames_and_botsort_with_images():
    tracker = PersonTracker(TrackerConfig(tracker="botsort"), fps=30)
    image = np.zeros((480, 640, 3), np.uint8)
    assert len(tracker.update(Detections.empty(), image)) == 0
    out = [tracker.update(dets([box(100 + 4 * f, 240)]), image) for f in range(5)]
    assert out[-1].track_ids.tolist() == [1]


def test_iou_fallback_maps_smoothed_boxes_back():
    boxes = np.array([box(100, 300), box(400, 300)], np.float32)
    out = np.array([[*box(402, 301), 7, 0.9, 0], [*box(99, 299), 3, 0.9, 0]], np.float32)  # no index column
    assert PersonTracker._detection_index(out, boxes).tolist() == [1, 0]
    far = np.array([[*box(900, 900), 7, 0.9, 0]], np.float32)
    assert PersonTracker._detection_index(far, boxes).tolist() == [-1]
    np.testing.assert_allclose(box_iou(boxes, boxes), np.eye(2), atol=1e-6)


def test_tracker_config_validation_and_yaml_loading():
    with pytest.raises(ConfigError):
        TrackerConfig(tracker="sort")
    with pytest.raises(ConfigError):
        TrackerConfig(track_low_thresh=0.5, track_high_thresh=0.2)
    assert from_dict(TrackerConfig, {"tracker": "botsort", "track_buffer": 60}).track_buffer == 60


def test_import_is_offline_quiet_and_restores_threads(tmp_path):
    """A fresh interpreter with sockets disabled and $HOME redirected imports the trackers and tracks."""
    code = f"""
import json, os, socket, sys
def refuse(*a, **k): raise OSError("network disabled by the test")
socket.socket.connect = refuse; socket.getaddrinfo = refuse; socket.create_connection = refuse
import cv2, torch
torch.set_num_threads(2); cv2.setNumThreads(2)
sys.path.insert(0, {str(ROOT)!r})
from pipeline.twod.detect import PersonTracker
from pipeline.types import Detections
import numpy as np
t = PersonTracker()
out = t.update(Detections(np.array([[0, 0, 10, 20]], np.float32), np.array([0.9], np.float32), np.array([-1])))
print(json.dumps({{"torch": torch.get_num_threads(), "cv2": cv2.getNumThreads(),
                  "omp": os.environ.get("OMP_NUM_THREADS"), "ids": out.track_ids.tolist(),
                  "offline": os.environ["YOLO_OFFLINE"]}}))
"""
    env = {"HOME": str(tmp_path / "home"), "PATH": "/usr/bin:/bin", "POSE3D_CACHE": str(tmp_path / "cache")}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result == {"torch": 2, "cv2": 2, "omp": None, "ids": [1], "offline": "1"}
    assert proc.stdout.strip().count("\n") == 0 and "ultralytics" not in proc.stderr.lower(), "it printed"
    assert not (tmp_path / "home").exists()                       # no settings written in $HOME
    assert (tmp_path / "cache" / "ultralytics").is_dir()          # they went to the cache instead
