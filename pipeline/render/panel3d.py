"""The 3D panel of stage 6: every person's H36M-17 pose in one perspective view over a floor grid.

The scene is the poses' camera frame (x right, y down, z forward, metres) with the floor at ``y = 0``; the
virtual camera at azimuth 0 sits where the real camera is, so the panel is never mirrored relative to the
video. People are stood on the floor and spread sideways by their image position, or -- when the clip's
trajectory was estimated (:mod:`pipeline.lifting.trajectory`) -- placed where they are in the levelled world frame
(:mod:`pipeline.lifting.world`), with the recent path of their pelvis drawn on the floor.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from pipeline.render.style import (
    BACKGROUND,
    COCO_HIPS,
    CONTACT_BGR,
    CONTACT_FEET,
    GRID,
    GRID_AXES,
    H36M_ANKLES,
    H36M_BONES,
    H36M_HEAD,
    H36M_SIDES,
    ONE,
    SHIFT,
    SIDE_BGR,
    PersonFrame,
    RenderConfig,
    track_color,
)

# World frame (y up, z towards the camera) to the panel's scene (camera-like: y down, z forward).
WORLD_TO_SCENE = np.array([1.0, -1.0, -1.0])


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
        self.background = np.full((size, size, 3), BACKGROUND, np.uint8)
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
        return np.round(np.clip(uv, -1e5, 1e5) * ONE).astype(np.int32), depth

    def place(self, person: PersonFrame) -> np.ndarray | None:
        """Person's pose in scene metres: where the trajectory puts it, else on the floor, shifted sideways
        by image position.

        Returns: (17, 3) metres, or None when there is no usable 3D pose.
        """
        if person.pose_world is not None:
            return np.asarray(person.pose_world, np.float64) * WORLD_TO_SCENE
        pose = None if person.pose3d is None else np.asarray(person.pose3d, np.float64)
        if pose is None or not np.isfinite(pose).all():
            return None
        kp = np.asarray(person.keypoints2d, np.float64)
        ok = np.isfinite(kp).all(axis=1) & (np.asarray(person.scores2d) >= self.config.hide_score)
        hips = ok[COCO_HIPS].all()
        u = kp[COCO_HIPS, 0].mean() if hips else (kp[ok, 0].mean() if ok.any() else self.frame_width / 2)
        shift = (u / self.frame_width - 0.5) * self.config.scene_width_m
        # y is down: the lowest foot has the largest y; moving it to 0 stands the person on the floor.
        return pose + np.array([shift, -pose[H36M_ANKLES, 1].max(), 0.0])

    def _draw_trails(self, panel: np.ndarray, people: list[PersonFrame], rotation: np.ndarray) -> None:
        """Each placed person's recent pelvis path, dropped onto the floor, in the track colour."""
        for person in people:
            if person.trail is None or len(person.trail) < 2:
                continue
            floor = np.asarray(person.trail, np.float64) * WORLD_TO_SCENE
            floor[:, 1] = 0.0
            uv = self.project(floor, rotation)[0]
            cv2.polylines(panel, [uv], False, track_color(person.track_id), max(1, self.thickness // 2),
                          cv2.LINE_AA, SHIFT)

    def draw(self, panel: np.ndarray, people: list[PersonFrame], time: float) -> None:
        """Fill ``panel`` with the scene at ``time``.

        Args:
            panel: (size, size, 3) uint8 BGR, overwritten (a view into the output buffer is fine).
            people: People in this frame; those without a 3D pose are skipped.
            time: Seconds from the start (drives the orbit).
        """
        rotation = self.rotation(time)
        self._draw_background(panel, rotation)
        self._draw_trails(panel, people, rotation)
        shown = [(p, pose) for p in people if (pose := self.place(p)) is not None]
        placed = [(p.track_id, pose) for p, pose in shown]
        if not placed:
            return
        uv, depth = self.project(np.stack([pose for _, pose in placed]), rotation)
        self._draw_bones(panel, uv, depth)
        self._draw_contacts(panel, [p.contacts for p, _ in shown], uv)
        if self.config.show_ids:                          # a square of the track colour and the id
            s = max(8, self.size // 50)
            for (track_id, _), (x, y) in zip(placed, (uv[:, H36M_HEAD] // ONE).tolist()):
                x, y, color = x - s // 2, y - 3 * s, track_color(track_id)
                cv2.rectangle(panel, (x, y), (x + s, y + s), color, -1)
                cv2.putText(panel, str(track_id), (x + s + 3, y + s), cv2.FONT_HERSHEY_SIMPLEX,
                            max(0.35, s / 22), color, max(1, s // 12), cv2.LINE_AA)

    def _draw_contacts(self, panel: np.ndarray, contacts: list[np.ndarray | None], uv: np.ndarray) -> None:
        """A filled amber disc on each ankle whose foot is on the ground (contact probability at least 0.5)."""
        r = max(3, round(1.6 * self.thickness)) * ONE
        for p, feet in enumerate(contacts):
            for k in [] if feet is None else np.flatnonzero(np.asarray(feet) >= 0.5).tolist():
                cv2.circle(panel, uv[p, CONTACT_FEET[k]].tolist(), r, CONTACT_BGR, -1, cv2.LINE_AA, SHIFT)

    def _draw_background(self, panel: np.ndarray, rotation: np.ndarray) -> None:
        """Background and floor grid; cached when the camera never moves."""
        if self._static is not None:
            np.copyto(panel, self._static)
            return
        np.copyto(panel, self.background)
        if self.config.grid:
            uv = list(self.project(self.grid_lines, rotation)[0])
            cv2.polylines(panel, uv, False, GRID, 1, cv2.LINE_AA, SHIFT)
            cv2.polylines(panel, [uv[i] for i in self.grid_axes], False, GRID_AXES, 1, cv2.LINE_AA, SHIFT)
        if self.config.orbit_deg_per_s == 0:
            self._static = panel.copy()

    def _draw_bones(self, panel: np.ndarray, uv: np.ndarray, depth: np.ndarray) -> None:
        """All bones of all people, far to near, darker and thinner with distance.

        Args: uv: (P, 17, 2) int32 in 1/16 px. depth: (P, 17) metres.
        """
        a, b = H36M_BONES[:, 0], H36M_BONES[:, 1]
        mid = (depth[:, a] + depth[:, b]) / 2                       # (P, B)
        # Brightness 1 at the near edge of the scene sphere, ~0.55 at the far edge.
        shade = np.clip(0.78 - 0.22 * (mid - self.distance) / self.radius, 0.45, 1.0)
        width = np.maximum(1, np.round(self.thickness * self.distance / mid)).astype(int)
        colors = (SIDE_BGR[H36M_SIDES][None] * shade[..., None]).astype(int)   # (P, B, 3)
        order = np.argsort(-mid, axis=None)
        order = order[(np.minimum(depth[:, a], depth[:, b]) > 0.1).ravel()[order]]  # drop bones behind us
        p_idx, b_idx = np.unravel_index(order, mid.shape)
        xy, colors, width, bones = uv.tolist(), colors.tolist(), width.tolist(), H36M_BONES.tolist()
        for p, k in zip(p_idx.tolist(), b_idx.tolist()):
            i, j = bones[k]
            cv2.line(panel, xy[p][i], xy[p][j], colors[p][k], width[p][k], cv2.LINE_AA, SHIFT)
        for p, z in enumerate(depth[:, H36M_HEAD].clip(0.1).tolist()):
            r = max(2, round(1.8 * self.thickness * self.distance / z))
            cv2.circle(panel, xy[p][H36M_HEAD], r * ONE, SIDE_BGR[0].tolist(), -1, cv2.LINE_AA, SHIFT)


