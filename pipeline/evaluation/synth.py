"""Synthetic clips: a mocap motion rendered as a shaded, clothed humanoid by a virtual camera.

Each clip comes with exact ground truth (camera-frame 3D joints, their 2D projections, the camera), so the
whole 2D -> 3D pipeline can be scored end to end, and the bundled example clip is made by our own code.

Rendering is OpenCV + numpy only (no GL): the figure (:mod:`pipeline.evaluation.synth_body`) is a list of shaded
convex blobs drawn far to near (painter's algorithm). The scene is a textured floor with a horizon (sky,
or a studio wall), a soft contact shadow, and mild blur and sensor noise. Frames are rendered lazily: a
clip of any length costs one frame of memory.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Sequence

import cv2
import numpy as np
import torch

from pipeline.camera import Camera
from pipeline.errors import ConfigError
from pipeline.evaluation.synth_body import Style, build_body, draw_body
from pipeline.io.video import VideoWriter
from pipeline.skeleton import H36M17
from pipeline.training.cameras import film
from pipeline.training.config import CameraConfig
from pipeline.training.mocap import Motion, resample

__all__ = ["SynthConfig", "SynthClip", "SynthFrames", "Style", "render_frame", "render_people", "render_background",
           "framing_points", "synthesize", "save_ground_truth", "write_clip", "person_height_px", "BACKGROUNDS"]

BACKGROUNDS = ("random", "outdoor", "studio")
_SHIFT = 4                     # sub-pixel bits for cv2 polygon filling
_FLOORS = [((150, 150, 150), (110, 110, 110)), ((120, 160, 190), (90, 125, 150)),
           ((70, 110, 150), (55, 85, 120)), ((80, 140, 100), (65, 120, 85)), ((175, 175, 165), (145, 140, 135))]


@dataclass(frozen=True)
class SynthConfig:
    """How to render a synthetic clip.

    Attributes:
        width, height: Image size in pixels.
        fps: Output frame rate; the motion is resampled to it.
        seed: Seeds the person's look, the camera, the background and the noise.
        background: "outdoor" (tiled floor, sky), "studio" (plain floor, back wall) or "random".
        camera: Ranges of the random camera (its ``sizes`` are replaced by (width, height)).
        noise: Sensor noise standard deviation, 0-255 grey levels (0 = none).
        blur: Gaussian blur sigma in pixels applied to every frame (0 = none).
        style: The person's look; None draws one from ``seed``.
    """

    width: int = 960
    height: int = 540
    fps: float = 30.0
    seed: int = 0
    background: str = "random"
    camera: CameraConfig = field(default_factory=lambda: CameraConfig(
        elevation_deg=(0.0, 25.0), fov_deg=(40.0, 60.0), roll_deg=3.0, distance_scale=(1.0, 1.5), margin=0.06))
    noise: float = 2.0
    blur: float = 0.7
    style: Style | None = None

    def __post_init__(self) -> None:
        if self.width < 16 or self.height < 16 or not self.fps > 0:
            raise ConfigError(f"SynthConfig: bad size {self.width}x{self.height} or fps {self.fps}")
        if self.background not in BACKGROUNDS:
            raise ConfigError(f"SynthConfig.background must be one of {BACKGROUNDS}, got {self.background!r}")
        if self.noise < 0 or self.blur < 0:
            raise ConfigError(f"SynthConfig: noise and blur must be >= 0, got {self.noise}, {self.blur}")


@dataclass(frozen=True)
class SynthClip:
    """A rendered clip and its ground truth.

    Attributes:
        frames: Re-iterable, lazily rendered (H, W, 3) uint8 BGR images; ``len(frames)`` is T.
        camera: The (static) camera.
        fps: Frame rate, Hz.
        poses3d: (T, 17, 3) float32 H36M joints in the camera frame, metres, absolute (not pelvis-relative).
        keypoints2d: (T, 17, 2) float32 projections of ``poses3d``, pixels.
        world: (T, 17, 3) float32 the same joints in the mocap's world frame (Y up, floor y = 0).
        style: The person's look.
    """

    frames: "SynthFrames"
    camera: Camera
    fps: float
    poses3d: np.ndarray
    keypoints2d: np.ndarray
    world: np.ndarray
    style: Style

    @property
    def num_frames(self) -> int:
        return len(self.poses3d)


def _floor_ring(centre: np.ndarray, up: np.ndarray, radii: tuple[float, float], n: int = 20) -> np.ndarray:
    """(n, 3) points of a horizontal ellipse around ``centre`` (camera frame), radii in metres."""
    a = np.cross(up, [0.0, 0.0, 1.0])
    if np.linalg.norm(a) < 1e-3:  # camera looking straight down
        a = np.cross(up, [1.0, 0.0, 0.0])
    a /= np.linalg.norm(a)
    b = np.cross(up, a)
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)[:, None]
    return centre + radii[0] * np.cos(t) * a + radii[1] * np.sin(t) * b


def _draw_shadow(image: np.ndarray, joints: np.ndarray, camera: Camera) -> None:
    """Darken the floor under the pelvis and feet with soft blobs that fade as they rise above rest height."""
    up = np.asarray(camera.rotation)[:, 1]
    heights = camera.camera_to_world(joints)[:, 1]
    rings, alphas = [], []
    # (joint, radius m, darkness, height at rest m)
    for idx, radius, alpha, rest in ((0, 0.3, 0.35, 0.95), (3, 0.13, 0.45, 0.08), (6, 0.13, 0.45, 0.08)):
        fade = float(np.clip(1.0 - (heights[idx] - rest) / 0.5, 0.0, 1.0))
        ring = _floor_ring(joints[idx] - heights[idx] * up, up, (radius, radius))
        if (ring[:, 2] > 0.1).all() and fade > 0:
            rings.append(camera.project(ring))
            alphas.append(alpha * fade)
    if not rings:
        return
    h, w = image.shape[:2]
    pix = np.concatenate(rings)
    sigma = max(2.0, 0.08 * camera.focal / max(float(joints[0, 2]), 0.5))  # 8 cm penumbra at the person
    pad = int(3 * sigma) + 2
    x0, y0 = (np.floor(pix.min(0)) - pad).astype(int).clip(0, [w, h])
    x1, y1 = (np.ceil(pix.max(0)) + pad).astype(int).clip(0, [w, h])
    if x1 <= x0 or y1 <= y0:
        return
    # The mask is soft, so draw and blur it at a quarter of the resolution: a wide blur costs milliseconds.
    q = 4
    mask = np.zeros(((y1 - y0) // q + 1, (x1 - x0) // q + 1), np.float32)
    for ring, alpha in zip(rings, alphas):
        poly = np.round((ring - [x0, y0]) * ((1 << _SHIFT) / q)).astype(np.int32)
        cv2.fillConvexPoly(mask, poly, alpha, lineType=cv2.LINE_AA, shift=_SHIFT)
    mask = cv2.resize(cv2.GaussianBlur(mask, (0, 0), sigma / q), (x1 - x0, y1 - y0), interpolation=cv2.INTER_LINEAR)
    keep = cv2.cvtColor(np.round(255.0 * (1.0 - mask)).astype(np.uint8), cv2.COLOR_GRAY2BGR)
    roi = image[y0:y1, x0:x1]
    cv2.multiply(roi, keep, dst=roi, scale=1.0 / 255.0)


def render_frame(joints_cam: np.ndarray, camera: Camera, style: Style, background: np.ndarray) -> np.ndarray:
    """Render one frame of one person: the background, the contact shadow, then the figure.

    Args:
        joints_cam: (17, 3) H36M joints in the camera frame, metres.
        camera: The camera (projection; its rotation gives world up and the light direction).
        style: The person's look.
        background: (H, W, 3) uint8 BGR scene without the person (see :func:`render_background`).

    Returns:
        (H, W, 3) uint8 BGR image (a new array; ``background`` is not modified).
    """
    return render_people([(joints_cam, style)], camera, background)


def render_people(people: Sequence[tuple[np.ndarray, Style]], camera: Camera, background: np.ndarray) -> np.ndarray:
    """Render one frame of several people: the background, every contact shadow, then the figures far to near.

    Args:
        people: (joints, style) per person; joints (17, 3) H36M camera-frame metres. People must not
            interpenetrate (each is drawn whole, in order of pelvis depth).
        camera: The camera (projection; its rotation gives world up and the light direction).
        background: (H, W, 3) uint8 BGR scene without people (see :func:`render_background`).

    Returns:
        (H, W, 3) uint8 BGR image (a new array; ``background`` is not modified).
    """
    image = background.copy()
    rot = np.asarray(camera.rotation, np.float64)
    people = [(np.asarray(joints, np.float64), style) for joints, style in people]
    for joints, _ in people:
        _draw_shadow(image, joints, camera)
    for joints, style in sorted(people, key=lambda person: -person[0][0, 2]):
        light = np.asarray(style.light, np.float64)
        draw_body(image, build_body(joints, rot[:, 1], style), camera, rot @ (light / np.linalg.norm(light)))
    return image


def _rays(camera: Camera, ss: int) -> np.ndarray:
    """(H*ss, W*ss, 3) float32 world-frame unit ray directions through supersampled pixel centres."""
    u = (np.arange(camera.width * ss, dtype=np.float32) + 0.5) / ss - np.float32(camera.center[0])
    v = (np.arange(camera.height * ss, dtype=np.float32) + 0.5) / ss - np.float32(camera.center[1])
    d = np.stack(np.broadcast_arrays(u[None, :] / camera.focal, v[:, None] / camera.focal, np.float32(1)), -1)
    d = d @ np.asarray(camera.rotation, np.float32)  # camera -> world for row vectors is d @ R
    return d / np.linalg.norm(d, axis=-1, keepdims=True)


def _floor(d: np.ndarray, pos: np.ndarray, kind: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Hit distance (H, W) (inf above the horizon) and colour (H, W, 3) of the floor plane y = 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(d[..., 1] < -1e-6, -pos[1] / d[..., 1], np.inf).astype(np.float32)
    tf = np.where(np.isfinite(t), t, 0.0)
    x, z = pos[0] + tf * d[..., 0], pos[2] + tf * d[..., 2]
    light, dark = (np.asarray(c, np.float32) + rng.uniform(-15, 15, 3).astype(np.float32)
                   for c in _FLOORS[rng.integers(len(_FLOORS))])
    tile = rng.uniform(0.5, 1.0)
    if kind == "outdoor":
        odd = ((np.floor(x / tile) + np.floor(z / tile)) % 2) > 0
    else:  # large tiles with thin grout lines
        odd = np.minimum(np.abs((x / (2 * tile)) % 1.0 - 0.5), np.abs((z / (2 * tile)) % 1.0 - 0.5)) < 0.01
    colour = np.where(odd[..., None], dark, light)
    # Blotchy texture fixed to the floor (not the screen), 8 cm texels, so it foreshortens like a real one.
    tiled = np.tile(rng.normal(0, 1, (256, 256)).astype(np.float32), (3, 3))  # blur it seamlessly periodic
    noise = cv2.GaussianBlur(tiled, (0, 0), 2.0)[256:512, 256:512]
    noise *= 10.0 / max(float(noise.std()), 1e-6)
    tex = cv2.remap(noise, (x / 0.08 % 256).astype(np.float32), (z / 0.08 % 256).astype(np.float32),
                    cv2.INTER_LINEAR, borderMode=cv2.BORDER_WRAP)
    return t, colour + tex[..., None]


def render_background(camera: Camera, kind: str, rng: np.random.Generator, centre: np.ndarray) -> np.ndarray:
    """The empty scene: a textured floor (y = 0) fading into haze, under a sky or before a studio wall.

    Args:
        camera: The camera.
        kind: "outdoor" (checker tiles, sky gradient) or "studio" (plain floor, wall 4-7 m behind ``centre``).
        rng: Picks the colours, tile size and texture.
        centre: (3,) world point the person moves around, metres.

    Returns:
        (H, W, 3) uint8 BGR image.
    """
    d = _rays(camera, 2)  # 2x supersampling keeps far tiles from aliasing into moire
    pos = np.asarray(camera.position, np.float64)
    t_floor, floor = _floor(d, pos, kind, rng)
    horizon = (np.array([215.0, 205.0, 195.0]) + rng.uniform(-20, 20, 3)).astype(np.float32)
    if kind == "outdoor":
        sky_top = (np.array([200.0, 150.0, 100.0]) + rng.uniform(-25, 25, 3)).astype(np.float32)
        k = np.clip(d[..., 1:2] * 3.0, 0.0, 1.0)
        far = horizon * (1 - k) + sky_top * k
    else:
        far, t_wall = _studio_wall(d, pos, centre, rng, horizon)
        t_floor[t_wall < t_floor] = np.inf
    haze = 1.0 - np.exp(-np.minimum(t_floor, 1e4) / 30.0)[..., None]
    img = np.where(np.isfinite(t_floor)[..., None], floor * (1 - haze) + horizon * haze, far)
    img = cv2.resize(np.clip(img, 0, 255).astype(np.float32), (camera.width, camera.height),
                     interpolation=cv2.INTER_AREA)
    return np.round(img).astype(np.uint8)


def _studio_wall(d, pos, centre, rng, horizon) -> tuple[np.ndarray, np.ndarray]:
    """Colour (H, W, 3) and hit distance (H, W) of a wall square to the view 4-7 m behind the person."""
    normal = np.array([pos[0] - centre[0], 0.0, pos[2] - centre[2]], np.float32)
    normal /= max(float(np.linalg.norm(normal)), 1e-9)
    point = centre - normal * rng.uniform(4.0, 7.0)
    dn = d @ normal
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(dn < -1e-6, np.float32((point - pos) @ normal) / dn, np.inf).astype(np.float32)
    height = pos[1] + np.where(np.isfinite(t), t, 0.0) * d[..., 1]
    paint = horizon * np.float32(rng.uniform(0.7, 1.0))
    # Slightly darker toward the ceiling, and a dark skirting board along the floor.
    wall = paint * (1.0 - 0.04 * np.clip(height, 0, 5))[..., None]
    wall = np.where((height < 0.12)[..., None], paint * 0.55, wall)
    return np.where(np.isfinite(t)[..., None], wall, horizon), t


class SynthFrames:
    """Re-iterable lazy frames of a clip: each iteration renders from the start with the same noise.

    Args:
        poses3d: (T, 17, 3) camera-frame metres of one person, or (P, T, 17, 3) of P people.
        camera: The camera.
        style: The look of each person: one Style, or a sequence of P.
        background: (H, W, 3) uint8 empty scene.
        config: Supplies noise, blur and seed.
        progress: Called as progress(frames_done, total), or None.
    """

    def __init__(self, poses3d, camera, style, background, config: SynthConfig, progress) -> None:
        self._poses = poses3d[None] if poses3d.ndim == 3 else poses3d
        self._styles = [style] if isinstance(style, Style) else list(style)
        if len(self._styles) != len(self._poses):
            raise ConfigError(f"SynthFrames: {len(self._poses)} people but {len(self._styles)} styles")
        self._camera, self._bg = camera, background
        self._config, self._progress = config, progress

    def __len__(self) -> int:
        return self._poses.shape[1]

    def __iter__(self) -> Iterator[np.ndarray]:
        cfg, n = self._config, len(self)
        rng = np.random.default_rng(cfg.seed + 1)
        # A few noise images reused in turn: per-frame fresh noise would cost more than the rendering.
        pool = [rng.normal(0.0, cfg.noise, self._bg.shape) for _ in range(4)] if cfg.noise > 0 else []
        pool = [(np.clip(p, 0, 255).astype(np.uint8), np.clip(-p, 0, 255).astype(np.uint8)) for p in pool]
        for i in range(n):
            image = render_people(list(zip(self._poses[:, i], self._styles)), self._camera, self._bg)
            if cfg.blur > 0:
                image = cv2.GaussianBlur(image, (0, 0), cfg.blur)
            if pool:
                plus, minus = pool[(3 * i) % len(pool)]
                cv2.subtract(cv2.add(image, plus, dst=image), minus, dst=image)
            if self._progress is not None:
                self._progress(i + 1, n)
            yield image


def framing_points(world: np.ndarray) -> np.ndarray:
    """(T, 17 + 5, 3) joints plus points the body reaches beyond them (soles, hand tips, crown)."""
    soles = world[:, [3, 6]] * np.array([1.0, 0.0, 1.0])
    hands = world[:, [13, 16]] + 0.14 * (world[:, [13, 16]] - world[:, [12, 15]]) / np.maximum(
        np.linalg.norm(world[:, [13, 16]] - world[:, [12, 15]], axis=-1, keepdims=True), 1e-6)
    crown = world[:, [10]] + np.array([0.0, 0.04, 0.0])
    return np.concatenate([world, soles, hands, crown], axis=1)


def synthesize(motion: Motion, config: SynthConfig = SynthConfig(),
               progress: Callable[[int, int], None] | None = None) -> SynthClip:
    """Film a motion with a random static camera that keeps the whole figure in frame.

    The camera frames the whole motion at once, so a long motion that crosses the room makes a small
    person: slice ``motion.joints`` to the part wanted first.

    Args:
        motion: World-frame mocap (Y up, floor y = 0); resampled to ``config.fps``.
        config: Image size, seed, scene and camera ranges.
        progress: Called as progress(frames_done, total) while frames are rendered.

    Returns:
        A :class:`SynthClip`; its frames render lazily (bounded memory) and identically for a seed.
    """
    motion = resample(motion, config.fps)
    rng = np.random.default_rng(config.seed)
    style = config.style or Style.random(rng)
    cam_cfg = dataclasses.replace(config.camera, sizes=((config.width, config.height),))
    gen = torch.Generator().manual_seed(config.seed)
    camera = film(framing_points(motion.joints.astype(np.float64)), cam_cfg, gen).camera
    world = motion.joints.astype(np.float64)
    poses3d = camera.world_to_camera(world)
    kind = config.background if config.background != "random" else ("outdoor", "studio")[rng.integers(2)]
    background = render_background(camera, kind, rng, world[:, 0].mean(axis=0))
    frames = SynthFrames(poses3d, camera, style, background, config, progress)
    return SynthClip(frames, camera, float(config.fps), poses3d.astype(np.float32),
                     camera.project(poses3d).astype(np.float32), world.astype(np.float32), style)


def person_height_px(clip: SynthClip) -> np.ndarray:
    """Standing height of the subject in pixels per frame, to express 2D errors as a fraction of it.

    Height = ankle-to-head-top bone chain (plus 7 cm for the foot), median over the clip, times
    focal / pelvis depth; unlike a bounding box it does not shrink when the person bends or crouches.

    Returns:
        (T,) float64 pixels.
    """
    p = clip.poses3d.astype(np.float64)

    def bone(a, b):
        return np.linalg.norm(p[:, a] - p[:, b], axis=-1)

    legs = 0.5 * (bone(3, 2) + bone(2, 1) + bone(6, 5) + bone(5, 4))
    trunk = bone(0, 7) + bone(7, 8) + bone(8, 9) + bone(9, 10)
    metres = float(np.median(legs + trunk)) + 0.07
    return metres * clip.camera.focal / p[:, 0, 2]


def save_ground_truth(path: str | Path, clip: SynthClip) -> None:
    """Write the clip's ground truth as .npz.

    Keys: poses3d (T, 17, 3) pelvis-relative camera-frame metres; poses3d_absolute (T, 17, 3); keypoints2d
    (T, 17, 2) pixels; world (T, 17, 3); joint_names (17,); fps; width; height; camera_rotation (3, 3)
    world-to-camera; camera_position (3,) world metres; focal (pixels); center (2,) pixels.
    """
    cam = clip.camera
    np.savez_compressed(
        path, poses3d=clip.poses3d - clip.poses3d[:, :1], poses3d_absolute=clip.poses3d,
        keypoints2d=clip.keypoints2d, world=clip.world, joint_names=np.array(H36M17.joints),
        fps=clip.fps, width=cam.width, height=cam.height, camera_rotation=np.asarray(cam.rotation),
        camera_position=np.asarray(cam.position), focal=cam.focal, center=np.asarray(cam.center))


def write_clip(clip: SynthClip, out_path: str | Path) -> None:
    """Encode the clip's frames to an H.264 mp4 with :class:`pipeline.io.video.VideoWriter`."""
    cam = clip.camera
    with VideoWriter(out_path, width=cam.width, height=cam.height, fps=clip.fps) as writer:
        for image in clip.frames:
            writer.write(image)
