"""Stage 4: per-frame people with ids -> one :class:`~pipeline.types.Track` per person.

Rules:

* A track holds every frame from its first to its last sighting. Frames where the person was missing for
  at most ``max_gap_s`` are filled by linear interpolation of each keypoint between the sightings on either
  side, flagged ``interpolated=True``, and given the interpolated scores times ``interpolated_score`` (so a
  filled frame is never mistaken for a seen one, yet is still drawn faintly).
* A longer absence splits the track. The first kept piece keeps the tracker's id; each later piece gets the
  next free id above every id the tracker used, in order of start frame.
* Pieces shorter than ``min_length_s`` are dropped.
* Re-identification: the tracker forgets a person who is away longer than its buffer (behind someone, out
  of the frame). A piece that starts after another ended (within ``reid_max_gap_s``) and looks like it --
  cosine similarity of their mean appearance descriptors (:func:`appearance`) at least
  ``reid_similarity`` -- continues it: the two become one track with the earlier id, the frames between
  them absent (not interpolated). Best-matching pairs are joined first; each piece continues at most one.
* Crossings (``untangle``): where two people's boxes overlap (one passing in front of the other; a person
  missing for up to ``max_gap_s`` keeps their last box), a box tracker can swap their ids or give one of
  them a new id. After each such contact, each person's last second before it is compared with the first
  second of every id going on after it (their own, and ids born during the contact), by appearance and
  by motion (where the person was heading, carried on, against where the id goes on). When another
  pairing fits clearly better than the tracker's, the ids are put right: a plain swap from the frame the
  tracker swapped at, an id born during the contact whole.
* Nothing is ever filled with zeros: a frame nobody covers is simply absent from every track.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from dataclasses import dataclass
from typing import Iterable

import cv2
import numpy as np

from pipeline.errors import ConfigError, ShapeError
from pipeline.types import Detections, Track


@dataclass(frozen=True)
class TrackConfig:
    """How tracks are assembled from per-frame sightings.

    Attributes:
        max_gap_s: Longest absence, seconds, filled by interpolation; longer ones split the track.
        min_length_s: Tracks shorter than this (first to last frame), seconds, are dropped.
        interpolated_score: Factor applied to the interpolated scores of filled-in frames, in [0, 1].
        reid_max_gap_s: Longest absence, seconds, after which a person can still be re-identified; 0 turns
            re-identification off.
        reid_similarity: Smallest appearance cosine similarity, in [0, 1], that joins two pieces.
        untangle: Put identities right after people cross (see the module docstring); off, the tracker's stand.
        contact_overlap: Two boxes are in contact when their intersection covers this fraction of the smaller
            one.
        motion_weight: At a contact, how much each box height between where a person was heading and where
            an id continues costs against appearance similarity.
        link_similarity: At a contact, the smallest appearance similarity for another id to continue a person.
        link_distance: At a contact, the largest distance (box heights) between where a person was heading
            and where another id continues them.
        swap_margin: The ids of two people in contact are swapped back when the swapped pairing fits better
            than the tracker's by more than this (appearance and motion, summed over both people).
    """

    max_gap_s: float = 0.5
    min_length_s: float = 0.5
    interpolated_score: float = 0.5
    reid_max_gap_s: float = 10.0
    reid_similarity: float = 0.92
    untangle: bool = True
    contact_overlap: float = 0.3
    motion_weight: float = 0.2
    link_similarity: float = 0.7
    link_distance: float = 1.0
    swap_margin: float = 0.05

    def __post_init__(self) -> None:
        if self.max_gap_s < 0 or self.min_length_s < 0 or not 0 <= self.interpolated_score <= 1 \
                or self.reid_max_gap_s < 0 or not 0 <= self.reid_similarity <= 1 \
                or not 0 < self.contact_overlap <= 1 or self.motion_weight < 0 or self.swap_margin < 0 \
                or not 0 <= self.link_similarity <= 1 or self.link_distance < 0:
            raise ConfigError(f"bad TrackConfig: max_gap_s={self.max_gap_s}, min_length_s={self.min_length_s}, "
                              f"interpolated_score={self.interpolated_score}, reid_max_gap_s="
                              f"{self.reid_max_gap_s}, reid_similarity={self.reid_similarity}, contact_overlap="
                              f"{self.contact_overlap}, motion_weight={self.motion_weight}, swap_margin="
                              f"{self.swap_margin}, link_similarity={self.link_similarity}, link_distance="
                              f"{self.link_distance}")


def appearance(image: np.ndarray, box: np.ndarray, keypoints: np.ndarray | None = None,
               scores: np.ndarray | None = None) -> np.ndarray | None:
    """Colour descriptor of a person: hue-saturation histograms of the head, the upper body and the legs.

    With keypoints, each part is the person's own pixels (a disc round the nose, the torso quadrilateral
    with the arms, thick lines along the legs), so the background and a neighbour's body stay out: on
    rendered crowds this separates people whose boxes hold mostly floor. Without them (or when the
    shoulders and hips are unsure) the parts are three horizontal bands of the box's central 60%; on the
    two-kids clip that put the boy's pieces 0.95 apart and the boy and the girl at most 0.90.
    16 hue x 4 saturation bins per part.

    Args:
        image: (H, W, 3) uint8 BGR frame.
        box: (4,) x1 y1 x2 y2 pixels.
        keypoints: (17, 2) COCO-17 pixels, or None.
        scores: (17,) their confidences in [0, 1] (all trusted when None).

    Returns:
        (192,) float32 of unit length (square-rooted histograms, so the dot product of two descriptors is the
        Bhattacharyya coefficient of their histograms), or None for a box with no pixels in the frame.
    """
    h, w = image.shape[:2]
    x1, y1, x2, y2 = np.asarray(box, np.float64)
    bx1, bx2 = int(np.clip(x1, 0, w)), int(np.clip(np.ceil(x2), 0, w))
    by1, by2 = int(np.clip(y1, 0, h)), int(np.clip(np.ceil(y2), 0, h))
    if bx2 - bx1 < 2 or by2 - by1 < 6:
        return None
    masks = None
    if keypoints is not None:
        sure = np.isfinite(keypoints).all(axis=1) & (np.ones(17, bool) if scores is None else scores >= 0.3)
        if sure[[5, 6, 11, 12]].all():
            masks = _part_masks(keypoints, sure, (bx1, by1, bx2, by2))
    if masks is None:  # bands of the central 60% of the width: the sides of a box are mostly background
        bx1, bx2 = int(np.clip(x1 + 0.2 * (x2 - x1), 0, w)), int(np.clip(np.ceil(x2 - 0.2 * (x2 - x1)), 0, w))
        if bx2 - bx1 < 2:
            return None
        masks = [np.zeros((48, 16), np.uint8) for _ in range(3)]
        for k, mask in enumerate(masks):
            mask[16 * k:16 * (k + 1)] = 1
    size = (masks[0].shape[1], masks[0].shape[0])
    hsv = cv2.cvtColor(cv2.resize(image[by1:by2, bx1:bx2], size, interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2HSV)
    parts = []
    for mask in masks:
        hist = cv2.calcHist([hsv], [0, 1], mask, [16, 4], [0, 180, 0, 256]).ravel()
        parts.append(np.sqrt(hist / max(hist.sum(), 1e-9)))
    total = np.concatenate(parts)
    return (total / max(float(np.linalg.norm(total)), 1e-9)).astype(np.float32)


_APPEARANCE_HEIGHT = 64  # pixels: people are described at this height (small people are not upscaled much)


def _part_masks(keypoints: np.ndarray, sure: np.ndarray, window: tuple[int, int, int, int]) -> list[np.ndarray]:
    """Head, upper-body and leg masks (uint8) of a person inside ``window`` (x1 y1 x2 y2 px), scaled so the
    window is ``_APPEARANCE_HEIGHT`` pixels tall."""
    x1, y1, x2, y2 = window
    scale = _APPEARANCE_HEIGHT / max(y2 - y1, 1)
    size = (max(2, round((x2 - x1) * scale)), _APPEARANCE_HEIGHT)
    pts = np.round((np.nan_to_num(keypoints) - (x1, y1)) * scale).astype(np.int32)
    thick = max(2, round(0.06 * _APPEARANCE_HEIGHT))

    def limbs(chains):
        mask = np.zeros(size[::-1], np.uint8)
        for chain in chains:
            for a, b in zip(chain, chain[1:]):
                if sure[a] and sure[b]:
                    cv2.line(mask, tuple(map(int, pts[a])), tuple(map(int, pts[b])), 1, thick)
        return mask

    head = np.zeros(size[::-1], np.uint8)
    if sure[0]:
        cv2.circle(head, tuple(map(int, pts[0])), thick, 1, -1)
    upper = limbs([(5, 7, 9), (6, 8, 10)])
    cv2.fillConvexPoly(upper, cv2.convexHull(pts[[5, 6, 12, 11]]), 1)
    return [head, upper, limbs([(11, 13, 15), (12, 14, 16)])]


def contacts(boxes: np.ndarray, overlap: float) -> np.ndarray:
    """Which boxes touch: their intersection covers at least ``overlap`` of the smaller one.

    Args:
        boxes: (N, 4) x1 y1 x2 y2 pixels.
        overlap: Fraction in (0, 1].

    Returns:
        (N, N) bool, symmetric, False on the diagonal.
    """
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    wh = np.clip(np.minimum(b[:, None, 2:], b[None, :, 2:]) - np.maximum(b[:, None, :2], b[None, :, :2]), 0, None)
    area = np.prod(np.clip(b[:, 2:] - b[:, :2], 0, None), axis=1)
    touching = wh[..., 0] * wh[..., 1] >= overlap * np.maximum(np.minimum(area[:, None], area[None]), 1e-9)
    np.fill_diagonal(touching, False)
    return touching


def _contact_events(seen: dict, max_gap: int, overlap: float) -> list[tuple[int, int, int, int]]:
    """(first frame, last frame, id, larger id) of every contact, in time order; runs of contact frames
    that are at most ``max_gap`` apart are one contact."""
    events = []
    for (a, b), frames in _touching(seen, max_gap, overlap).items():
        frames = np.array(frames, np.int64)
        for run in np.split(frames, np.flatnonzero(np.diff(frames) - 1 > max_gap) + 1):
            events.append((int(run[0]), int(run[-1]), a, b))
    return sorted(events)


def _touching(seen: dict, max_gap: int, overlap: float) -> dict[tuple[int, int], list[int]]:
    """Frames in which two ids' boxes touch (see :func:`contacts`), per pair of ids (smaller id first).

    An id missing for at most ``max_gap`` frames keeps its last box meanwhile: a person hidden behind
    another is in contact with them, though no detector box shows it.
    """
    boxes: dict[int, list[tuple[int, np.ndarray]]] = defaultdict(list)
    for track_id, sightings in seen.items():
        frames = sorted(sightings)
        for f, following in zip(frames, frames[1:] + [frames[-1] + max_gap + 1]):
            for g in range(f, min(following, f + max_gap + 1)):
                boxes[g].append((track_id, sightings[f][3]))
    touching: dict[tuple[int, int], list[int]] = defaultdict(list)
    for frame in sorted(boxes):
        ids = [i for i, _ in boxes[frame]]
        for a, b in zip(*np.nonzero(np.triu(contacts(np.stack([b for _, b in boxes[frame]]), overlap), 1))):
            touching[min(ids[a], ids[b]), max(ids[a], ids[b])].append(frame)
    return touching


def _move_after(table: dict, moves: list[tuple[int, int, int]]) -> None:
    """For each (source id, target id, frame), give the source's entries after that frame to the target;
    ids left empty go.

    Every moving stretch is taken out before any is put back: in a swap each goes to the other id.
    """
    taken = [{f: v for f, v in table.get(source, {}).items() if f > after} for source, _, after in moves]
    for source, _, after in moves:
        table[source] = {f: v for f, v in table.get(source, {}).items() if f <= after}
    for (_, target, _), moved in zip(moves, taken):
        table.setdefault(target, {}).update(moved)
    for track_id in [k for k, v in table.items() if not v]:
        del table[track_id]


def _swap_frame(seen: dict, a: int, b: int, start: int, end: int) -> int:
    """The last frame before the tracker swapped ids ``a`` and ``b`` during a contact: the cut after which
    exchanging their boxes makes both paths smoothest (least total movement of their box centres)."""
    def centre(track_id: int, frame: int) -> np.ndarray | None:
        box = seen[track_id].get(frame)
        return None if box is None else (box[3][:2] + box[3][2:]) / 2

    def movement(cut: int) -> float:
        total = 0.0
        for first, second in ((a, b), (b, a)):
            path = [centre(first if f <= cut else second, f) for f in range(start - 1, end + 2)]
            path = [c for c in path if c is not None]
            total += sum(float(np.linalg.norm(q - p)) for p, q in zip(path, path[1:]))
        return total

    cuts = range(start - 1, end + 1)
    costs = [movement(cut) for cut in cuts]
    return cuts[int(np.argmin(costs))]


def _mean_look(looks: dict, frames: list[int]) -> np.ndarray | None:
    """Mean appearance (unit length) over some frames; None when none of them was described."""
    chosen = [looks[f] for f in frames if f in looks]
    if not chosen:
        return None
    mean = np.mean(chosen, axis=0)
    return mean / max(float(np.linalg.norm(mean)), 1e-9)


def _heading_error(seen_a: dict, a_frames: list[int], seen_b: dict, b_frames: list[int]) -> float:
    """Distance, in box heights, from where ``a``'s box centre was heading (a straight line fitted over
    ``a_frames``, carried on) to ``b``'s box centre at its first frame in ``b_frames``."""
    boxes = np.stack([seen_a[f][3] for f in a_frames])
    centres, height = (boxes[:, :2] + boxes[:, 2:]) / 2, float(boxes[-1, 3] - boxes[-1, 1])
    start = b_frames[0]
    if len(a_frames) > 1:
        predicted = np.array([np.polyval(np.polyfit(a_frames, centres[:, k], 1), start) for k in range(2)])
    else:
        predicted = centres[-1]
    first = seen_b[start][3]
    return float(np.linalg.norm((first[:2] + first[2:]) / 2 - predicted) / max(height, 1.0))


@dataclass(frozen=True)
class _Piece:
    """A stretch of one tracker id's sightings: the unit that re-identification joins."""

    tracker_id: int
    frames: np.ndarray


class TrackBuilder:
    """Collects per-frame sightings by track id, then builds tracks.

    Args:
        config: Gap, length, contact and re-identification rules.
    """

    def __init__(self, config: TrackConfig | None = None) -> None:
        self.config = config or TrackConfig()
        # id -> frame -> (keypoints (17, 2), scores (17,), person score, box (4,))
        self._seen: dict[int, dict[int, tuple[np.ndarray, np.ndarray, float, np.ndarray]]] = defaultdict(dict)
        self._looks: dict[int, dict[int, np.ndarray]] = defaultdict(dict)  # id -> frame -> appearance (192,)

    def add(self, frame_index: int, detections: Detections, keypoints: np.ndarray, scores: np.ndarray,
            looks: list[np.ndarray | None] | None = None) -> None:
        """Record one frame's people; those with track id -1 are ignored.

        Args:
            frame_index: 0-based frame number.
            detections: The frame's boxes with track ids (N people).
            keypoints: (N, 17, 2) COCO-17 pixels.
            scores: (N, 17) joint confidences in [0, 1].
            looks: N appearance descriptors (:func:`appearance`; None entries allowed) for re-identification.
        """
        n = len(detections)
        if np.shape(keypoints) != (n, 17, 2) or np.shape(scores) != (n, 17):
            raise ShapeError(f"frame {frame_index}: need keypoints ({n}, 17, 2) and scores ({n}, 17), got "
                             f"{np.shape(keypoints)} and {np.shape(scores)}")
        for i, track_id in enumerate(detections.track_ids.tolist()):
            if track_id < 0:
                continue
            old = self._seen[track_id].get(frame_index)
            # A tracker gives one box per id per frame; should two arrive, keep the more confident.
            if old is None or detections.scores[i] > old[2]:
                self._seen[track_id][frame_index] = (np.asarray(keypoints[i], np.float32),
                                                     np.asarray(scores[i], np.float32), float(detections.scores[i]),
                                                     np.asarray(detections.boxes[i], np.float64))
                if looks is not None and looks[i] is not None:
                    self._looks[track_id][frame_index] = looks[i]

    def build(self, num_frames: int, fps: float) -> list[Track]:
        """Turn the sightings into tracks.

        Args:
            num_frames: Frames in the video; sightings must lie in [0, num_frames).
            fps: Frame rate, Hz (turns the seconds in the config into frames).

        Returns:
            Tracks sorted by id; each has consecutive frames except where re-identification joined pieces
            more than ``max_gap_s`` apart.
        """
        if not fps > 0:
            raise ShapeError(f"fps must be positive, got {fps}")
        max_gap = int(np.floor(self.config.max_gap_s * fps + 1e-9))
        min_len = int(np.ceil(self.config.min_length_s * fps - 1e-9))
        seen, looks = self._untangled(max_gap, fps)
        pieces: list[_Piece] = []
        for track_id, sightings in seen.items():
            frames = np.array(sorted(sightings), np.int64)
            if frames[0] < 0 or frames[-1] >= num_frames:
                raise ShapeError(f"track {track_id}: frame {frames[-1] if frames[-1] >= 0 else frames[0]} "
                                 f"outside [0, {num_frames})")
            splits = np.flatnonzero(np.diff(frames) - 1 > max_gap) + 1
            pieces += [_Piece(track_id, p) for p in np.split(frames, splits) if p[-1] - p[0] + 1 >= max(min_len, 1)]
        chains = self._relink(pieces, looks, fps)
        # The tracker's id goes to its earliest chain; other chains get new ids above all the tracker's, in
        # order of start frame (so the ids do not depend on dict order).
        chains.sort(key=lambda chain: (int(pieces[chain[0]].frames[0]), pieces[chain[0]].tracker_id))
        next_id, used, tracks = max(seen, default=0) + 1, set(), []
        for chain in chains:
            track_id = pieces[chain[0]].tracker_id
            if track_id in used:
                track_id, next_id = next_id, next_id + 1
            used.add(track_id)
            merged = {f: seen[pieces[i].tracker_id][f] for i in chain for f in pieces[i].frames.tolist()}
            tracks.append(self._chain_track(track_id, merged, max_gap))
        return sorted(tracks, key=lambda t: t.track_id)

    def _untangled(self, max_gap: int, fps: float) -> tuple[dict, dict]:
        """Copies of the sightings and looks with identities put right after each contact of two people.

        At a contact the two people's last second before it is compared with the first second of every id
        that goes on after it (their own ids, and ids born during it): the pairing that fits best by
        appearance and motion replaces the tracker's when it fits clearly better.
        """
        seen = {k: dict(v) for k, v in self._seen.items()}
        looks = {k: dict(v) for k, v in self._looks.items()}
        if not self.config.untangle:
            return seen, looks
        span, fresh = max(2, int(round(fps))), max(seen, default=0) + 1
        events = _contact_events(seen, max_gap, self.config.contact_overlap)
        while events:
            start, end, a, b = done = events.pop(0)
            rematched = self._rematch(seen, looks, start, end, (a, b), span, max_gap)
            # A plain swap moves from the frame the tracker swapped at; an id born during the contact moves
            # whole; otherwise the two people's own ids move from the contact's end on.
            cut = _swap_frame(seen, a, b, start, end) if sorted(rematched) == [(a, b), (b, a)] else end
            moves = []
            for source, target in rematched:
                if target is None:
                    target, fresh = fresh, fresh + 1
                moves.append((source, target, cut if source in (a, b) else start))
            if moves:
                for table in (seen, looks):
                    _move_after(table, moves)
                # Contacts after a change are found anew: the ids and boxes there are not what they were.
                events = [e for e in _contact_events(seen, max_gap, self.config.contact_overlap) if e > done]
        return seen, looks

    def _rematch(self, seen: dict, looks: dict, start: int, end: int, people: tuple[int, int], span: int,
                 max_gap: int) -> list[tuple[int, int | None]]:
        """The id changes one contact calls for: (id whose frames move, id they move to, or None for a new
        id); empty when the tracker's pairing stands. Which frames move is the caller's choice."""
        before = {p: [f for f in sorted(seen[p]) if start - span <= f < start] for p in people}
        if not all(before.values()):
            return []
        # Who can continue them: their own ids after the contact, and ids born during it or just after.
        born = [i for i, s in seen.items() if i not in people and start < min(s) <= end + max_gap + 1]
        after = {i: [f for f in sorted(seen[i]) if end < f <= end + span] for i in (*people, *born)}
        after = {i: frames for i, frames in after.items() if frames}

        def fit(person: int, successor: int) -> float | None:
            error = _heading_error(seen[person], before[person], seen[successor], after[successor])
            if person != successor and error > self.config.link_distance:
                return None
            look_a = _mean_look(looks.get(person, {}), before[person])
            look_b = _mean_look(looks.get(successor, {}), after[successor])
            similarity = float(look_a @ look_b) if look_a is not None and look_b is not None else 0.0
            if person != successor and similarity < self.config.link_similarity:
                return None
            return similarity - self.config.motion_weight * min(error, 2.0)

        def total(pairing: dict[int, int]) -> float | None:
            scores = [fit(p, q) for p, q in pairing.items()]
            return None if any(v is None for v in scores) else sum(scores)

        keep = {p: p for p in people if p in after}
        options = [{p: q for p, q in zip(people, pair) if q is not None}
                   for pair in itertools.product([None, *after], repeat=2)]
        scored = [(score, pairing) for pairing in options if len(set(pairing.values())) == len(pairing)
                  and pairing != keep and (score := total(pairing)) is not None]
        if not scored:
            return []
        best_score, best = max(scored, key=lambda item: item[0])
        kept_score = total(keep)
        if kept_score is not None and best_score <= kept_score + self.config.swap_margin:
            return []
        taken = set(best.values())
        # An own id left without its successor goes on under a new id (its owner took someone else's).
        orphans = [(p, None) for p in people if p in after and p not in taken]
        return orphans + [(q, p) for p, q in best.items() if p != q]

    def _relink(self, pieces: list[_Piece], looks: dict, fps: float) -> list[list[int]]:
        """Group pieces into people by appearance; chains of piece indices, in time order."""
        n, window = len(pieces), self.config.reid_max_gap_s * fps
        after, before = [-1] * n, [-1] * n
        means = [_mean_look(looks.get(p.tracker_id, {}), p.frames.tolist()) for p in pieces]
        pairs = []
        for a in range(n):
            for b in range(n):
                gap = pieces[b].frames[0] - pieces[a].frames[-1]
                if 0 < gap <= window and means[a] is not None and means[b] is not None:
                    similarity = float(means[a] @ means[b])
                    if similarity >= self.config.reid_similarity:
                        pairs.append((similarity, a, b))
        # A chain only grows at its ends and pieces are joined forward in time, so chains never overlap.
        for _, a, b in sorted(pairs, reverse=True):
            if after[a] < 0 and before[b] < 0:
                after[a], before[b] = b, a
        chains = []
        for head in (i for i in range(n) if before[i] < 0):
            chain = [head]
            while after[chain[-1]] >= 0:
                chain.append(after[chain[-1]])
            chains.append(chain)
        return chains

    def _chain_track(self, track_id: int, seen: dict, max_gap: int) -> Track:
        """One track from joined sightings: gaps up to ``max_gap`` frames interpolated, longer ones left absent."""
        frames = np.array(sorted(seen), np.int64)
        runs = np.split(frames, np.flatnonzero(np.diff(frames) - 1 > max_gap) + 1)
        parts = [self._piece(track_id, run, seen) for run in runs]
        if len(parts) == 1:
            return parts[0]
        return Track(track_id, *(np.concatenate([getattr(p, f) for p in parts])
                                 for f in ("frames", "keypoints", "scores", "interpolated")))

    def _piece(self, track_id: int, seen_frames: np.ndarray, seen: dict) -> Track:
        """One track over ``seen_frames[0] .. seen_frames[-1]``, short gaps filled by interpolation."""
        frames = np.arange(seen_frames[0], seen_frames[-1] + 1, dtype=np.int64)
        rows = seen_frames - frames[0]
        keypoints = np.full((len(frames), 17, 2), np.nan, np.float32)
        scores = np.zeros((len(frames), 17), np.float32)
        keypoints[rows] = np.stack([seen[f][0] for f in seen_frames.tolist()])
        scores[rows] = np.stack([seen[f][1] for f in seen_frames.tolist()])
        interpolated = np.ones(len(frames), bool)
        interpolated[rows] = False
        missing = np.flatnonzero(interpolated)
        if len(missing):
            # np.interp per coordinate: each missing row blends the sightings just before and after it.
            flat_kp, flat_sc = keypoints.reshape(len(frames), -1), scores
            for col in range(flat_kp.shape[1]):
                flat_kp[missing, col] = np.interp(missing, rows, flat_kp[rows, col])
            for col in range(17):
                flat_sc[missing, col] = np.interp(missing, rows, scores[rows, col]) * self.config.interpolated_score
        return Track(track_id, frames, keypoints, scores, interpolated)


def build_tracks(per_frame: Iterable[tuple[int, Detections, np.ndarray, np.ndarray]], num_frames: int,
                 fps: float, config: TrackConfig | None = None) -> list[Track]:
    """Build tracks from per-frame sightings in one call.

    Args:
        per_frame: (frame_index, detections with track ids (N), keypoints (N, 17, 2) px, scores (N, 17)).
        num_frames: Frames in the video.
        fps: Frame rate, Hz.
        config: Gap, length and score rules.

    Returns:
        Tracks sorted by id (see the module docstring for the rules).
    """
    builder = TrackBuilder(config)
    for frame_index, detections, keypoints, scores in per_frame:
        builder.add(frame_index, detections, keypoints, scores)
    return builder.build(num_frames, fps)


def every_joint_seen(track: Track) -> bool:
    """Whether each run of a track (its frames without a gap) has every joint at least once: what gap filling,
    and so lifting, needs."""
    seen = np.isfinite(track.keypoints).all(axis=-1)
    runs = np.split(np.arange(len(track)), np.flatnonzero(np.diff(track.frames) > 1) + 1)
    return all(seen[run].any(axis=0).all() for run in runs)
