"""Recall, precision, id switches and IDF1 (pipeline/evaluation/identities.py) on hand-made tracks."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.errors import ShapeError
from pipeline.evaluation.identities import IdentityScores, keypoint_distance, score_identities, track_keypoints
from pipeline.keypoints import h36m_to_coco
from pipeline.types import Track
from tests.support.synth import STANDING

SIZE = (640, 360)
T = 10


def _person(x: float) -> np.ndarray:
    """(17, 2) pixels of STANDING drawn 200 px tall with its feet at y=300, centred at x."""
    xy = STANDING[:, :2] * [-1.0, -1.0] * 200 / 1.7 + [x, 300 + 0.08 * 200 / 1.7]
    return xy


def _truth(xs: list[float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    kp = np.stack([np.repeat(_person(x)[None], T, axis=0) for x in xs])
    return kp, np.full((len(xs), T), 200.0), np.ones((len(xs), T))


def test_perfect_tracks_score_one():
    truth, heights, visible = _truth([150, 450])
    scores = score_identities(truth, heights, visible, truth.copy(), np.ones(truth.shape[:3]), SIZE)
    assert (scores.recall, scores.precision, scores.idf1, scores.id_switches) == (1.0, 1.0, 1.0, 0)


def test_a_swap_halfway_is_one_switch_each_and_halves_idf1():
    truth, heights, visible = _truth([150, 450])
    swapped = truth.copy()
    swapped[0, 5:], swapped[1, 5:] = truth[1, 5:], truth[0, 5:]
    scores = score_identities(truth, heights, visible, swapped, np.ones(truth.shape[:3]), SIZE)
    assert scores.recall == 1.0 and scores.id_switches == 2
    assert scores.idf1 == pytest.approx(0.5)


def test_missing_frames_lower_recall_and_a_ghost_lowers_precision():
    truth, heights, visible = _truth([150])
    predicted = np.concatenate([truth, np.repeat(_person(500)[None, None], T, axis=1)])
    predicted[0, :4] = np.nan                                  # the person unfound in 4 of 10 frames
    scores = score_identities(truth, heights, visible, predicted, np.ones(predicted.shape[:3]), SIZE)
    assert scores.recall == pytest.approx(0.6)
    assert scores.precision == pytest.approx(6 / 16)           # 6 right frames, 10 ghost frames


def test_wrong_keypoints_on_the_right_person_do_not_match():
    truth, heights, visible = _truth([300])
    predicted = truth.copy()
    predicted[0, :, :, 1] += 0.3 * 200                         # everything 0.3 heights too low
    scores = score_identities(truth, heights, visible, predicted, np.ones(predicted.shape[:3]), SIZE)
    assert scores.recall == 0.0


def test_hidden_people_are_neither_required_nor_held_against_a_track():
    truth, heights, visible = _truth([300])
    visible[0, :5] = 0.2
    predicted = truth.copy()
    predicted[0, 5:] = np.nan                                  # found only while hidden
    scores = score_identities(truth, heights, visible, predicted, np.ones(predicted.shape[:3]), SIZE)
    assert scores.person_frames == 5 and scores.track_frames == 0 and scores.recall == 0.0


def test_unsure_and_outside_joints_are_not_compared():
    truth = _person(300)[None]
    predicted = truth.copy()
    predicted[0, :8] += 500                                    # wrong where the track is unsure
    scores = np.ones((1, 17))
    scores[0, :8] = 0.1
    assert keypoint_distance(truth, np.array([200.0]), predicted, scores, SIZE)[0, 0] == pytest.approx(0.0)
    scores[0, 8:] = 0.1                                        # fewer than 4 sure joints: no match possible
    assert np.isinf(keypoint_distance(truth, np.array([200.0]), predicted, scores, SIZE)[0, 0])


def test_scores_add_up_and_bad_shapes_raise():
    a = IdentityScores(10, 9, 8, 7, 1, 6, 2, 1)
    assert (a + a).person_frames == 20 and (a + a).idf1 == pytest.approx(a.idf1)
    truth, heights, visible = _truth([300])
    with pytest.raises(ShapeError):
        score_identities(truth, heights, visible, truth[:, :5], np.ones((1, 5, 17)), SIZE)


def test_track_keypoints_place_each_track_on_its_frames():
    coco = h36m_to_coco(np.repeat(_person(300)[None], 3, axis=0))
    track = Track(7, np.array([2, 3, 4]), coco.astype(np.float32), np.ones((3, 17), np.float32), np.zeros(3, bool))
    keypoints, scores = track_keypoints([track], 4)
    assert keypoints.shape == (1, 4, 17, 2) and np.isnan(keypoints[0, :2]).all()
    np.testing.assert_allclose(keypoints[0, 2, [1, 2, 3, 4, 5, 6]], _person(300)[[1, 2, 3, 4, 5, 6]], atol=1e-3)
    assert scores[0, 0].max() == 0 and scores[0, 2].min() > 0


def test_detection_recall_counts_boxes_on_visible_people():
    truth, heights, visible = _truth([150, 450])
    boxes = np.concatenate([truth.min(axis=2), truth.max(axis=2)], axis=-1)       # (2, T, 4)
    visible[1, :] = 0.1                                                           # the second is hidden
    tracked = [boxes[:, f] + [0, 0, 5, 5] for f in range(T)]                      # both boxed, a little off
    tracked[3] = boxes[1:, 3]                                                     # frame 3: only the hidden one
    scores = score_identities(truth, heights, visible, truth.copy(), np.ones(truth.shape[:3]), SIZE,
                              truth_boxes=boxes, tracked_boxes=tracked)
    assert scores.person_frames == T and scores.boxed == T - 1
    assert scores.detection_recall == pytest.approx(0.9)


def test_detection_boxes_are_compared_with_the_part_of_the_person_in_the_picture():
    truth, heights, visible = _truth([20])                     # half of the person left of the picture
    boxes = np.concatenate([truth.min(axis=2), truth.max(axis=2)], axis=-1)
    boxes[..., 0] -= 80
    tracked = [np.clip(boxes[:, f], 0, None) for f in range(T)]
    scores = score_identities(truth, heights, visible, truth.copy(), np.ones(truth.shape[:3]), SIZE,
                              truth_boxes=boxes, tracked_boxes=tracked)
    assert scores.detection_recall == 1.0
