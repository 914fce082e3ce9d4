"""Exports of fitted tracks (pipeline/io/export.py): skeleton, raw poses, contacts, joint angles and BVH files."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from pipeline.errors import InputError
from pipeline.io.bvh import bvh_positions, read_bvh
from pipeline.io.export import export_files, export_tracks, load_tracks_json
from pipeline.lifting.angles import ANGLE_NAMES
from pipeline.lifting.contacts import ContactConfig
from pipeline.lifting.fit import FitConfig
from pipeline.lifting.skeletons import fit_tracks
from pipeline.skeleton import RIG_JOINTS
from pipeline.types import Timeline, Track, VideoInfo
from tests.support.synth import moving_person

INFO = VideoInfo(Path("clip.mp4"), 640, 480, 30.0, 40, 40 / 30)


def _fitted(placed: bool) -> list[Track]:
    tracks = []
    for track_id, start in ((2, 0), (5, 10)):
        frames = np.arange(start, start + 30)
        poses = moving_person(30, seed=track_id, jitter=0.02) * np.array([1.0, -1.0, 1.0])
        root = np.tile([0.5 * track_id - 1.5, 0.2, 4.0], (30, 1)).astype(np.float32) if placed else None
        tracks.append(Track(track_id, frames, np.full((30, 17, 2), 50.0, np.float32), np.ones((30, 17), np.float32),
                            np.zeros(30, bool), (poses - poses[:, :1]).astype(np.float32), root))
    return fit_tracks(tracks, Timeline.uniform(40, 30.0), 30.0, FitConfig(iterations=30), ContactConfig())


@pytest.fixture(scope="module")
def fitted() -> list[Track]:
    return _fitted(placed=False)


def test_json_and_npz_carry_the_skeleton_raw_poses_and_contacts(fitted, tmp_path):
    doc = json.loads(export_tracks(tmp_path / "t.json", fitted, INFO).read_text())
    assert doc["version"] == 2 and doc["skeletons"]["rig"]["joints"] == list(RIG_JOINTS)
    track = doc["tracks"][0]
    np.testing.assert_allclose(track["poses3d_raw"], fitted[0].poses3d_raw, atol=1e-4)
    np.testing.assert_allclose(track["bone_lengths"], fitted[0].skeleton.bone_lengths, atol=1e-4)
    quats = np.array(track["rotations"])
    assert quats.shape == (30, 20, 4)
    np.testing.assert_allclose(Rotation.from_quat(quats.reshape(-1, 4)).as_matrix().reshape(30, 20, 3, 3),
                               fitted[0].skeleton.rotations, atol=1e-4)
    assert np.array(track["contacts"]).shape == (30, 2)
    _, back = load_tracks_json(tmp_path / "t.json")
    np.testing.assert_allclose(back[0].skeleton.positions, fitted[0].skeleton.positions, atol=1e-4)
    np.testing.assert_allclose(back[1].contacts, fitted[1].contacts, atol=1e-3)
    np.testing.assert_allclose(back[1].poses3d_raw, fitted[1].poses3d_raw, atol=1e-4)
    with np.load(export_tracks(tmp_path / "t.npz", fitted, INFO)) as npz:
        assert list(npz["rig_joints"]) == list(RIG_JOINTS)
        np.testing.assert_array_equal(npz["track_5_poses3d_raw"], fitted[1].poses3d_raw)
        assert npz["track_5_rotations"].shape == (30, 20, 4) and npz["track_5_contacts"].shape == (30, 2)


def test_csv_has_raw_columns_and_contacts_on_the_ankle_rows(fitted, tmp_path):
    rows = list(csv.DictReader(open(export_tracks(tmp_path / "t.csv", fitted, INFO))))
    assert len(rows) == 60 * 17
    ankle = next(r for r in rows if r["h36m_joint"] == "l_ankle")
    knee = next(r for r in rows if r["h36m_joint"] == "l_knee")
    assert ankle["contact"] != "" and knee["contact"] == ""
    assert float(ankle["contact"]) == pytest.approx(fitted[0].contacts[0, 1], abs=1e-3)
    assert float(knee["Xr"]) == pytest.approx(fitted[0].poses3d_raw[0, 5, 0], abs=1e-4)


def test_a_name_ending_in_angles_csv_gets_joint_angles(fitted, tmp_path):
    rows = list(csv.DictReader(open(export_tracks(tmp_path / "run_angles.csv", fitted, INFO))))
    assert len(rows) == 60 and {"l_knee_flexion", "l_knee_flexion_velocity"} <= set(rows[0])
    assert [name for name in rows[0] if name in ANGLE_NAMES] == list(ANGLE_NAMES)


@pytest.mark.parametrize("placed", [False, True])
def test_bvh_is_one_file_per_person_whose_kinematics_match_the_export(placed, tmp_path):
    tracks = _fitted(placed)
    files = export_files(tmp_path / "clip.bvh", tracks)
    assert [p.name for p, _ in files] == ["clip_track2.bvh", "clip_track5.bvh"]
    for path, track_id in files:
        export_tracks(path, tracks, INFO, track_id=track_id)
        track = next(t for t in tracks if t.track_id == track_id)
        names, positions = bvh_positions(path)
        assert names == list(RIG_JOINTS) and positions.shape == (30, 20, 3)
        assert read_bvh(path)[2] == pytest.approx(1 / 30, abs=1e-6)
        # Bone by bone, the file's pose is the fitted skeleton's, turned upright: distances agree to 1 mm.
        fk = track.skeleton.positions
        dist_file = np.linalg.norm(positions[:, :, None] - positions[:, None], axis=-1)
        dist_fit = np.linalg.norm(fk[:, :, None] - fk[:, None], axis=-1)
        assert np.abs(dist_file - dist_fit).max() < 1e-3
        if placed:   # the pelvis moves with the trajectory; otherwise it stays put
            assert np.ptp(positions[:, 0], axis=0).max() > 0 or np.ptp(track.root3d, axis=0).max() == 0


def test_bvh_needs_a_track_id_and_a_fit(fitted, tmp_path):
    with pytest.raises(InputError, match="one track"):
        export_tracks(tmp_path / "x.bvh", fitted, INFO)
    raw = [Track(1, np.arange(3), np.zeros((3, 17, 2), np.float32), np.ones((3, 17), np.float32), np.zeros(3, bool),
                 np.zeros((3, 17, 3), np.float32))]
    assert export_files(tmp_path / "x.bvh", raw) == []
