"""Synthetic clips of several people at once, with ground-truth identities (``pose3d synth --people N``).

Each person is a mocap motion placed on a scripted path across one shared floor, filmed by one static
camera. The paths are chosen to test what a tracker gets wrong: two people cross, the nearer hiding the
farther; one walks out of the picture, stays away for longer than the tracker's memory and comes back;
one stays put while others pass in front. A person keeps the motion's own movement around its path
(the straight-line part of the mocap's travel is replaced by the path) and is turned to face along it, so
walkers walk forwards; a turn happens only where the person is out of view.

Ground truth per person and frame: camera-frame 3D joints, their projections, a box around the whole
body, and how much of that box is visible (inside the picture and not behind a nearer person).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from pipeline.camera import Camera, default_focal, look_at
from pipeline.errors import ConfigError, ShapeError
from pipeline.evaluation.synth import Style, SynthConfig, SynthFrames, framing_points, render_background
from pipeline.io.export import atomic_save_npz
from pipeline.skeleton import H36M17
from pipeline.training.mocap import Motion, resample

# Scripted paths: (fraction of the clip, x in half-widths of the view at the scene's distance (+ = right
# in the picture), depth offset in metres from the scene's centre (+ = farther)). Person k takes path
# k mod len(PATHS); later laps are pushed farther back so that nobody shares a path.
PATHS = (
    ((0.0, -0.85, -1.0), (1.0, 0.85, -1.0)),                                   # crosses left to right, in front
    ((0.0, 0.85, 1.0), (1.0, -0.85, 1.0)),                                     # crosses right to left, behind
    ((0.0, 0.2, 0.3), (0.35, 1.45, 0.3), (0.6, 1.45, 0.3), (1.0, -0.1, 0.3)),  # leaves on the right, comes back
    ((0.0, -0.45, -0.3), (1.0, -0.4, -0.3)),                                   # stays; the first walks past
    ((0.0, -0.7, 2.2), (1.0, 0.6, -0.2)),                                      # walks diagonally towards us
    ((0.0, 0.6, -1.8), (0.5, 0.6, -1.8), (1.0, -0.7, 2.6)),                    # waits, then walks away
)
_LAP_DEPTH = 1.5           # metres farther per extra lap of PATHS
_CELL = 4                  # pixels per cell of the visibility grid


@dataclass(frozen=True)
class GroupConfig:
    """How to render a clip of several people.

    Attributes:
        people: Number of people (each takes the next scripted path).
        seconds: Length of the clip (the paths take all of it; at 7 m walkers move at about 1 m/s).
        distance: Camera to the scene's centre along the floor, metres. A 1.7 m person there is about
            ``1.7 * focal / distance`` pixels tall (about 250 px at 7 m and 960 x 540).
        fov_deg: Field of view across the image's longer side, degrees.
        camera_height: Camera height above the floor, metres (it looks at 1 m above the scene's centre).
        synth: Image size, frame rate, seed, scene, noise and blur (its camera ranges are not used).
    """

    people: int = 4
    seconds: float = 6.0
    distance: float = 7.0
    fov_deg: float = 55.0
    camera_height: float = 1.6
    synth: SynthConfig = SynthConfig()

    def __post_init__(self) -> None:
        if self.people < 1 or not self.seconds > 0 or not self.distance > 1 or not 10 <= self.fov_deg <= 120 \
                or self.camera_height <= 0:
            raise ConfigError(f"bad GroupConfig: people={self.people}, distance={self.distance}, "
                              f"fov_deg={self.fov_deg}, camera_height={self.camera_height}")


@dataclass(frozen=True)
class GroupClip:
    """A rendered clip of P people and its ground truth.

    Attributes:
        frames: Re-iterable, lazily rendered (H, W, 3) uint8 BGR images; ``len(frames)`` is T.
        camera: The (static) camera.
        fps: Frame rate, Hz.
        names: (P,) the motion each person performs.
        poses3d: (P, T, 17, 3) float32 H36M joints in the camera frame, metres.
        keypoints2d: (P, T, 17, 2) float32 projections of ``poses3d``, pixels.
        boxes: (P, T, 4) float32 x1 y1 x2 y2 pixels around the whole body (joints, soles, hands, crown).
        visible: (P, T) float32 fraction of each box inside the picture and not behind a nearer person.
    """

    frames: SynthFrames
    camera: Camera
    fps: float
    names: tuple[str, ...]
    poses3d: np.ndarray
    keypoints2d: np.ndarray
    boxes: np.ndarray
    visible: np.ndarray

    def __post_init__(self) -> None:
        p, t = self.poses3d.shape[:2]
        shapes = {"poses3d": (self.poses3d, (p, t, 17, 3)), "keypoints2d": (self.keypoints2d, (p, t, 17, 2)),
                  "boxes": (self.boxes, (p, t, 4)), "visible": (self.visible, (p, t))}
        for name, (array, shape) in shapes.items():
            if array.shape != shape:
                raise ShapeError(f"GroupClip.{name} must be {shape}, got {array.shape}")
        if len(self.names) != p or len(self.frames) != t:
            raise ShapeError(f"GroupClip: {p} people and {t} frames, but {len(self.names)} names and "
                             f"{len(self.frames)} frames to render")

    @property
    def num_frames(self) -> int:
        return self.poses3d.shape[1]


def path_points(path: Sequence[tuple[float, float, float]], t: int) -> np.ndarray:
    """(t, 2) [x half-widths, depth offset m] along a scripted path, linear between its waypoints."""
    way = np.asarray(path, np.float64)
    u = np.linspace(0.0, 1.0, t)
    return np.stack([np.interp(u, way[:, 0], way[:, 1]), np.interp(u, way[:, 0], way[:, 2])], axis=1)


def _heading(xz: np.ndarray) -> float:
    """Angle (radians, atan2(z, x)) a body faces: its travel when it travels, else where its chest points."""
    travel = xz[-1] - xz[0]
    return math.atan2(travel[1], travel[0])


def _facing(joints: np.ndarray) -> float:
    """Mean chest direction of a motion as an angle atan2(z, x) (forward = up x (right hip - left hip))."""
    hips = joints[:, 1, [0, 2]] - joints[:, 4, [0, 2]]   # H36M 1 = right hip, 4 = left hip
    mean = hips.mean(axis=0)
    return math.atan2(-mean[0], mean[1])                # the hip line turned a quarter towards the chest


def _turn(xz: np.ndarray, angle: np.ndarray) -> np.ndarray:
    """Rotate (..., 2) [x, z] vectors by ``angle`` (radians, broadcast over the leading axes)."""
    c, s = np.cos(angle)[..., None], np.sin(angle)[..., None]
    x, z = xz[..., :1], xz[..., 1:]
    return np.concatenate([c * x - s * z, s * x + c * z], axis=-1)


def loop_motion(local: np.ndarray, t: int, blend: int = 6) -> np.ndarray:
    """Extend a motion (its travel removed) to ``t`` frames by repeating its most seamless stretch.

    The loop runs from a frame in the first third to the frame in the last third whose root-relative pose
    is closest to it (the same gait phase for a walk); each seam is cross-faded over ``blend`` frames.

    Args:
        local: (n, 17, 3) metres, the motion with its straight-line travel removed.
        t: Frames wanted.
        blend: Frames cross-faded at each seam.

    Returns:
        (t, 17, 3) metres.
    """
    n = len(local)
    if n >= t:
        return local[:t]
    pose = local - local[:, :1]
    a_range, b_range = np.arange(0, max(1, n // 3)), np.arange(max(n // 2, 2 * n // 3), n)
    cost = np.linalg.norm(pose[a_range][:, None] - pose[b_range][None], axis=-1).mean(-1)
    ia, ib = np.unravel_index(np.argmin(cost), cost.shape)
    a, b = int(a_range[ia]), int(b_range[ib])
    blend = max(1, min(blend, (b - a) // 2))
    out = local[:b]
    while len(out) < t:
        w = np.linspace(0.0, 1.0, blend + 2)[1:-1, None, None]
        out = np.concatenate([out[:-blend], (1 - w) * out[-blend:] + w * local[a:a + blend], local[a + blend:b]])
    return out[:t]


def place_on_path(joints: np.ndarray, floor_xz: np.ndarray) -> np.ndarray:
    """Move a motion onto a floor path, facing along it, looping the motion when the path is longer.

    The straight-line part of the motion's travel is removed (what remains is its sway and steps), the
    body is turned to face the path's direction (kept through stops), and the path is added.

    Args:
        joints: (n, 17, 3) world metres, Y up.
        floor_xz: (T, 2) world [x, z] of the path, metres.

    Returns:
        (T, 17, 3) world metres.
    """
    n, t = len(joints), len(floor_xz)
    root = joints[:, 0, [0, 2]].astype(np.float64)
    time = np.arange(n, dtype=np.float64)
    trend = np.stack([np.polyval(np.polyfit(time, root[:, k], 1), time) for k in range(2)], axis=1)
    own = _heading(trend) if np.linalg.norm(trend[-1] - trend[0]) > 0.5 else _facing(joints)
    local = joints.astype(np.float64).copy()
    local[:, :, [0, 2]] -= trend[:, None, :]
    local = loop_motion(local, t)
    step = np.diff(floor_xz, axis=0, prepend=floor_xz[:1])
    moving = np.linalg.norm(step, axis=1) > 1e-6
    if moving.any():
        # A stop keeps the last heading (the first one when the path starts by standing still).
        last = np.maximum.accumulate(np.where(moving, np.arange(t), -1))
        heading = np.arctan2(step[:, 1], step[:, 0])[np.where(last >= 0, last, int(np.argmax(moving)))]
    else:
        heading = np.full(t, own)
    local[:, :, [0, 2]] = _turn(local[:, :, [0, 2]], (heading - own)[:, None]) + floor_xz[:, None, :]
    return local


def travels(path: Sequence[tuple[float, float, float]]) -> bool:
    """Whether a scripted path moves (more than a third of a half-width): it gets a walking motion."""
    way = np.asarray(path, np.float64)
    return float(np.abs(np.diff(way[:, 1])).sum()) > 1 / 3


def pick_motions(motions: Sequence[Motion], people: int, rng: np.random.Generator) -> list[Motion]:
    """Choose one motion per person: walkers (own travel >= 0.5 m/s) for moving paths, others for still ones.

    Args:
        motions: Candidates (held-out subjects), at least 1 s long.
        people: How many to choose; different motions while there are enough.
        rng: Draws the choice.

    Returns:
        ``people`` motions, person k's suiting path ``PATHS[k % len(PATHS)]`` (any motion when none suits).
    """
    if not motions:
        raise ConfigError("pick_motions: no motions to choose from")
    speed = np.array([np.linalg.norm(m.joints[-1, 0, [0, 2]] - m.joints[0, 0, [0, 2]]) * m.fps / len(m.joints)
                      for m in motions])
    pools = {True: [i for i in range(len(motions)) if speed[i] >= 0.5],
             False: [i for i in range(len(motions)) if speed[i] < 0.5]}
    chosen: list[int] = []
    for k in range(people):
        pool = pools[travels(PATHS[k % len(PATHS)])] or list(range(len(motions)))
        fresh = [i for i in pool if i not in chosen] or pool
        chosen.append(int(rng.choice(fresh)))
    return [motions[i] for i in chosen]


def visible_fraction(boxes: np.ndarray, depths: np.ndarray, width: int, height: int) -> np.ndarray:
    """How much of each person's box is in the picture and not covered by a nearer person's box.

    Args:
        boxes: (P, T, 4) x1 y1 x2 y2 pixels.
        depths: (P, T) distance from the camera (pelvis depth), metres.
        width, height: Image size, pixels.

    Returns:
        (P, T) float32 in [0, 1].
    """
    p, t = depths.shape
    out = np.zeros((p, t), np.float32)
    gw, gh = -(-width // _CELL), -(-height // _CELL)
    cells = np.round(boxes / _CELL).astype(np.int64)
    for i in range(t):
        taken = np.zeros((gh, gw), bool)
        for k in np.argsort(depths[:, i]):     # nearer people claim their cells first
            x1, y1, x2, y2 = cells[k, i]
            whole = max((x2 - x1) * (y2 - y1), 1)
            x1, y1, x2, y2 = max(x1, 0), max(y1, 0), min(x2, gw), min(y2, gh)
            if x2 <= x1 or y2 <= y1:
                continue
            free = ~taken[y1:y2, x1:x2]
            out[k, i] = free.sum() / whole
            taken[y1:y2, x1:x2] = True
    return out


def synthesize_group(motions: Sequence[Motion], config: GroupConfig = GroupConfig(),
                     progress: Callable[[int, int], None] | None = None) -> GroupClip:
    """Film several motions together, each on its scripted path (:data:`PATHS`).

    Args:
        motions: One per person (``config.people`` of them, see :func:`pick_motions`); shorter ones loop.
        config: People, camera and scene.
        progress: Called as progress(frames_done, total) while frames are rendered.

    Returns:
        A :class:`GroupClip`; frames render lazily (bounded memory) and identically for a seed.
    """
    if len(motions) != config.people:
        raise ConfigError(f"synthesize_group: {config.people} people but {len(motions)} motions")
    synth = config.synth
    motions = [resample(m, synth.fps) for m in motions]
    t = max(2, int(round(config.seconds * synth.fps)))
    centre = np.array([0.0, 0.0, config.distance])
    position = np.array([0.0, config.camera_height, 0.0])
    rotation = look_at(torch.tensor(position[None]), torch.tensor((centre + [0.0, 1.0, 0.0])[None]),
                       torch.zeros(1, dtype=torch.float64))[0].numpy()
    camera = Camera(rotation, position, default_focal(synth.width, synth.height, config.fov_deg),
                    np.array([synth.width / 2, synth.height / 2]), synth.width, synth.height)
    half_width = config.distance * synth.width / 2 / camera.focal
    right, ahead = (axis / np.linalg.norm(axis) for axis in np.asarray(camera.rotation)[[0, 2]][:, [0, 2]])
    world = []
    for k, motion in enumerate(motions):
        scripted = path_points(PATHS[k % len(PATHS)], t)
        depth = scripted[:, 1] + _LAP_DEPTH * (k // len(PATHS))
        floor_xz = centre[[0, 2]] + scripted[:, :1] * half_width * right + depth[:, None] * ahead
        world.append(place_on_path(motion.joints, floor_xz))
    world = np.stack(world)
    rng = np.random.default_rng(synth.seed)
    styles = [synth.style or Style.random(rng) for _ in motions]
    poses3d = camera.world_to_camera(world)
    boxes = _boxes(camera, world)
    kind = synth.background if synth.background != "random" else ("outdoor", "studio")[rng.integers(2)]
    background = render_background(camera, kind, rng, centre)
    frames = SynthFrames(poses3d, camera, styles, background, synth, progress)
    return GroupClip(frames, camera, float(synth.fps), tuple(m.name for m in motions), poses3d.astype(np.float32),
                     camera.project(poses3d).astype(np.float32), boxes,
                     visible_fraction(boxes, poses3d[:, :, 0, 2], synth.width, synth.height))


def _boxes(camera: Camera, world: np.ndarray) -> np.ndarray:
    """(P, T, 4) float32 pixel boxes around each whole body (joints plus soles, hand tips and crown)."""
    pix = np.stack([camera.project(camera.world_to_camera(framing_points(w))) for w in world])
    return np.concatenate([pix.min(axis=2), pix.max(axis=2)], axis=-1).astype(np.float32)


def save_group_truth(path: str | Path, clip: GroupClip) -> None:
    """Write a group clip's ground truth as .npz (atomically).

    Keys: ids (P,) int64 (0..P-1, the person's index); names (P,); poses3d (P, T, 17, 3) camera-frame
    metres; keypoints2d (P, T, 17, 2) pixels; boxes (P, T, 4) pixels; visible (P, T); joint_names (17,);
    fps; width; height; camera_rotation (3, 3) world-to-camera; camera_position (3,); focal; center (2,).
    """
    cam = clip.camera
    atomic_save_npz(path, ids=np.arange(len(clip.names), dtype=np.int64), names=np.array(clip.names),
                    poses3d=clip.poses3d, keypoints2d=clip.keypoints2d, boxes=clip.boxes, visible=clip.visible,
                    joint_names=np.array(H36M17.joints), fps=np.float64(clip.fps), width=np.int64(cam.width),
                    height=np.int64(cam.height), camera_rotation=np.asarray(cam.rotation),
                    camera_position=np.asarray(cam.position), focal=np.float64(cam.focal),
                    center=np.asarray(cam.center))
