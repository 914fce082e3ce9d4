"""Tests for the MediaPipe 2D backend in pipeline/twod/blazepose.py and the 2D stage in pipeline/twod/stage.py."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from pipeline.config import from_dict
from pipeline.errors import ConfigError, ModelError, ShapeError
from pipeline.keypoints import MEDIAPIPE_TO_COCO, PersonKeypoints, mediapipe_to_coco
from pipeline.skeleton import COCO17
from pipeline.twod.blazepose import MediaPipeConfig, MediaPipePose, box_region, landmarks_to_person
from pipeline.twod.stage import TwoDConfig, TwoDStage
from pipeline.twod.tracks import TrackConfig
from pipeline.types import Frame

VIDEOS = Path("/work/shared/data/videos")


def test_mapping_table_matches_mediapipe_landmark_names():
    from mediapipe.python.solutions.pose import PoseLandmark

    side = {"l": "LEFT", "r": "RIGHT"}
    for coco_index, mp_index in enumerate(MEDIAPIPE_TO_COCO):
        name = COCO17.joints[coco_index]
        part = name.split("_", 1)
        expected = "NOSE" if name == "nose" else f"{side[part[0]]}_{part[1].upper()}"
        assert PoseLandmark(mp_index).name == expected, name


def test_mediapipe_to_coco_on_a_fake_landmark_array():
    landmarks = np.stack([np.arange(33), 100 + np.arange(33), np.linspace(0, 1, 33)], axis=1)  # (33, 3)
    coco = mediapipe_to_coco(landmarks)
    assert coco.shape == (17, 3)
    np.testing.assert_array_equal(coco[:, 0], MEDIAPIPE_TO_COCO)
    assert coco[COCO17.index("l_shoulder"), 0] == 11 and coco[COCO17.index("r_ankle"), 0] == 28
    batch = np.random.default_rng(0).normal(size=(5, 33, 2))
    np.testing.assert_array_equal(mediapipe_to_coco(batch)[:, 9], batch[:, 15])  # l_wrist <- LEFT_WRIST
    with pytest.raises(ShapeError):
        mediapipe_to_coco(np.zeros((17, 2)))


def fake_landmarks(conf: float = 0.9) -> np.ndarray:
    """(33, 3) landmarks spread over x 100..420, y 50..690 in a 640 x 720 image."""
    t = np.arange(33, dtype=np.float64)
    return np.stack([100 + 10 * t, 50 + 20 * t, np.full(33, conf)], axis=1)


def test_landmarks_to_person_scores_box_and_outside_points():
    lm = fake_landmarks()
    lm[28, :2] = (300, 800)                                   # r_ankle below the 720-pixel image
    person = landmarks_to_person(lm, 640, 720, MediaPipeConfig(box_expand=0.1, outside_score=0.05))
    assert isinstance(person, PersonKeypoints)
    assert person.keypoints.shape == (17, 2) and person.keypoints.dtype == np.float32
    np.testing.assert_allclose(person.keypoints[COCO17.index("r_ankle")], (300, 800))  # position kept
    assert person.scores[COCO17.index("r_ankle")] == pytest.approx(0.05)
    assert np.allclose(np.delete(person.scores, COCO17.index("r_ankle")), 0.9)
    assert person.score == pytest.approx(person.scores.mean())
    # Box: landmark extent clipped to the image (x 100..420, y 50..720), grown by 10% per side, clipped.
    np.testing.assert_allclose(person.box, (68, 0, 452, 720), atol=1e-3)
    with pytest.raises(ShapeError):
        landmarks_to_person(np.zeros((17, 3)), 640, 720)


def test_config_validation_and_yaml_loading():
    with pytest.raises(ConfigError):
        MediaPipeConfig(max_people=0)
    with pytest.raises(ConfigError):
        MediaPipeConfig(mask="blur")
    config = from_dict(TwoDConfig, {"mediapipe": {"max_people": 2, "refine_crops": False},
                                    "tracker": {"tracker": "botsort"}, "tracks": {"max_gap_s": 1}})
    assert config.mediapipe.max_people == 2 and config.tracker.tracker == "botsort" and config.tracks.max_gap_s == 1
    with pytest.raises(ConfigError, match="did you mean"):
        from_dict(TwoDConfig, {"mediapipe": {"max_peple": 2}})


def scripted(people: list[PersonKeypoints | None], config: MediaPipeConfig) -> MediaPipePose:
    """A MediaPipePose whose BlazePose calls return ``people`` in turn (no graph is built)."""
    pose = MediaPipePose.__new__(MediaPipePose)
    pose.config, pose._pose, pose.calls = config, object(), 0
    queue = list(people)

    def find(rgb, to_image=None, size=None, pad=True, video=False):
        pose.calls += 1
        person = queue.pop(0) if queue else None
        return None if person is None else (person, None)

    pose._find = find
    return pose


def person_at(x: float, conf: float = 0.9) -> PersonKeypoints:
    lm = fake_landmarks(conf) * (0.3, 0.3, 1) + (x, 20, 0)    # a 100 x 200 px person starting at x
    return landmarks_to_person(lm, 640, 480)


def test_search_stops_at_max_people_and_drops_duplicates_and_weak_finds():
    image = np.zeros((480, 640, 3), np.uint8)
    a, b, c = person_at(0), person_at(200), person_at(400)
    pose = scripted([a, b, c], MediaPipeConfig(max_people=2, refine_crops=False))
    assert [p.box[0] for p in pose.estimate(image)] == [a.box[0], b.box[0]] and pose.calls == 2
    pose = scripted([a, person_at(5), person_at(300, conf=0.1), b], MediaPipeConfig(refine_crops=False))
    assert [p.box[0] for p in pose.estimate(image)] == [a.box[0], b.box[0]]    # duplicate and weak dropped
    pose = scripted([a] * 20, MediaPipeConfig(max_people=3, refine_crops=False))
    assert len(pose.estimate(image)) == 1 and pose.calls == 6                   # bounded: 2 x max_people


def test_real_graph_blank_image_closed_and_bad_input():
    with MediaPipePose() as pose:
        assert pose.estimate(np.full((240, 320, 3), 200, np.uint8)) == []
        with pytest.raises(ShapeError):
            pose.estimate(np.zeros((240, 320), np.uint8))
    with pytest.raises(ModelError, match="closed"):
        pose.estimate(np.zeros((240, 320, 3), np.uint8))
    pose.close()  # idempotent


def read_frames(name: str, indices: list[int]) -> list[np.ndarray]:
    """Decode the frames ``indices`` (sorted) of a shared clip with OpenCV."""
    if not (VIDEOS / name).is_file():
        pytest.skip(f"{VIDEOS / name} not available")
    cap, frames, i = cv2.VideoCapture(str(VIDEOS / name)), [], 0
    while i <= indices[-1]:
        ok, image = cap.read()
        assert ok, f"{name}: could not decode frame {i}"
        if i in indices:
            frames.append(image)
        i += 1
    cap.release()
    return frames


@pytest.mark.slow
def test_running_clip_finds_the_runner():
    # The runner stays inside this region of the 1920 x 1088 frame throughout (checked by eye).
    region = (450, 100, 1010, 960)
    frames = read_frames("running_track_phalp.mp4", list(range(0, 180, 18)))
    with MediaPipePose() as pose:
        found = [pose.estimate(f) for f in frames]
    assert sum(len(p) == 1 for p in found) >= 9
    for people in found:
        for person in people:
            confident = person.keypoints[person.scores > 0.5]
            assert len(confident) >= 12
            assert (confident[:, 0] > region[0]).all() and (confident[:, 0] < region[2]).all()
            assert (confident[:, 1] > region[1]).all() and (confident[:, 1] < region[3]).all()
            assert person.box[3] - person.box[1] > 0.5 * 1088


@pytest.mark.slow
def test_two_kids_clip_finds_both():
    frames = read_frames("two_kids_jumping_sam2.mp4", list(range(160, 200, 4)))  # both fully in view
    with MediaPipePose() as pose:
        found = [pose.estimate(f) for f in frames]
    two = [p for p in found if len(p) == 2]
    assert len(two) >= 8
    for a, b in two:
        centres = [(p.box[0] + p.box[2]) / 2 for p in (a, b)]
        assert abs(centres[0] - centres[1]) > 150                 # side by side, distinct boxes
        assert min(a.score, b.score) > 0.5


@pytest.mark.slow
def test_two_d_stage_on_a_few_frames():
    frames = read_frames("two_kids_jumping_sam2.mp4", list(range(170, 182)))
    config = TwoDConfig(tracks=TrackConfig(min_length_s=0.2))
    with TwoDStage(config, fps=30.0) as stage:
        results = [stage.process(Frame(i, i / 30, image)) for i, image in enumerate(frames)]
        tracks = stage.finish()
    for r in results:
        assert r.keypoints.shape == (len(r.detections), 17, 2) and r.scores.shape == (len(r.detections), 17)
    assert len(tracks) == 2 and all(len(t) >= 10 for t in tracks)
    for track in tracks:  # each track spans exactly the frames where the tracker reported its id
        seen = [r.index for r in results if track.track_id in r.detections.track_ids]
        assert (track.frames[0], track.frames[-1]) == (seen[0], seen[-1])
        assert not track.interpolated[np.isin(track.frames, seen)].any()


def test_lying_wide_find_is_dropped_but_upright_kept():
    config = MediaPipeConfig(refine_crops=False)
    upright = person_at(100.0)
    lying = person_at(300.0)
    kp = lying.keypoints.copy()
    # Rotate the skeleton by 90 degrees about its centre: torso horizontal, box wide.
    centre = kp.mean(axis=0)
    kp = (kp - centre)[:, ::-1] * np.array([1.0, -1.0]) + centre
    x1, y1 = kp.min(axis=0)
    x2, y2 = kp.max(axis=0)
    lying = PersonKeypoints(kp.astype(np.float32), lying.scores, np.array([x1, y1, x2, y2], np.float32), lying.score)
    pose = scripted([upright, lying], config)
    found = pose.estimate(np.zeros((480, 640, 3), np.uint8))
    assert [p.box[0] for p in found] == [upright.box[0]]
    pose = scripted([upright, lying], MediaPipeConfig(refine_crops=False, max_lying_aspect=0.0))
    assert len(pose.estimate(np.zeros((480, 640, 3), np.uint8))) == 2


def test_box_region_is_a_square_round_the_box():
    assert box_region(np.array([100, 50, 140, 150]), 1.25) == (120.0, 100.0, 125.0, 0.0)
