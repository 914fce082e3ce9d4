"""Stage 6, visual side: 2D skeletons drawn on the video, 3D poses in a panel beside or inside it.

:class:`SkeletonAnnotator` draws COCO-17 skeletons on the frame, :class:`Pose3DPanel` every H36M-17 pose
in one perspective view over a floor grid (fixed or orbiting camera), :class:`Renderer` lays them out
into one reused buffer. OpenCV and numpy only, a few ms per 1080p frame: colours, bone tables, grid
geometry and the background are computed once. The 3D scene is the poses' camera frame (x right, y down, z forward,
metres) with the floor at ``y = 0``; the virtual camera at azimuth 0 sits where the real camera is, so
the panel is never mirrored relative to the video.
"""

from __future__ import annotations

import colorsys
import functools
import math
from collections import defaultdict
from dataclasses import dataclass
from typing import Callable

import cv2
import numpy as np

from pipeline.errors import ConfigError, ShapeError
from pipeline.skeleton import COCO17, H36M17, Skeleton
from pipeline.types import Track

LAYOUTS = ("side", "pip", "overlay")
_SHIFT = 4                      # sub-pixel bits for cv2 drawing: smooth motion and orbit
_ONE = 1 << _SHIFT
_BACKGROUND = (32, 28, 26)      # BGR of the 3D panel
_GRID = (78, 74, 70)
_GRID_AXES = (110, 106, 100)
_SIDE_BGR = np.array([(215, 215, 215), (255, 150, 50), (60, 70, 240)], np.float32)  # centre, left, right
_H36M_HEAD, _H36M_ANKLES = H36M17.index("head"), [H36M17.index("l_ankle"), H36M17.index("r_ankle")]
_COCO_HIPS = [COCO17.index("l_hip"), COCO17.index("r_hip")]


def _bones_and_sides(skeleton: Skeleton, extra: tuple = ()) -> tuple[np.ndarray, np.ndarray]:
    """Bone table and side of each bone (0 centre, 1 left, 2 right). Returns: (B, 2) and (B,) int."""
    bones = np.array(skeleton.bones + extra, np.int64)
    side = {**dict.fromkeys(skeleton.left, 1), **dict.fromkeys(skeleton.right, 2)}
    # A bone touching one side only (nose -> l_shoulder included) is that side's; otherwise centre.
    touched = [{side.get(a, 0), side.get(b, 0)} - {0} for a, b in bones.tolist()]
    return bones, np.array([t.pop() if len(t) == 1 else 0 for t in touched], np.int64)


# The COCO drawing tree lacks the cross links that make a torso readable: add shoulders and hips.
_COCO_BONES, _COCO_SIDES = _bones_and_sides(COCO17, ((5, 6), (11, 12)))
_H36M_BONES, _H36M_SIDES = _bones_and_sides(H36M17)


@dataclass(frozen=True)
class RenderConfig:
    """How stage 6 draws the video.

    Attributes:
        layout: "side" (3D panel right of the video, as tall as it, square), "pip" (panel inset in the
            bottom-right corner) or "overlay" (2D skeletons only, no panel).
        panel_size: Panel side in pixels; None = video height ("side") or a third of it ("pip").
        orbit_deg_per_s: Virtual camera turn rate around the vertical axis, degrees/s (0 = fixed).
        azimuth_deg: Virtual camera azimuth at time 0, degrees: 0 = the real camera's viewpoint, 90 =
            from the video's right side (+x), looking back towards -x.
        elevation_deg: Virtual camera height above the horizon, degrees (positive looks down).
        fov_deg: Virtual camera field of view, degrees.
        scene_width_m: Metres the full video width maps to when people are placed side by side.
        min_score: Joints with a lower 2D confidence are drawn faint.
        hide_score: Joints with a lower 2D confidence (or NaN) are not drawn at all.
        faint_alpha: Opacity of faint joints and bones, in (0, 1].
        line_thickness: 2D bone thickness in pixels; None = from the frame size (3 px at 1080p).
        show_ids: Label each person with "#id" (2D) and an id tag (3D).
        grid: Draw the floor grid in the 3D panel.
        grid_step_m: Floor grid spacing, metres.
    """

    layout: str = "side"
    panel_size: int | None = None
    orbit_deg_per_s: float = 10.0
    azimuth_deg: float = 0.0
    elevation_deg: float = 15.0
    fov_deg: float = 40.0
    scene_width_m: float = 4.0
    min_score: float = 0.3
    hide_score: float = 0.05
    faint_alpha: float = 0.35
    line_thickness: int | None = None
    show_ids: bool = True
    grid: bool = True
    grid_step_m: float = 0.5

    def __post_init__(self) -> None:
        checks = {
            f"layout must be one of {LAYOUTS}": self.layout in LAYOUTS,
            "panel_size must be >= 16 pixels": (self.panel_size or 16) >= 16,
            "need 0 <= hide_score <= min_score <= 1": 0.0 <= self.hide_score <= self.min_score <= 1.0,
            "faint_alpha must be in (0, 1]": 0.0 < self.faint_alpha <= 1.0,
            "fov_deg must be in [1, 120]": 1.0 <= self.fov_deg <= 120.0,
            "elevation_deg must be in [-89, 89]": -89.0 <= self.elevation_deg <= 89.0,
            "scene_width_m, grid_step_m, line_thickness must be positive":
                self.scene_width_m > 0 and self.grid_step_m > 0 and (self.line_thickness or 1) >= 1,
        }
        for message, ok in checks.items():
            if not ok:
                raise ConfigError(f"render config: {message}; got {self}")


@dataclass(frozen=True)
class PersonFrame:
    """One person in one frame, as the renderer draws it.

    Attributes:
        track_id: Identity; picks the colour.
        keypoints2d: (17, 2) COCO-17 image pixels, NaN where unseen.
        scores2d: (17,) confidences in [0, 1].
        pose3d: (17, 3) H36M-17 camera-frame metres, pelvis-relative (y down), or None.
        interpolated: True when the frame was filled in across a gap (drawn with hollow joints).
    """

    track_id: int
    keypoints2d: np.ndarray
    scores2d: np.ndarray
    pose3d: np.ndarray | None = None
    interpolated: bool = False

    def __post_init__(self) -> None:
        if np.shape(self.keypoints2d) != (17, 2) or np.shape(self.scores2d) != (17,):
            raise ShapeError(f"person {self.track_id}: keypoints2d must be (17, 2) and scores2d (17,), got "
                             f"{np.shape(self.keypoints2d)} and {np.shape(self.scores2d)}")
        if self.pose3d is not None and np.shape(self.pose3d) != (17, 3):
            raise ShapeError(f"person {self.track_id}: pose3d must be (17, 3), got {np.shape(self.pose3d)}")


@functools.lru_cache(maxsize=1024)
def track_color(track_id: int) -> tuple[int, int, int]:
    """Stable, distinct BGR colour for a track id.

    Args:
        track_id: Any int.

    Returns:
        (b, g, r) ints in [0, 255], bright enough for a dark background.
    """
    # Golden-ratio hue steps keep neighbouring ids apart; saturation/value cycles split close hues.
    hue = (0.11 + track_id * 0.6180339887) % 1.0
    sat = (0.95, 0.60, 0.80)[track_id % 3]
    val = (1.0, 0.78)[(track_id // 3) % 2]
    r, g, b = colorsys.hsv_to_rgb(hue, sat, val)
    return int(round(b * 255)), int(round(g * 255)), int(round(r * 255))


@functools.lru_cache(maxsize=1024)
def _shades(track_id: int) -> tuple[tuple[int, int, int], ...]:
    """Centre, left and right shades of a track colour: left lighter, right darker, so sides read."""
    base = np.array(track_color(track_id), np.float32)
    return tuple(tuple(np.round(c).astype(int).tolist()) for c in (base, base + 0.45 * (255 - base), 0.62 * base))


def frames_of(tracks: list[Track]) -> Callable[[int], list[PersonFrame]]:
    """Index tracks by frame number once, for the render loop.

    Args:
        tracks: Tracks over the clip (with or without ``poses3d``).

    Returns:
        ``lookup(frame_index) -> list[PersonFrame]`` (empty where nobody is seen): a dict look-up, no
        scan over tracks. The PersonFrames hold views into the track arrays, not copies.
    """
    # (track, row) pairs, not PersonFrames: a long clip stays small; the few per frame are built on demand.
    index: dict[int, list[tuple[Track, int]]] = defaultdict(list)
    for track in tracks:
        for row, frame in enumerate(track.frames.tolist()):
            index[frame].append((track, row))

    def lookup(frame: int) -> list[PersonFrame]:
        return [PersonFrame(t.track_id, t.keypoints[r], t.scores[r],
                            None if t.poses3d is None else t.poses3d[r], bool(t.interpolated[r]))
                for t, r in index.get(int(frame), ())]

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
        pts = np.round(np.clip(np.where(visible[:, None], kp, 0.0), -1e5, 1e5) * _ONE).astype(np.int32)
        a, b = _COCO_BONES.T
        bone_strong, shades = strong[a] & strong[b], _shades(person.track_id)
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
        for (i, j), side in zip(_COCO_BONES[bones].tolist(), _COCO_SIDES[bones].tolist()):
            cv2.line(image, xy[i], xy[j], shades[side], thickness, cv2.LINE_AA, _SHIFT)
        # Interpolated frames get hollow joints: the pose there is a guess, not a detection.
        fill = max(1, thickness // 2) if hollow else -1
        for k in np.flatnonzero(joints).tolist():
            cv2.circle(image, xy[k], self.radius * _ONE, shades[0], fill, cv2.LINE_AA, _SHIFT)

    def _draw_faint(self, image: np.ndarray, pts: np.ndarray, bones: np.ndarray, joints: np.ndarray,
                    shades: tuple, hollow: bool) -> None:
        """Alpha-blend low-confidence parts, touching only their bounding box (cheap at 1080p)."""
        used = joints.copy()
        used[_COCO_BONES[bones].ravel()] = True
        pad = self.radius + self.thickness + 2
        h, w = image.shape[:2]
        x0, y0 = np.maximum(pts[used].min(axis=0) // _ONE - pad, 0)
        x1, y1 = np.minimum(pts[used].max(axis=0) // _ONE + pad + 1, (w, h))
        if x1 <= x0 or y1 <= y0:
            return
        roi = image[y0:y1, x0:x1]
        layer = roi.copy()
        shifted = pts - np.array([x0, y0], np.int32) * _ONE
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


class Pose3DPanel:
    """Draws all people's 3D poses, a floor grid and id tags into a square panel."""

    def __init__(self, config: RenderConfig, size: int, frame_width: int):
        """Args: config: Render settings. size: Panel side, pixels. frame_width: Video width, pixels."""
        self.config, self.size, self.frame_width = config, size, frame_width
        half_fov = math.radians(config.fov_deg) / 2
        self.focal = size / 2 / math.tan(half_fov)
        # Fit a sphere holding the people (scene width across, ~2 m tall) into the view cone.
        self.radius = math.hypot(config.scene_width_m / 2, 1.0)
        self.distance = self.radius / math.sin(half_fov)
        self.target = np.array([0.0, -0.9, 0.0])          # mid-height of a standing person (y down)
        self.thickness = max(2, round(size / 240))
        self.background = np.full((size, size, 3), _BACKGROUND, np.uint8)
        # Floor (y = 0) grid segments, (L, 2, 3) metres, and the two through the centre drawn brighter.
        n = int((config.scene_width_m / 2 + 0.5) // config.grid_step_m)
        ticks, ext = np.arange(-n, n + 1) * config.grid_step_m, n * config.grid_step_m
        self.grid_lines = np.array([[(-ext, 0, t), (ext, 0, t)] for t in ticks]
                                   + [[(t, 0, -ext), (t, 0, ext)] for t in ticks], np.float64)
        self.grid_axes = [n, 3 * n + 1]
        self._static: np.ndarray | None = None            # cached background + grid for a fixed camera

    def rotation(self, time: float) -> np.ndarray:
        """Scene-to-virtual-camera rotation at ``time`` seconds. Returns: (3, 3)."""
        az = math.radians(self.config.azimuth_deg + self.config.orbit_deg_per_s * time)
        el = math.radians(self.config.elevation_deg)
        ca, sa, ce, se = math.cos(az), math.sin(az), math.cos(el), math.sin(el)
        turn = np.array([[ca, 0.0, sa], [0.0, 1.0, 0.0], [-sa, 0.0, ca]])   # orbit about the vertical
        tilt = np.array([[1.0, 0.0, 0.0], [0.0, ce, -se], [0.0, se, ce]])   # raise the camera, look down
        return tilt @ turn

    def project(self, points: np.ndarray, rotation: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Perspective-project scene points into the panel.

        Args: points: (..., 3) scene metres. rotation: (3, 3) from :meth:`rotation`.

        Returns: (..., 2) int32 pixels in 1/16 px, and (...,) depth along the view axis, metres.
        """
        cam = (points - self.target) @ rotation.T
        depth = np.maximum(cam[..., 2] + self.distance, 1e-3)
        uv = cam[..., :2] * (self.focal / depth)[..., None] + self.size / 2
        return np.round(np.clip(uv, -1e5, 1e5) * _ONE).astype(np.int32), depth

    def place(self, person: PersonFrame) -> np.ndarray | None:
        """Person's pose in scene metres: feet on the floor, shifted sideways by image position.

        Returns: (17, 3) metres, or None when there is no usable 3D pose.
        """
        pose = None if person.pose3d is None else np.asarray(person.pose3d, np.float64)
        if pose is None or not np.isfinite(pose).all():
            return None
        kp = np.asarray(person.keypoints2d, np.float64)
        ok = np.isfinite(kp).all(axis=1) & (np.asarray(person.scores2d) >= self.config.hide_score)
        hips = ok[_COCO_HIPS].all()
        u = kp[_COCO_HIPS, 0].mean() if hips else (kp[ok, 0].mean() if ok.any() else self.frame_width / 2)
        shift = (u / self.frame_width - 0.5) * self.config.scene_width_m
        # y is down: the lowest foot has the largest y; moving it to 0 stands the person on the floor.
        return pose + np.array([shift, -pose[_H36M_ANKLES, 1].max(), 0.0])

    def draw(self, panel: np.ndarray, people: list[PersonFrame], time: float) -> None:
        """Fill ``panel`` with the scene at ``time``.

        Args:
            panel: (size, size, 3) uint8 BGR, overwritten (a view into the output buffer is fine).
            people: People in this frame; those without a 3D pose are skipped.
            time: Seconds from the start (drives the orbit).
        """
        rotation = self.rotation(time)
        self._draw_background(panel, rotation)
        placed = [(p.track_id, pose) for p in people if (pose := self.place(p)) is not None]
        if not placed:
            return
        uv, depth = self.project(np.stack([pose for _, pose in placed]), rotation)
        self._draw_bones(panel, uv, depth)
        if self.config.show_ids:                          # a square of the track colour and the id
            s = max(8, self.size // 50)
            for (track_id, _), (x, y) in zip(placed, (uv[:, _H36M_HEAD] // _ONE).tolist()):
                x, y, color = x - s // 2, y - 3 * s, track_color(track_id)
                cv2.rectangle(panel, (x, y), (x + s, y + s), color, -1)
                cv2.putText(panel, str(track_id), (x + s + 3, y + s), cv2.FONT_HERSHEY_SIMPLEX,
                            max(0.35, s / 22), color, max(1, s // 12), cv2.LINE_AA)

    def _draw_background(self, panel: np.ndarray, rotation: np.ndarray) -> None:
        """Background and floor grid; cached when the camera never moves."""
        if self._static is not None:
            np.copyto(panel, self._static)
            return
        np.copyto(panel, self.background)
        if self.config.grid:
            uv = list(self.project(self.grid_lines, rotation)[0])
            cv2.polylines(panel, uv, False, _GRID, 1, cv2.LINE_AA, _SHIFT)
            cv2.polylines(panel, [uv[i] for i in self.grid_axes], False, _GRID_AXES, 1, cv2.LINE_AA, _SHIFT)
        if self.config.orbit_deg_per_s == 0:
            self._static = panel.copy()

    def _draw_bones(self, panel: np.ndarray, uv: np.ndarray, depth: np.ndarray) -> None:
        """All bones of all people, far to near, darker and thinner with distance.

        Args: uv: (P, 17, 2) int32 in 1/16 px. depth: (P, 17) metres.
        """
        a, b = _H36M_BONES[:, 0], _H36M_BONES[:, 1]
        mid = (depth[:, a] + depth[:, b]) / 2                       # (P, B)
        # Brightness 1 at the near edge of the scene sphere, ~0.55 at the far edge.
        shade = np.clip(0.78 - 0.22 * (mid - self.distance) / self.radius, 0.45, 1.0)
        width = np.maximum(1, np.round(self.thickness * self.distance / mid)).astype(int)
        colors = (_SIDE_BGR[_H36M_SIDES][None] * shade[..., None]).astype(int)   # (P, B, 3)
        order = np.argsort(-mid, axis=None)
        order = order[(np.minimum(depth[:, a], depth[:, b]) > 0.1).ravel()[order]]  # drop bones behind us
        p_idx, b_idx = np.unravel_index(order, mid.shape)
        xy, colors, width, bones = uv.tolist(), colors.tolist(), width.tolist(), _H36M_BONES.tolist()
        for p, k in zip(p_idx.tolist(), b_idx.tolist()):
            i, j = bones[k]
            cv2.line(panel, xy[p][i], xy[p][j], colors[p][k], width[p][k], cv2.LINE_AA, _SHIFT)
        for p, z in enumerate(depth[:, _H36M_HEAD].clip(0.1).tolist()):
            r = max(2, round(1.8 * self.thickness * self.distance / z))
            cv2.circle(panel, xy[p][_H36M_HEAD], r * _ONE, _SIDE_BGR[0].tolist(), -1, cv2.LINE_AA, _SHIFT)


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
