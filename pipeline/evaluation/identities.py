"""Who was found and whether they kept their id: recall, precision, id switches and IDF1 against ground truth.

A person counts in a frame when at least ``min_visible`` of their box is in the picture and not behind a
nearer person; frames where they are hidden more than that are neither required nor held against a
track that does find them (as MOTChallenge does with its ignored boxes). A track matches a person in a
frame when its keypoints lie on that person: the median distance between its H36M-17 keypoints (as lifted)
and the person's projected joints, over the joints in the picture that the track is sure of (confidence
>= 0.3, at least 4), is at most ``max_distance`` of the person's height. Keypoints rather than boxes:
a track found on the right person with the wrong keypoints is of no use to the lifter, and a box around
keypoints of a person cut by the image edge is not comparable with one around all their joints.

- **detection recall**: the share of counted person-frames where one of the tracker's boxes overlaps the
  person's whole-body box (the part in the picture) with IoU >= 0.5 (people and boxes paired one to one):
  was the person found at all.
- **recall / precision**: per frame, tracks and people are paired one to one (Hungarian, closest first);
  recall = paired person-frames / counted person-frames, precision = paired / track frames not on
  ignored people.
- **id switches** (CLEAR MOT): a person's paired track id differs from the one they last had.
- **IDF1** (Ristani et al., 2016): every person is given at most one track id for the whole clip (the
  assignment that maximises frames where they match); IDF1 = 2 IDTP / (person-frames + track frames).
"""

from __future__ import annotations

from dataclasses import astuple, dataclass
from typing import Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment

from pipeline.errors import ShapeError
from pipeline.keypoints import coco_to_h36m
from pipeline.twod.detect import box_iou
from pipeline.types import Track


@dataclass(frozen=True)
class IdentityScores:
    """Identity figures of one clip (or several summed).

    Attributes:
        person_frames: Frames in which a person counts (visible enough), summed over people.
        boxed: Counted person-frames where a tracker box covers the person (detection recall's numerator).
        track_frames: Track frames not on an ignored (hidden) person.
        matched: Person-frames paired with a track.
        id_switches: Times a person's paired track id changed.
        idtp: Person-frames matched by the track id given to that person for the whole clip.
        tracks: Number of tracks.
        people: Number of people.
    """

    person_frames: int
    boxed: int
    track_frames: int
    matched: int
    id_switches: int
    idtp: int
    tracks: int
    people: int

    @property
    def detection_recall(self) -> float:
        return self.boxed / max(self.person_frames, 1)

    @property
    def recall(self) -> float:
        return self.matched / max(self.person_frames, 1)

    @property
    def precision(self) -> float:
        return self.matched / max(self.track_frames, 1)

    @property
    def idf1(self) -> float:
        return 2 * self.idtp / max(self.person_frames + self.track_frames, 1)

    def __add__(self, other: "IdentityScores") -> "IdentityScores":
        return IdentityScores(*(a + b for a, b in zip(astuple(self), astuple(other))))


def track_keypoints(tracks: Sequence[Track], num_frames: int) -> tuple[np.ndarray, np.ndarray]:
    """Every track's H36M-17 keypoints and confidences per frame of a clip.

    Returns:
        keypoints (N, T, 17, 2) pixels (NaN where a track has no frame), scores (N, T, 17) (0 there).
    """
    keypoints = np.full((len(tracks), num_frames, 17, 2), np.nan)
    scores = np.zeros((len(tracks), num_frames, 17))
    for i, track in enumerate(tracks):
        keep = track.frames < num_frames
        keypoints[i, track.frames[keep]], scores[i, track.frames[keep]] = coco_to_h36m(track.keypoints[keep],
                                                                                       track.scores[keep])
    return keypoints, scores


def keypoint_distance(truth: np.ndarray, heights: np.ndarray, predicted: np.ndarray, scores: np.ndarray,
                      size: tuple[int, int], min_score: float = 0.3, min_joints: int = 4) -> np.ndarray:
    """Median keypoint distance of every track to every person in one frame, in person heights.

    Args:
        truth: (P, 17, 2) people's projected joints, pixels.
        heights: (P,) people's heights, pixels.
        predicted: (N, 17, 2) tracks' keypoints, pixels (NaN: no keypoints).
        scores: (N, 17) their confidences.
        size: Image (width, height): joints outside it are not compared.
        min_score: Track joints less sure than this are not compared.
        min_joints: Pairs with fewer comparable joints get infinity.

    Returns:
        (P, N) float64.
    """
    inside = ((truth >= 0) & (truth < size)).all(axis=-1)                                    # (P, 17)
    usable = inside[:, None] & (scores >= min_score)[None] & np.isfinite(predicted).all(-1)[None]
    distance = np.linalg.norm(truth[:, None] - predicted[None], axis=-1)                     # (P, N, 17)
    distance = np.where(usable, distance, np.nan)
    with np.errstate(all="ignore"):
        median = np.nanmedian(np.where(usable.any(-1, keepdims=True), distance, 0.0), axis=-1)
    median = np.where(usable.sum(-1) >= min_joints, median, np.inf)
    return median / np.maximum(heights, 1.0)[:, None]


def score_identities(truth: np.ndarray, heights: np.ndarray, visible: np.ndarray, predicted: np.ndarray,
                     scores: np.ndarray, size: tuple[int, int], *, truth_boxes: np.ndarray | None = None,
                     tracked_boxes: Sequence[np.ndarray] = (), min_visible: float = 0.5,
                     max_distance: float = 0.2, min_iou: float = 0.5) -> IdentityScores:
    """Score tracks against the people of a clip.

    Args:
        truth: (P, T, 17, 2) people's projected H36M-17 joints, pixels.
        heights: (P, T) people's heights, pixels.
        visible: (P, T) fraction of each person's box in view
            (:func:`pipeline.evaluation.synth_group.visible_fraction`).
        predicted: (N, T, 17, 2) tracks' H36M-17 keypoints, pixels; NaN where a track has none
            (:func:`track_keypoints`).
        scores: (N, T, 17) their confidences.
        size: Image (width, height), pixels.
        truth_boxes: (P, T, 4) people's whole-body boxes, pixels (None: no detection recall, 0); the part
            outside the picture does not count.
        tracked_boxes: Per frame, the tracker's (n, 4) boxes, pixels.
        min_visible: A person less visible than this is ignored in that frame.
        max_distance: Largest median keypoint distance, in person heights, of a match.
        min_iou: Smallest box overlap of a detection.

    Returns:
        The clip's :class:`IdentityScores`.
    """
    p, t = visible.shape
    if truth.shape != (p, t, 17, 2) or heights.shape != (p, t) or predicted.ndim != 4 \
            or predicted.shape[1:] != (t, 17, 2) or scores.shape != predicted.shape[:3]:
        raise ShapeError(f"score_identities: truth {truth.shape}, heights {heights.shape}, visible {visible.shape}, "
                         f"predicted {predicted.shape}, scores {scores.shape}")
    counted = visible >= min_visible
    present = np.isfinite(predicted).all(axis=-1).any(axis=-1)   # (N, T)
    kept = present.copy()
    hits = np.zeros((p, len(predicted)), np.int64)               # frames where person i and track j match
    matched = switches = 0
    last = np.full(p, -1)
    for f in range(t):
        distance = keypoint_distance(truth[:, f], heights[:, f], predicted[:, f], scores[:, f], size)
        close = distance <= max_distance
        hits += close & counted[:, f:f + 1]
        rows, cols = linear_sum_assignment(np.where(close, distance, 1e6))
        for i, j in zip(rows, cols):
            if not close[i, j]:
                continue
            if not counted[i, f]:
                kept[j, f] = False                               # a track on a hidden person is not held against it
                continue
            matched += 1
            switches += int(last[i] != -1 and last[i] != j)
            last[i] = j
    rows, cols = linear_sum_assignment(-hits) if hits.size else ([], [])
    boxed = 0 if truth_boxes is None else boxes_found(truth_boxes, counted, tracked_boxes, size, min_iou)
    return IdentityScores(int(counted.sum()), boxed, int(kept.sum()), matched, switches,
                          int(hits[rows, cols].sum()), len(predicted), p)


def boxes_found(truth: np.ndarray, counted: np.ndarray, tracked: Sequence[np.ndarray], size: tuple[int, int],
                min_iou: float) -> int:
    """Counted person-frames where a tracker box overlaps the person's box with IoU >= ``min_iou``.

    Args:
        truth: (P, T, 4) people's boxes, pixels; the part outside the picture is cut off, as a detector's is.
        counted: (P, T) bool, frames where each person counts.
        tracked: T arrays of (n, 4) tracker boxes, pixels.
        size: Image (width, height), pixels.
        min_iou: Smallest overlap of a find.

    Returns:
        The number of such person-frames (people and boxes paired one to one per frame).
    """
    found = 0
    inside = np.clip(truth, 0, np.tile(size, 2))
    for f, boxes in enumerate(tracked):
        if not len(boxes):
            continue
        iou = box_iou(inside[:, f], boxes)
        rows, cols = linear_sum_assignment(-iou)
        found += int(sum(counted[i, f] and iou[i, j] >= min_iou for i, j in zip(rows, cols)))
    return found
