"""Stage 6, visual side: 2D skeletons drawn on the video, 3D poses in a panel beside or inside it.

:class:`SkeletonAnnotator` draws COCO-17 skeletons on the frame, :class:`pipeline.render.panel3d.Pose3DPanel` every
H36M-17 pose in one perspective view over a floor grid (fixed or orbiting camera), :class:`Renderer` lays
them out into one reused buffer. OpenCV and numpy only, a few ms per 1080p frame: colours, bone tables, grid
geometry and the background are computed once. Settings and the per-person frame are in
:mod:`pipeline.render.style`.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Callable

import cv2
import numpy as np

from pipeline.errors import ShapeError
from pipeline.lifting.world import placed_poses
from pipeline.render.panel3d import Pose3DPanel
from pipeline.render.style import (
    COCO_BONES,
    COCO_SIDES,
    LAYOUTS,
    ONE,
    SHIFT,
    PersonFrame,
    RenderConfig,
    side_shades,
    track_color,
)
from pipeline.types import Track

__all__ = ["LAYOUTS", "PersonFrame", "Pose3DPanel", "RenderConfig", "Renderer", "SkeletonAnnotator", "frames_of",
           "track_color"]


def frames_of(tracks: list[Track], world=None, trail_frames: int = 0) -> Callable[[int], list[PersonFrame]]:
    """Index tracks by frame number once, for the render loop.

    Args:
        tracks: Tracks over the clip (with or without ``poses3d`` / ``root3d``).
        world: The clip's :class:`pipeline.lifting.world.WorldFrame`; with it, placed tracks (``root3d`` known) are
            drawn where they are, with their last ``trail_frames`` pelvis positions as a path on the floor.
        trail_frames: Length of that path, frames.

    Returns:
        ``lookup(frame_index) -> list[PersonFrame]`` (empty where nobody is seen): a dict look-up, no
        scan over tracks. The PersonFrames hold views into the track arrays, not copies.
    """
    # (track, row) pairs, not PersonFrames: a long clip stays small; the few per frame are built on demand.
    index: dict[int, list[tuple[Track, int]]] = defaultdict(list)
    for track in tracks:
        for row, frame in enumerate(track.frames.tolist()):
            index[frame].append((track, row))
    placed = {t.track_id: world.apply(placed_poses(t)) for t in tracks
              if world is not None and t.poses3d is not None and t.root3d is not None}

    def lookup(frame: int) -> list[PersonFrame]:
        people = []
        for t, r in index.get(int(frame), ()):
            pw = placed.get(t.track_id)
            trail = None if pw is None or trail_frames < 2 else pw[max(0, r - trail_frames + 1): r + 1, 0]
            people.append(PersonFrame(t.track_id, t.keypoints[r], t.scores[r],
                                      None if t.poses3d is None else t.poses3d[r], bool(t.interpolated[r]),
                                      None if pw is None else pw[r], trail,
                                      None if t.contacts is None else t.contacts[r]))
        return people

    return lookup


class SkeletonAnnotator:
    """Draws COCO-17 skeletons over a video frame, in place."""

    def __init__(self, config: RenderConfig, width: int, height: int):
        """Args: config: Render settings. width, height: Frame size in pixels."""
        self.config, short = config, min(width, height)
        self.thickness = config.line_thickness or max(1, round(short / 360))
        self.radius = self.thickness + 1
        self.font_scale = max(0.4, short / 1800)
        self.font_thickness = max(1, round(self.font_scale * 2))

    def annotate(self, image: np.ndarray, people: list[PersonFrame]) -> None:
        """Draw every person on ``image``.

        Args:
            image: (H, W, 3) uint8 BGR, modified in place (a view into a larger buffer is fine).
            people: People in this frame.
        """
        for person in people:
            self._draw_person(image, person)

    def _draw_person(self, image: np.ndarray, person: PersonFrame) -> None:
        """Faint parts first (blended), then confident bones and joints, then the id label."""
        kp = np.asarray(person.keypoints2d, np.float64)
        scores = np.asarray(person.scores2d, np.float64)          # NaN compares False: hidden
        visible = np.isfinite(kp).all(axis=1) & (scores >= self.config.hide_score)
        if not visible.any():
            return
        strong = visible & (scores >= self.config.min_score)
        pts = np.round(np.clip(np.where(visible[:, None], kp, 0.0), -1e5, 1e5) * ONE).astype(np.int32)
        a, b = COCO_BONES.T
        bone_strong, shades = strong[a] & strong[b], side_shades(person.track_id)
        faint_bones, faint_joints = visible[a] & visible[b] & ~bone_strong, visible & ~strong
        if faint_bones.any() or faint_joints.any():
            self._draw_faint(image, pts, faint_bones, faint_joints, shades, person.interpolated)
        self._draw_parts(image, pts, bone_strong, strong, shades, person.interpolated, self.thickness)
        if self.config.show_ids:
            self._draw_label(image, kp, visible, person.track_id)

    def _draw_parts(self, image: np.ndarray, pts: np.ndarray, bones: np.ndarray, joints: np.ndarray,
                    shades: tuple, hollow: bool, thickness: int) -> None:
        """Draw the selected bones then joints. pts: (17, 2) int32 in 1/16 px; bones/joints: masks."""
        xy = pts.tolist()                                 # cv2 parses lists faster than array rows
        for (i, j), side in zip(COCO_BONES[bones].tolist(), COCO_SIDES[bones].tolist()):
            cv2.line(image, xy[i], xy[j], shades[side], thickness, cv2.LINE_AA, SHIFT)
        # Interpolated frames get hollow joints: the pose there is a guess, not a detection.
        fill = max(1, thickness // 2) if hollow else -1
        for k in np.flatnonzero(joints).tolist():
            cv2.circle(image, xy[k], self.radius * ONE, shades[0], fill, cv2.LINE_AA, SHIFT)

    def _draw_faint(self, image: np.ndarray, pts: np.ndarray, bones: np.ndarray, joints: np.ndarray,
                    shades: tuple, hollow: bool) -> None:
        """Alpha-blend low-confidence parts, touching only their bounding box (cheap at 1080p)."""
        used = joints.copy()
        used[COCO_BONES[bones].ravel()] = True
        pad = self.radius + self.thickness + 2
        h, w = image.shape[:2]
        x0, y0 = np.maximum(pts[used].min(axis=0) // ONE - pad, 0)
        x1, y1 = np.minimum(pts[used].max(axis=0) // ONE + pad + 1, (w, h))
        if x1 <= x0 or y1 <= y0:
            return
        roi = image[y0:y1, x0:x1]
        layer = roi.copy()
        shifted = pts - np.array([x0, y0], np.int32) * ONE
        self._draw_parts(layer, shifted, bones, joints, shades, hollow, max(1, self.thickness - 1))
        cv2.addWeighted(layer, self.config.faint_alpha, roi, 1.0 - self.config.faint_alpha, 0.0, dst=roi)

    def _draw_label(self, image: np.ndarray, kp: np.ndarray, visible: np.ndarray, track_id: int) -> None:
        """"#id" in a box of the track colour just above the head (or the highest keypoint without one)."""
        head = visible & (np.arange(17) < 5)              # COCO 0-4: nose, eyes, ears
        near = head if head.any() else visible
        x, top = float(np.mean(kp[near, 0])), float(np.min(kp[near, 1]))
        text = f"#{track_id}"
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, self.font_scale, self.font_thickness)
        h, w = image.shape[:2]
        x0 = int(min(max(x - tw / 2 - 3, 0), max(w - tw - 6, 0)))
        y1 = int(min(max(top - th - base - 2 * self.radius, th + base + 6), h))   # clear of the scalp
        color = track_color(track_id)
        cv2.rectangle(image, (x0, y1 - th - base - 6), (x0 + tw + 6, y1), color, -1)
        ink = (0, 0, 0) if sum(color) > 380 else (255, 255, 255)
        cv2.putText(image, text, (x0 + 3, y1 - base - 3), cv2.FONT_HERSHEY_SIMPLEX, self.font_scale, ink,
                    self.font_thickness, cv2.LINE_AA)


def _even(n: int) -> int:
    return n + (n & 1)                                    # H.264 (yuv420p) needs even sizes


class Renderer:
    """Composes the annotated video frame and the 3D panel into one output frame."""

    def __init__(self, config: RenderConfig, width: int, height: int, fps: float):
        """Args: config: Render settings. width, height: Input frame size, pixels. fps: Frame rate, Hz."""
        if width <= 0 or height <= 0 or not fps > 0:
            raise ShapeError(f"bad video size {width}x{height} or fps {fps}")
        self.config, self.width, self.height, self.fps = config, width, height, fps
        self.annotator = SkeletonAnnotator(config, width, height)
        self.panel_size, self.panel_origin = 0, (0, 0)
        if config.layout == "side":
            self.panel_size = _even(config.panel_size or height)
            self.panel_origin = (width, 0)
            size = (_even(width + self.panel_size), _even(max(height, self.panel_size)))
        else:
            size = (_even(width), _even(height))
            if config.layout == "pip":
                margin = max(4, height // 60)
                self.panel_size = min(_even(config.panel_size or height // 3), width - 2 * margin,
                                      height - 2 * margin)
                self.panel_origin = (width - margin - self.panel_size, height - margin - self.panel_size)
        self._size = size
        # One buffer for every frame: padding stays black, the video area is overwritten each call.
        self._out = np.zeros((size[1], size[0], 3), np.uint8)
        self.panel = Pose3DPanel(config, self.panel_size, width) if self.panel_size >= 16 else None

    @property
    def output_size(self) -> tuple[int, int]:
        """(width, height) of the composed frame, both even (H.264 needs that)."""
        return self._size

    def render(self, image: np.ndarray, people: list[PersonFrame], time: float) -> np.ndarray:
        """Draw one frame.

        Args:
            image: (height, width, 3) uint8 BGR video frame; not modified.
            people: People visible in this frame (see :func:`frames_of`).
            time: Presentation time in seconds (drives the orbit).

        Returns:
            (H_out, W_out, 3) uint8 BGR of :attr:`output_size`. The buffer is reused by the next call:
            copy it to keep it.
        """
        if image.shape != (self.height, self.width, 3) or image.dtype != np.uint8:
            raise ShapeError(f"frame must be ({self.height}, {self.width}, 3) uint8, got "
                             f"{image.shape} {image.dtype}")
        video = self._out[:self.height, :self.width]
        np.copyto(video, image)
        self.annotator.annotate(video, people)
        if self.panel is not None:
            (x, y), s = self.panel_origin, self.panel_size
            self.panel.draw(self._out[y:y + s, x:x + s], people, time)
            if self.config.layout == "pip":
                cv2.rectangle(self._out, (x - 1, y - 1), (x + s, y + s), (200, 200, 200), 2)
        return self._out
