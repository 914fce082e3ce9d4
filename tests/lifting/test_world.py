"""Placing people: the estimated world frame (pipeline/lifting/world.py), its exports, and the 3D panel's floor paths."""

from __future__ import annotations

import csv
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from pipeline.io.export import export_tracks, load_tracks_json
from pipeline.lifting.world import ANKLE_HEIGHT_M, estimate_world, placed_poses
from pipeline.render.panel3d import WORLD_TO_SCENE
from pipeline.render.renderer import Renderer, frames_of
from pipeline.render.style import PersonFrame, RenderConfig
from pipeline.types import Track, VideoInfo
from tests.support.synth import STANDING

INFO = VideoInfo(Path("clip.mp4"), 640, 480, 30.0, 40, 40 / 30)


def _pitch(deg: float) -> np.ndarray:
    """World (y up) -> camera (y down) rotation of a camera pitched down by ``deg``."""
    a = np.radians(deg)
    tilt = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    return tilt @ np.diag([1.0, -1.0, -1.0])  # y up -> y down, z towards camera -> z forward


def _walker(track_id: int, pitch: float, start_x: float, frames: int = 40) -> Track:
    """STANDING (y up, ankles at y 0.08 above a floor at 0) walking along +x, filmed from 4 m away."""
    world = np.repeat(STANDING[None].astype(np.float64), frames, 0)
    world[..., 1] -= world[:, [3, 6], 1].min() - ANKLE_HEIGHT_M          # ankles 8 cm above the floor
    world += np.stack([start_x + 0.04 * np.arange(frames), np.zeros(frames), np.full(frames, -4.0)], -1)[:, None]
    cam = world @ _pitch(pitch).T + [0.0, 1.2, 0.0]                         # camera 1.2 m up... in camera axes
    kp = np.full((frames, 17, 2), 100.0, np.float32)
    return Track(track_id, np.arange(frames), kp, np.ones((frames, 17), np.float32), np.zeros(frames, bool),
                 (cam - cam[:, :1]).astype(np.float32), cam[:, 0].astype(np.float32))


@pytest.mark.parametrize("pitch", [0.0, 20.0])
def test_world_frame_is_level_with_the_floor_at_zero(pitch):
    tracks = [_walker(1, pitch, -1.0), _walker(2, pitch, 0.5)]
    world = estimate_world(tracks)
    placed = np.concatenate([world.apply(placed_poses(t)) for t in tracks])
    # Upright people stand upright in the world frame, whatever the camera's pitch.
    body = placed[:, 10] - placed[:, [3, 6]].mean(1)
    np.testing.assert_allclose(body / np.linalg.norm(body, axis=-1, keepdims=True), [[0, 1, 0]] * len(body), atol=1e-6)
    assert placed[:, [3, 6], 1].min() == pytest.approx(ANKLE_HEIGHT_M, abs=1e-5)
    # Walking along the camera's x stays along world x; the origin sits below the mean pelvis.
    np.testing.assert_allclose(placed[:, 0, [0, 2]].mean(0), 0.0, atol=1e-5)
    path = world.apply(tracks[0].root3d)
    assert np.ptp(path[:, 0]) == pytest.approx(0.04 * 39, rel=1e-4) and np.ptp(path[:, 2]) < 1e-5
    assert np.linalg.det(world.rotation) == pytest.approx(1.0)


def test_no_placed_track_no_world():
    track = _walker(1, 0.0, 0.0)

    assert estimate_world([replace(track, root3d=None)]) is None


def test_exports_carry_trajectory_and_world(tmp_path):
    tracks = [_walker(1, 10.0, -1.0), _walker(3, 10.0, 1.0)]
    for suffix in (".json", ".npz", ".csv"):
        export_tracks(tmp_path / f"r{suffix}", tracks, INFO)
    doc = json.loads((tmp_path / "r.json").read_text())
    assert np.array(doc["world"]["rotation"]).shape == (3, 3) and "floor" in doc["world"]["frame"]
    world = np.array(doc["tracks"][0]["poses3d_world"])
    assert world.shape == (40, 17, 3) and world[:, [3, 6], 1].min() == pytest.approx(ANKLE_HEIGHT_M, abs=1e-3)
    _, back = load_tracks_json(tmp_path / "r.json")
    np.testing.assert_allclose(back[0].root3d, tracks[0].root3d, atol=1e-4)
    with np.load(tmp_path / "r.npz") as z:
        assert z["track_3_root3d"].shape == (40, 3) and z["track_3_poses3d_world"].shape == (40, 17, 3)
        assert z["world_rotation"].shape == (3, 3)
    rows = list(csv.DictReader(open(tmp_path / "r.csv")))
    assert rows[0]["Xw"] != "" and float(rows[3]["Yw"]) == pytest.approx(ANKLE_HEIGHT_M, abs=1e-3)


def test_exports_without_trajectory_leave_world_empty(tmp_path):
    track = replace(_walker(1, 0.0, 0.0), root3d=None)
    export_tracks(tmp_path / "r.json", [track], INFO)
    export_tracks(tmp_path / "r.csv", [track], INFO)
    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["world"] is None and doc["tracks"][0]["root3d"] is None and doc["tracks"][0]["poses3d_world"] is None
    assert next(csv.DictReader(open(tmp_path / "r.csv")))["Xw"] == ""


def test_panel_places_people_where_they_are_and_draws_their_path():
    tracks = [_walker(1, 10.0, -1.0)]
    world = estimate_world(tracks)
    people = frames_of(tracks, world, trail_frames=30)(35)
    assert len(people) == 1 and people[0].trail.shape == (30, 3) and people[0].pose_world.shape == (17, 3)
    renderer = Renderer(RenderConfig(orbit_deg_per_s=0.0, show_ids=False), 640, 480, 30.0)
    placed = renderer.panel.place(people[0])
    np.testing.assert_allclose(placed, people[0].pose_world * WORLD_TO_SCENE)
    image = np.zeros((480, 640, 3), np.uint8)
    with_trail = renderer.render(image, people, 0.0).copy()
    no_trail = renderer.render(image, [PersonFrame(1, people[0].keypoints2d, people[0].scores2d, people[0].pose3d,
                                                   False, people[0].pose_world)], 0.0)
    panel = np.s_[:, 640:]
    assert (with_trail[panel] != no_trail[panel]).any(axis=-1).sum() > 20  # the path is drawn
