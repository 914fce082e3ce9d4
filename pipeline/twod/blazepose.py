"""MediaPipe BlazePose as a multi-person COCO-17 backend (the offline default of stage 3).

BlazePose's bundled model (``mediapipe==0.10.21``, ``model_complexity=1``) finds one person per call; this
module finds several by painting over each person found and searching again (the ``mediapipe`` backend).
The ``offline`` backend's keypointer, which gives the landmark model our detector's boxes instead, is
:mod:`pipeline.twod.blazepose_roi`. The landmark-to-COCO mapping
lives in :mod:`pipeline.keypoints` with the other keypoint-set mappings.
"""

from __future__ import annotations

import contextlib
import os
import threading
from dataclasses import dataclass

import cv2
import numpy as np

from pipeline.errors import ConfigError, ModelError, ShapeError
from pipeline.keypoints import PersonKeypoints, mediapipe_to_coco
from pipeline.skeleton import COCO17

_GREY = (128, 128, 128)

@dataclass(frozen=True)
class MediaPipeConfig:
    """Settings of the MediaPipe multi-person search (BlazePose finds one person per call).

    Attributes:
        max_people: Most people looked for per frame (each costs one BlazePose call, plus one that finds nobody).
        min_detection_confidence: BlazePose person-detector threshold.
        min_person_score: People whose mean COCO joint confidence is lower are dropped (masking leftovers).
        max_lying_aspect: A find whose box is more than this many times wider than tall and whose torso is
            closer to horizontal than vertical is dropped as a hallucination (0 keeps everything).
        box_expand: A person's box is the landmarks' bounding box grown by this fraction of its size on every
            side (it is the Detections box, and the area painted grey when mask="box").
        mask: How a found person is hidden from the next call: "silhouette" (BlazePose's segmentation, dilated;
            leaves people behind or beside them visible) or "box" (their whole box).
        mask_fill: What a silhouette is painted with: "background" (inpainted from the surroundings) or "grey"
            (whose person-shaped outline BlazePose tends to find again).
        mask_dilate: Silhouette dilation radius as a fraction of the person's box height.
        duplicate_overlap: A new person with more than this fraction of keypoints (or most of their face) on
            painted-over pixels is a leftover of someone already found and is dropped (as is one with an
            earlier person's keypoints).
        duplicate_iou: A new person whose box has more IoU than this with an earlier one's is dropped.
        pad: Grey border added on every side before each call, as a fraction of the image's width / height.
        outside_score: Cap on the confidence of landmarks outside the image (their position is a guess).
        refine_crops: Re-run BlazePose on a square crop around each person found (resized to ``refine_size``),
            keeping the result when it is the same person. Measured on the two-kids and running clips: keypoint
            jitter (median acceleration / body height) down 25% and 19%, ~25% more time.
        refine_below: Refine only people whose box is shorter than this fraction of the image height (1: all).
        refine_size: Side of the resized crop, pixels.
    """

    max_people: int = 4
    min_detection_confidence: float = 0.5
    min_person_score: float = 0.3
    max_lying_aspect: float = 1.2
    box_expand: float = 0.15
    mask: str = "silhouette"
    mask_fill: str = "background"
    mask_dilate: float = 0.015
    duplicate_overlap: float = 0.6
    duplicate_iou: float = 0.6
    pad: float = 0.1
    outside_score: float = 0.1
    refine_crops: bool = True
    refine_below: float = 1.0
    refine_size: int = 512

    def __post_init__(self) -> None:
        if self.mask not in ("silhouette", "box") or self.mask_fill not in ("background", "grey"):
            raise ConfigError(f"MediaPipeConfig: mask must be 'silhouette' or 'box' and mask_fill 'background' or "
                              f"'grey', got {self.mask!r}, {self.mask_fill!r}")
        if self.max_people < 1 or self.refine_size < 64 or not 0 <= self.outside_score <= 1:
            raise ConfigError(f"bad MediaPipeConfig: max_people={self.max_people}, refine_size={self.refine_size}, "
                              f"outside_score={self.outside_score}")


def landmarks_to_person(landmarks: np.ndarray, width: int, height: int,
                        config: MediaPipeConfig | None = None) -> PersonKeypoints:
    """Turn one BlazePose result into COCO-17 keypoints, joint scores, a box and a person score.

    Args:
        landmarks: (33, 3) [x px, y px, confidence in [0, 1]] in a ``width`` x ``height`` image.
        width, height: Image size, pixels.
        config: Supplies ``box_expand`` and ``outside_score``.

    Returns:
        The person; landmarks outside the image get at most ``outside_score``.
    """
    config = config or MediaPipeConfig()
    landmarks = np.asarray(landmarks, np.float64)
    if landmarks.shape != (33, 3):
        raise ShapeError(f"landmarks must be (33, 3), got {landmarks.shape}")
    xy, conf = landmarks[:, :2], np.clip(landmarks[:, 2], 0.0, 1.0)
    outside = (xy[:, 0] < 0) | (xy[:, 0] >= width) | (xy[:, 1] < 0) | (xy[:, 1] >= height)
    conf = np.where(outside, np.minimum(conf, config.outside_score), conf)
    size = (width, height)
    lo, hi = np.clip(xy.min(axis=0), 0, size), np.clip(xy.max(axis=0), 0, size)
    pad = config.box_expand * (hi - lo)  # landmarks stop at the eyes and heels: grow to cover hair and feet
    box = np.concatenate([np.maximum(lo - pad, 0), np.minimum(hi + pad, size)]).astype(np.float32)
    scores = mediapipe_to_coco(conf[:, None])[:, 0].astype(np.float32)
    return PersonKeypoints(mediapipe_to_coco(xy).astype(np.float32), scores, box, float(scores.mean()))


def pixel_landmarks(pose_landmarks, width: int, height: int) -> np.ndarray:
    """(33, 3) [x px, y px, confidence] from a BlazePose result's normalised landmarks."""
    landmarks = np.empty((33, 3), np.float64)
    for i, lm in enumerate(pose_landmarks.landmark):
        # presence is unset (0) in the solutions API of 0.10.x; use it only where it is reported.
        presence = lm.presence if lm.HasField("presence") else 1.0
        landmarks[i] = lm.x * width, lm.y * height, lm.visibility * presence
    return landmarks


def box_region(box: np.ndarray, scale: float) -> tuple[float, float, float, float]:
    """(x centre px, y centre px, side px, rotation rad) of the upright square, ``scale`` times the box's
    longer side, centred on a box (x1 y1 x2 y2 px)."""
    x1, y1, x2, y2 = (float(v) for v in box)
    return (x1 + x2) / 2, (y1 + y2) / 2, max(scale * max(x2 - x1, y2 - y1), 1.0), 0.0


def square_crop(image: np.ndarray, box: np.ndarray, scale: float, size: int) -> tuple[np.ndarray, np.ndarray]:
    """A square crop centred on a box, its side ``scale`` times the box's longer side, resized to ``size``.

    The aspect is kept (people are never stretched) and the area outside the image is grey.

    Args:
        image: (H, W, 3) uint8.
        box: (4,) x1 y1 x2 y2 pixels.
        scale: Crop side over the box's longer side (room around the person for BlazePose's detector).
        size: Side of the returned crop, pixels.

    Returns:
        crop (size, size, 3) uint8, and the (2, 3) affine from crop pixels back to image pixels.
    """
    cx, cy, side, _ = box_region(box, scale)
    s = size / side
    x0, y0 = cx - side / 2, cy - side / 2
    crop = cv2.warpAffine(image, np.array([[s, 0, -s * x0], [0, s, -s * y0]]), (size, size),
                          flags=cv2.INTER_LINEAR, borderValue=_GREY)
    return crop, np.array([[1 / s, 0, x0], [0, 1 / s, y0]])


def _background_fill(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Inpaint ``mask`` from the colours around it (at reduced resolution: the fill only has to be plausible).

    A flat grey silhouette still has a person's outline, which BlazePose's detector finds again.

    Args:
        image: (H, W, 3) uint8.
        mask: (H, W) bool, the pixels to replace.

    Returns:
        (H, W, 3) uint8 image whose pixels under ``mask`` hold the fill (others are unspecified).
    """
    h, w = mask.shape
    scale = min(1.0, 320.0 / max(h, w))
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    small = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    small_mask = (cv2.resize(mask.astype(np.uint8), size, interpolation=cv2.INTER_AREA) > 0).astype(np.uint8)
    fill = cv2.inpaint(small, small_mask, 3, cv2.INPAINT_TELEA)
    return cv2.resize(fill, (w, h), interpolation=cv2.INTER_LINEAR)


def _better(refined: PersonKeypoints, first: PersonKeypoints) -> bool:
    """Whether a crop's result should replace the whole-frame one (rules from inspecting the two-kids clip).

    Kept: the same person (IoU >= 0.3) at about the same height (a collapsed, squashed skeleton is the
    typical failure), and either agreeing closely (IoU >= 0.8: the crop polishes) or more confident (the
    whole-frame result was wrong, e.g. one child's head on another's legs).
    """
    iou = _iou(refined.box, first.box)
    ratio = (refined.box[3] - refined.box[1]) / max(float(first.box[3] - first.box[1]), 1e-6)
    return iou >= 0.3 and 0.75 <= ratio <= 1 / 0.75 and (iou >= 0.8 or refined.score > first.score)


def _body_region(keypoints: np.ndarray, box: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Pixels near a person's skeleton: thick bones, the torso and the head. Returns (H, W) bool.

    BlazePose's segmentation marks every person inside its region of interest; intersecting it with this
    keeps a neighbour's body from being painted over with the person found.
    """
    canvas = np.zeros(shape, np.uint8)
    height = float(box[3] - box[1])
    pts = np.round(np.nan_to_num(keypoints)).astype(np.int32)
    for parent, child in COCO17.bones:
        cv2.line(canvas, tuple(map(int, pts[parent])), tuple(map(int, pts[child])), 1, max(3, int(0.15 * height)))
    cv2.fillConvexPoly(canvas, cv2.convexHull(pts[[5, 6, 12, 11]]), 1)          # shoulders and hips
    cv2.circle(canvas, tuple(map(int, pts[0])), max(3, int(0.12 * height)), 1, -1)  # head and hair round the nose
    return canvas > 0


def _area(box: np.ndarray) -> float:
    """Area of an x1 y1 x2 y2 box, square pixels (at least a tiny positive number)."""
    return max(float((box[2] - box[0]) * (box[3] - box[1])), 1e-6)


def _iou(box: np.ndarray, other: np.ndarray) -> float:
    """Intersection over union of two x1 y1 x2 y2 boxes."""
    iw = max(0.0, min(box[2], other[2]) - max(box[0], other[0]))
    ih = max(0.0, min(box[3], other[3]) - max(box[1], other[1]))
    return float(iw * ih / (_area(box) + _area(other) - iw * ih))


_SILENCE_LOCK = threading.Lock()
_silenced = {"depth": 0, "saved": -1}


@contextlib.contextmanager
def native_stderr_silenced():
    """Point file descriptor 2 at /dev/null for a moment.

    MediaPipe's C++ graph logs INFO/WARNING lines (TFLite delegate, NORM_RECT) straight to fd 2 when it
    starts and on its first detections; Python-level logging settings cannot reach them. fd 2 belongs to
    the whole process, so overlapping uses (several clips in threads) share one redirection: the first
    makes it and the last undoes it; otherwise a later one could save /dev/null as "the real stderr".
    """
    with _SILENCE_LOCK:
        if _silenced["depth"] == 0:
            _silenced["saved"] = os.dup(2)
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, 2)
            os.close(null)
        _silenced["depth"] += 1
    try:
        yield
    finally:
        with _SILENCE_LOCK:
            _silenced["depth"] -= 1
            if _silenced["depth"] == 0:
                os.dup2(_silenced["saved"], 2)
                os.close(_silenced["saved"])


class MediaPipeGraphs:
    """What the BlazePose users share: a context manager that releases their graphs, and quiet first calls.

    MediaPipe logs one-off warnings straight to fd 2 with its first results; the first calls run muted.
    """

    _quiet_calls = 5

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:  # pragma: no cover - each subclass releases its graphs
        raise NotImplementedError

    def process_quietly(self, graph, inputs):
        """``graph.process(inputs)``, with fd 2 muted for the first calls."""
        if self._quiet_calls > 0:
            self._quiet_calls -= 1
            with native_stderr_silenced():
                return graph.process(inputs)
        return graph.process(inputs)


class MediaPipePose(MediaPipeGraphs):
    """Multi-person COCO-17 keypoints from MediaPipe BlazePose by iterative masking.

    BlazePose returns the single most prominent person. After each call that person is painted over (their
    silhouette from BlazePose's segmentation output, inpainted from the surroundings, or their box in grey)
    and BlazePose runs again, until nobody is found or ``max_people`` are. Use as a context manager (or
    call :meth:`close`) to release the graph.
    """

    def __init__(self, config: MediaPipeConfig | None = None) -> None:
        try:
            import mediapipe as mp  # deferred: slow to import, only the offline backend needs it
        except ImportError as exc:  # pragma: no cover - mediapipe is a declared dependency
            raise ModelError(f"the MediaPipe 2D backend needs the mediapipe package ({exc})") from None
        self.config = config or MediaPipeConfig()
        # model_complexity=1 is the only BlazePose model in the wheel; 0 and 2 would be downloaded.
        with native_stderr_silenced():
            self._pose = mp.solutions.pose.Pose(static_image_mode=True, model_complexity=1,
                                                enable_segmentation=self.config.mask == "silhouette",
                                                min_detection_confidence=self.config.min_detection_confidence)
            # The first search of each frame runs in video mode: BlazePose then follows its person from the
            # previous frame's landmarks instead of re-detecting, which misses far fewer frames.
            self._video = mp.solutions.pose.Pose(static_image_mode=False, model_complexity=1,
                                                 enable_segmentation=self.config.mask == "silhouette",
                                                 min_detection_confidence=self.config.min_detection_confidence)

    def close(self) -> None:
        """Release the MediaPipe graph (idempotent)."""
        if self._pose is not None:
            self._pose.close()
            self._video.close()
            self._pose = None

    def estimate(self, image_bgr: np.ndarray, exclude=()) -> list[PersonKeypoints]:
        """Find up to ``max_people`` people and their COCO-17 keypoints.

        Args:
            image_bgr: (H, W, 3) uint8 BGR image.
            exclude: Boxes (x1 y1 x2 y2 px) painted grey before the search (people handled elsewhere).

        Returns:
            People in the order found (most prominent first).
        """
        if self._pose is None:
            raise ModelError("MediaPipePose was closed")
        if image_bgr.ndim != 3 or image_bgr.shape[2] != 3 or image_bgr.dtype != np.uint8:
            raise ShapeError(f"image must be (H, W, 3) uint8 BGR, got {image_bgr.shape} {image_bgr.dtype}")
        work = cv2.cvtColor(image_bgr, cv2.COLOR_BGR2RGB)
        removed = np.zeros(work.shape[:2], bool)  # pixels already painted over
        for box in exclude:
            self._remove(work, removed, np.asarray(box, np.float64), None)
        people: list[PersonKeypoints] = []
        for attempt in range(2 * self.config.max_people):  # rejected finds also cost a call; bound the loop
            found = self._find(work, video=attempt == 0)
            if found is None and attempt == 0 and self.config.pad > 0:
                found = self._find(work, pad=False)  # the detector is fickle: a frame with nobody gets a 2nd look
            if found is None:
                break
            person, silhouette = self._refine(work, *found) if self.config.refine_crops else found
            duplicate = self._is_duplicate(removed, person, people)
            self._remove(work, removed, person.box, found[1] if silhouette is None else silhouette,
                         person.keypoints)
            if not duplicate and person.score >= self.config.min_person_score and self._plausible(person):
                people.append(person)
                if len(people) == self.config.max_people:
                    break
        return people

    def _plausible(self, person: PersonKeypoints) -> bool:
        """False for a find that is wider than tall with a near-horizontal torso.

        BlazePose hallucinates people lying across textured floors and across areas painted over; real
        people in such a pose are rare in the clips this tool is for. ``max_lying_aspect`` <= 0 keeps all.
        """
        limit = self.config.max_lying_aspect
        if limit <= 0:
            return True
        x1, y1, x2, y2 = person.box
        kp = person.keypoints
        torso = (kp[5] + kp[6]) / 2 - (kp[11] + kp[12]) / 2  # mid-hips to mid-shoulders
        lying = abs(torso[0]) > abs(torso[1])  # more than 45 degrees from vertical
        return not (lying and (x2 - x1) > limit * (y2 - y1))

    def _is_duplicate(self, removed: np.ndarray, person: PersonKeypoints, people: list[PersonKeypoints]) -> bool:
        """Whether ``person`` is an earlier one found again: same keypoints, or standing mostly on removed pixels."""
        for other in people:
            height = max(float(other.box[3] - other.box[1]), 1.0)
            if np.median(np.linalg.norm(person.keypoints - other.keypoints, axis=1)) < 0.1 * height:
                return True
            # Two people's boxes rarely coincide (one behind the other differ in size); two finds of one do.
            if _iou(person.box, other.box) > self.config.duplicate_iou:
                return True
        h, w = removed.shape
        xy = np.clip(person.keypoints.round().astype(int), 0, (w - 1, h - 1))
        on_removed = removed[xy[:, 1], xy[:, 0]]
        # BlazePose's detector keys on the face, so a real person found later shows theirs: a face (COCO
        # joints 0-4) on painted-over pixels is a phantom made of what is left of someone already found.
        return bool(on_removed.mean() > self.config.duplicate_overlap or on_removed[:5].mean() > 0.5)

    def _remove(self, work: np.ndarray, removed: np.ndarray, box: np.ndarray, silhouette: np.ndarray | None,
                keypoints: np.ndarray | None = None) -> None:
        """Paint a person over in ``work`` and mark the pixels in ``removed``: their silhouette, else their box.

        Args:
            work: (H, W, 3) uint8 RGB image, changed in place.
            removed: (H, W) bool, set where painted.
            box: The person's x1 y1 x2 y2 box, pixels.
            silhouette: (H, W) bool segmentation from BlazePose, or None.
            keypoints: (17, 2) the person's keypoints (limit the silhouette to their body); needed with one.
        """
        if silhouette is None or keypoints is None or not silhouette.any() or self.config.mask == "box":
            h, w = removed.shape
            x1, y1 = max(int(np.floor(box[0])), 0), max(int(np.floor(box[1])), 0)
            x2, y2 = min(int(np.ceil(box[2])), w), min(int(np.ceil(box[3])), h)
            work[y1:y2, x1:x2] = _GREY  # a grey box has no person-like outline
            removed[y1:y2, x1:x2] = True
            return
        # Dilate by a few % of the person's height: the mask's edge misses hair and motion blur.
        radius = max(3, int(self.config.mask_dilate * (box[3] - box[1])))
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
        mask = (cv2.dilate(silhouette.astype(np.uint8), kernel) > 0) & _body_region(keypoints, box, removed.shape)
        work[mask] = _GREY if self.config.mask_fill == "grey" else _background_fill(work, mask)[mask]
        removed |= mask

    def _find(self, rgb: np.ndarray, to_image: np.ndarray | None = None, size: tuple[int, int] | None = None,
              pad: bool = True, video: bool = False) -> tuple[PersonKeypoints, np.ndarray | None] | None:
        """Run BlazePose once on ``rgb``.

        Args:
            rgb: (h, w, 3) uint8 RGB image (the frame, or a crop of it).
            to_image: (2, 3) affine from ``rgb``'s pixels to the frame's; None: ``rgb`` is the frame (padded
                by ``config.pad`` here).
            size: Frame (W, H) when ``rgb`` is a crop.
            pad: Pad the frame (only when ``to_image`` is None).
            video: Use the video-mode graph (it tracks one person from frame to frame).

        Returns:
            (person in frame pixels, (H, W) bool silhouette or None), or None when nobody is found.
        """
        if to_image is None and pad and self.config.pad > 0:
            # A grey border lets BlazePose's detector find people cut by the image edge.
            h, w = rgb.shape[:2]
            px, py = round(self.config.pad * w), round(self.config.pad * h)
            padded = cv2.copyMakeBorder(rgb, py, py, px, px, cv2.BORDER_CONSTANT, value=_GREY)
            return self._find(padded, np.array([[1.0, 0, -px], [0, 1.0, -py]]), (w, h), video=video)
        result = self.process_quietly(self._video if video else self._pose, rgb)
        if result.pose_landmarks is None:
            return None
        h, w = rgb.shape[:2]
        landmarks = pixel_landmarks(result.pose_landmarks, w, h)
        mask = None if result.segmentation_mask is None else (result.segmentation_mask > 0.5).astype(np.uint8)
        if to_image is not None:
            landmarks[:, :2] = landmarks[:, :2] @ to_image[:, :2].T + to_image[:, 2]
            if mask is not None:  # nearest: the mask is binary
                mask = cv2.warpAffine(mask, to_image, size, flags=cv2.INTER_NEAREST)
            w, h = size
        return landmarks_to_person(landmarks, w, h, self.config), None if mask is None else mask > 0

    def _refine(self, rgb: np.ndarray, person: PersonKeypoints,
                silhouette: np.ndarray | None) -> tuple[PersonKeypoints, np.ndarray | None]:
        """Re-run on a square crop around ``person`` resized to ``refine_size``; keep it if it is the same person.

        The crop gives BlazePose's detector the person large and centred, so its region of interest (and the
        landmarks) fit better than from the whole frame.
        """
        h, w = rgb.shape[:2]
        if person.box[3] - person.box[1] > self.config.refine_below * h:
            return person, silhouette
        crop, to_image = square_crop(rgb, person.box, 1.25, self.config.refine_size)
        found = self._find(crop, to_image, (w, h))
        return found if found is not None and _better(found[0], person) else (person, silhouette)
