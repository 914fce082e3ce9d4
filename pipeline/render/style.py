"""Rendering style shared by the 2D overlay and the 3D panel: settings, the per-person frame, colours, bones."""

from __future__ import annotations

import colorsys
import functools
from dataclasses import dataclass

import numpy as np

from pipeline.errors import ConfigError, ShapeError
from pipeline.skeleton import COCO17, H36M17, Skeleton

LAYOUTS = ("side", "pip", "overlay")
SHIFT = 4                      # sub-pixel bits for cv2 drawing: smooth motion and orbit
ONE = 1 << SHIFT
BACKGROUND = (32, 28, 26)      # BGR of the 3D panel
GRID = (78, 74, 70)
GRID_AXES = (110, 106, 100)
SIDE_BGR = np.array([(215, 215, 215), (255, 150, 50), (60, 70, 240)], np.float32)  # centre, left, right
H36M_HEAD, H36M_ANKLES = H36M17.index("head"), [H36M17.index("l_ankle"), H36M17.index("r_ankle")]
CONTACT_FEET = [H36M17.index("r_ankle"), H36M17.index("l_ankle")]   # the order of Track.contacts
CONTACT_BGR = (40, 215, 255)   # a foot on the ground: amber, apart from the side colours
COCO_HIPS = [COCO17.index("l_hip"), COCO17.index("r_hip")]


def _bones_and_sides(skeleton: Skeleton, extra: tuple = ()) -> tuple[np.ndarray, np.ndarray]:
    """Bone table and side of each bone (0 centre, 1 left, 2 right). Returns: (B, 2) and (B,) int."""
    bones = np.array(skeleton.bones + extra, np.int64)
    side = {**dict.fromkeys(skeleton.left, 1), **dict.fromkeys(skeleton.right, 2)}
    # A bone touching one side only (nose -> l_shoulder included) is that side's; otherwise centre.
    touched = [{side.get(a, 0), side.get(b, 0)} - {0} for a, b in bones.tolist()]
    return bones, np.array([t.pop() if len(t) == 1 else 0 for t in touched], np.int64)


# The COCO drawing tree lacks the cross links that make a torso readable: add shoulders and hips.
COCO_BONES, COCO_SIDES = _bones_and_sides(COCO17, ((5, 6), (11, 12)))
H36M_BONES, H36M_SIDES = _bones_and_sides(H36M17)


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
        trail_s: Seconds of each person's recent path drawn on the floor when the trajectory is known (0: none).
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
    trail_s: float = 3.0

    def __post_init__(self) -> None:
        checks = {
            f"layout must be one of {', '.join(LAYOUTS)}; got {self.layout!r}": self.layout in LAYOUTS,
            f"panel_size must be >= 16 pixels; got {self.panel_size}": (self.panel_size or 16) >= 16,
            f"need 0 <= hide_score <= min_score <= 1; got {self.hide_score}, {self.min_score}":
                0.0 <= self.hide_score <= self.min_score <= 1.0,
            f"faint_alpha must be in (0, 1]; got {self.faint_alpha}": 0.0 < self.faint_alpha <= 1.0,
            f"fov_deg must be in [1, 120]; got {self.fov_deg}": 1.0 <= self.fov_deg <= 120.0,
            f"elevation_deg must be in [-89, 89]; got {self.elevation_deg}": -89.0 <= self.elevation_deg <= 89.0,
            f"scene_width_m, grid_step_m, line_thickness must be positive; got {self.scene_width_m}, "
            f"{self.grid_step_m}, {self.line_thickness}":
                self.scene_width_m > 0 and self.grid_step_m > 0 and (self.line_thickness or 1) >= 1,
            f"trail_s must be >= 0; got {self.trail_s}": self.trail_s >= 0,
        }
        for message, ok in checks.items():
            if not ok:
                raise ConfigError(f"render: {message}")


@dataclass(frozen=True)
class PersonFrame:
    """One person in one frame, as the renderer draws it.

    Attributes:
        track_id: Identity; picks the colour.
        keypoints2d: (17, 2) COCO-17 image pixels, NaN where unseen.
        scores2d: (17,) confidences in [0, 1].
        pose3d: (17, 3) H36M-17 camera-frame metres, pelvis-relative (y down), or None.
        interpolated: True when the frame was filled in across a gap (drawn with hollow joints).
        pose_world: (17, 3) the placed joints in the clip's world frame (:mod:`pipeline.lifting.world`: y up, floor
            at 0), metres, or None when the trajectory is unknown.
        trail: (K, 3) world-frame pelvis positions of the last K frames up to this one, or None.
        contacts: (2,) probability that the right and the left foot are on the ground, or None.
    """

    track_id: int
    keypoints2d: np.ndarray
    scores2d: np.ndarray
    pose3d: np.ndarray | None = None
    interpolated: bool = False
    pose_world: np.ndarray | None = None
    trail: np.ndarray | None = None
    contacts: np.ndarray | None = None

    def __post_init__(self) -> None:
        if np.shape(self.keypoints2d) != (17, 2) or np.shape(self.scores2d) != (17,):
            raise ShapeError(f"person {self.track_id}: keypoints2d must be (17, 2) and scores2d (17,), got "
                             f"{np.shape(self.keypoints2d)} and {np.shape(self.scores2d)}")
        for name in ("pose3d", "pose_world"):
            if getattr(self, name) is not None and np.shape(getattr(self, name)) != (17, 3):
                raise ShapeError(f"person {self.track_id}: {name} must be (17, 3), got {np.shape(getattr(self, name))}")
        if self.trail is not None and (np.ndim(self.trail) != 2 or np.shape(self.trail)[1] != 3):
            raise ShapeError(f"person {self.track_id}: trail must be (K, 3), got {np.shape(self.trail)}")
        if self.contacts is not None and np.shape(self.contacts) != (2,):
            raise ShapeError(f"person {self.track_id}: contacts must be (2,), got {np.shape(self.contacts)}")


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
def side_shades(track_id: int) -> tuple[tuple[int, int, int], ...]:
    """Centre, left and right shades of a track colour: left lighter, right darker, so sides read."""
    base = np.array(track_color(track_id), np.float32)
    return tuple(tuple(np.round(c).astype(int).tolist()) for c in (base, base + 0.45 * (255 - base), 0.62 * base))


