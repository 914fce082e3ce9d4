"""The synthetic renderer's figure: a clothed humanoid built from the 17 H36M joints, and its rasteriser.

The figure is a list of :class:`Blob` s. A blob is the convex hull of one or more ellipsoids: a limb is
two spheres (a tapered capsule), the torso a stack of flat elliptical rings, the head an ellipsoid with a
hair shell behind it, and the face cues (eyes, brows, nose, mouth, ears) small flat "decal" ellipsoids
that are drawn only when their outward normal faces the camera. Convex hulls of exact ellipsoid
silhouettes keep the shape right under perspective from any viewpoint, which a 2D stick drawing cannot.

Everything here is in the camera frame (OpenCV axes: x right, y down, z forward; metres; the camera at
the origin). The points the 17 joints do not give (body facing, head orientation, foot direction, chest
and hip widths) are derived from them; see :func:`build_body`. :func:`draw_body` fills the blobs far to
near (painter's algorithm), each several times, shrunk and shifted toward the light, from dark to bright,
so limbs read as round solids with darker silhouette edges.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from pipeline.camera import Camera
from pipeline.errors import ConfigError

# Limb radii in metres at (proximal, distal) ends for an average adult; scaled by Style.girth.
_THIGH, _SHIN = (0.09, 0.06), (0.056, 0.042)
_UPPER_ARM, _FOREARM = (0.050, 0.040), (0.037, 0.030)
_NECK_R = 0.047
_EPS = 1e-3  # depth step that forces one blob in front of another without moving it noticeably
# Shading layers: radius scale and brightness of each pass (outermost first).
_SCALES = np.array([1.0, 0.88, 0.76, 0.64, 0.52, 0.40, 0.28])
_SHADES = np.array([0.50, 0.62, 0.73, 0.83, 0.91, 0.98, 1.03])
_SHIFT = 4                     # sub-pixel bits for cv2 polygon filling
_RING = 24                     # points per ellipsoid silhouette

# Palettes (BGR). Real skin and hair tones; clothing mostly mid-saturation so it reads against the floor.
_SKIN = [(160, 190, 235), (140, 175, 225), (115, 150, 200), (90, 125, 175), (60, 90, 140), (45, 65, 100)]
# Hair is kept darker than any skin tone: a skin-coloured back of the head reads as a face (a left/right
# flip for a detector), and dark hair from behind is the main cue that the person faces away.
_HAIR = [(15, 18, 22), (25, 32, 45), (30, 45, 65), (40, 55, 80), (70, 75, 80)]
_SHIRT = [(40, 40, 200), (180, 90, 30), (60, 160, 60), (30, 170, 230), (200, 200, 200), (140, 60, 140),
          (50, 50, 50), (170, 130, 60), (80, 80, 170), (230, 230, 235)]
_TROUSERS = [(110, 60, 30), (40, 40, 40), (90, 130, 150), (80, 80, 80), (60, 50, 40), (130, 90, 60)]
_SHOES = [(30, 30, 30), (235, 235, 235), (40, 60, 90), (120, 120, 120)]


@dataclass(frozen=True)
class Style:
    """Look of one synthetic person.

    Attributes:
        shirt, trousers, skin, hair, shoes: BGR colours, 0-255.
        long_sleeves: Shirt colour on the forearms too (else bare forearms).
        girth: Multiplier on every limb and torso thickness.
        light: (3,) unit direction toward the light in the world frame (Y up).
    """

    shirt: tuple[float, float, float] = (40, 40, 200)
    trousers: tuple[float, float, float] = (110, 60, 30)
    skin: tuple[float, float, float] = (140, 175, 225)
    hair: tuple[float, float, float] = (30, 45, 70)
    shoes: tuple[float, float, float] = (30, 30, 30)
    long_sleeves: bool = False
    girth: float = 1.0
    light: tuple[float, float, float] = (0.4, 0.8, 0.45)

    def __post_init__(self) -> None:
        if not 0.3 <= self.girth <= 3.0:
            raise ConfigError(f"Style.girth must be in [0.3, 3], got {self.girth}")
        if np.linalg.norm(self.light) < 1e-6:
            raise ConfigError("Style.light must be a non-zero direction")

    @classmethod
    def random(cls, rng: np.random.Generator) -> "Style":
        """A random person: palette colours with a little jitter, light from above at a random azimuth."""
        def pick(palette, jitter=12.0):
            c = np.asarray(palette[rng.integers(len(palette))], float) + rng.uniform(-jitter, jitter, 3)
            return tuple(float(v) for v in np.clip(c, 0, 255))

        az, el = rng.uniform(0, 2 * np.pi), rng.uniform(np.radians(35), np.radians(70))
        light = (np.cos(el) * np.sin(az), np.sin(el), np.cos(el) * np.cos(az))
        return cls(pick(_SHIRT), pick(_TROUSERS), pick(_SKIN, 6.0), pick(_HAIR), pick(_SHOES),
                   bool(rng.random() < 0.3), float(rng.uniform(0.92, 1.12)), tuple(float(v) for v in light))


@dataclass
class Blob:
    """One convex piece of the figure: the convex hull of K ellipsoids x = c + M u, |u| = 1.

    Attributes:
        centers: (K, 3) ellipsoid centres, camera frame, metres.
        mats: (K, 3, 3) ellipsoid matrices (columns: semi-axis vectors), metres.
        color: (3,) BGR base colour.
        depth: Painter's key: blobs are drawn from the largest depth to the smallest.
        axis: (3,) unit long axis (limbs), shading is not shifted along it; None for round blobs.
        normal: (3,) outward unit normal of a decal: drawn only when it faces the camera; None otherwise.
    """

    centers: np.ndarray
    mats: np.ndarray
    color: np.ndarray
    depth: float
    axis: np.ndarray | None = None
    normal: np.ndarray | None = None


def _unit(v: np.ndarray) -> np.ndarray:
    return v / max(float(np.linalg.norm(v)), 1e-9)


def _ortho(v: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Unit part of ``v`` perpendicular to the unit vector ``ref`` (any perpendicular if ``v`` has none).

    Never zero: a zero axis would make an ellipsoid flat and its matrix singular.
    """
    p = v - np.dot(v, ref) * ref
    if np.linalg.norm(p) < 1e-6:  # coincident joints or v parallel to ref
        p = np.cross(ref, [1.0, 0.0, 0.0] if abs(ref[0]) < 0.9 else [0.0, 1.0, 0.0])
    return _unit(p)


def _ellipsoid(c, axes, radii) -> tuple[np.ndarray, np.ndarray]:
    """(centre, matrix) of an ellipsoid with unit ``axes`` (3 vectors) and semi-axis ``radii``."""
    return np.asarray(c, float), np.stack([a * r for a, r in zip(axes, radii)], axis=1)


def _blob(parts, color, axis=None, normal=None) -> Blob:
    centers = np.stack([p[0] for p in parts])
    depth = float(np.linalg.norm(centers.mean(axis=0)))
    return Blob(centers, np.stack([p[1] for p in parts]), np.asarray(color, float), depth, axis, normal)


def _capsule(p0, r0, p1, r1, color) -> Blob:
    eye = np.eye(3)
    return _blob([_ellipsoid(p0, eye, (r0,) * 3), _ellipsoid(p1, eye, (r1,) * 3)], color, _unit(p1 - p0))


def body_axes(j: np.ndarray, up: np.ndarray, shoulders: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Body lateral (toward the person's left) and facing directions from hips and shoulders.

    Args:
        j: (17, 3) H36M joints, camera frame, metres.
        up: (3,) world up in the camera frame.
        shoulders: Weight of the shoulder line against the hip line (the head turns with the shoulders,
            the feet with the hips; either line alone is unreliable when seen edge-on).

    Returns:
        (lateral, forward) unit vectors, both perpendicular to ``up``; forward = lateral x up.
    """
    lateral = shoulders * _unit(j[11] - j[14]) + (1.0 - shoulders) * _unit(j[4] - j[1])
    lateral = _ortho(lateral if np.linalg.norm(lateral) > 1e-3 else j[4] - j[1], up)
    return lateral, np.cross(lateral, up)


def _torso(j: np.ndarray, style: Style) -> list[Blob]:
    """Trousers (crotch to waist) and a shirt (waist to neck base), lofted through elliptical rings."""
    g, pelvis, thorax = style.girth, j[0], j[8]
    axis = _unit(thorax - pelvis)
    hip_l = _ortho(j[4] - j[1], axis)
    sh_l = _ortho(j[11] - j[14], axis)
    hip_half = 0.5 * float(np.linalg.norm(j[4] - j[1]))
    sh_half = 0.5 * float(np.linalg.norm(j[11] - j[14]))
    shoulders = 0.5 * (j[11] + j[14])

    def ring(c, lat, a, b):  # a flat elliptical cross-section, a across the body, b front to back
        lat = _ortho(lat, axis)
        return _ellipsoid(c, (lat, axis, np.cross(lat, axis)), (a * g, 0.004, b * g))

    waist_c = pelvis + 0.35 * (thorax - pelvis)
    chest_c = waist_c + 0.6 * (shoulders - waist_c)
    crotch = ring(pelvis - 0.1 * axis, hip_l, 0.06, 0.07)
    hips = ring(pelvis + 0.02 * axis, hip_l, hip_half + 0.08, 0.105)
    belt = ring(pelvis + 0.3 * (thorax - pelvis), hip_l + sh_l, hip_half + 0.065, 0.095)
    waist = ring(pelvis + 0.25 * (thorax - pelvis), hip_l + sh_l, hip_half + 0.07, 0.1)
    chest = ring(chest_c, sh_l + 0.3 * hip_l, max(sh_half * 0.8, hip_half + 0.06), 0.115)
    # Deltoids below the shoulder joints, the shoulder line (acromions) a few cm above them.
    delts = ring(shoulders - 0.03 * axis, sh_l, sh_half + 0.025, 0.09)
    top = ring(shoulders + 0.03 * axis, sh_l, sh_half - 0.03, 0.07)
    collar = ring(shoulders + 0.09 * axis, sh_l, 0.065, 0.05)  # trapezius slope up to the neck
    trousers = _blob([crotch, hips, belt], style.trousers, axis)
    # One blob for the whole shirt: two would show a shading seam across the chest.
    shirt = _blob([waist, chest, delts, top, collar], style.shirt, axis)
    shirt.depth = min(shirt.depth, trousers.depth - _EPS)  # the shirt hangs over the trousers in any view
    return [trousers, shirt]


def _limbs(j: np.ndarray, style: Style) -> list[Blob]:
    """Thighs, shins (trousers), upper arms (shirt), forearms (skin or sleeves) and hands."""
    g = style.girth
    forearm = style.shirt if style.long_sleeves else style.skin
    out = []
    for hip, knee, ankle in ((1, 2, 3), (4, 5, 6)):
        out.append(_capsule(j[hip], _THIGH[0] * g, j[knee], _THIGH[1] * g, style.trousers))
        out.append(_capsule(j[knee], _SHIN[0] * g, j[ankle], _SHIN[1] * g, style.trousers))
    for sh, el, wr in ((11, 12, 13), (14, 15, 16)):
        # Start the sleeve a little down the arm so its round end does not poke above the shoulder line.
        top = j[sh] + 0.015 * _unit(j[el] - j[sh])
        out.append(_capsule(top, _UPPER_ARM[0] * g, j[el], _UPPER_ARM[1] * g, style.shirt))
        out.append(_capsule(j[el], _FOREARM[0] * g, j[wr], _FOREARM[1] * g, forearm))
        hand_dir = _unit(j[wr] - j[el])
        out.append(_capsule(j[wr] + 0.03 * hand_dir, 0.04 * g, j[wr] + 0.11 * hand_dir, 0.032 * g, style.skin))
    return out


def _feet(j: np.ndarray, forward: np.ndarray, style: Style) -> list[Blob]:
    """Shoes: a heel and a toe sphere per foot, pointing along the body's facing, square to the shin."""
    out = []
    for knee, ankle in ((2, 3), (5, 6)):
        down = _unit(j[ankle] - j[knee])
        toe_dir = _ortho(forward, down)  # the foot is roughly perpendicular to the shin
        heel = j[ankle] + 0.035 * down - 0.035 * toe_dir
        toe = j[ankle] + 0.045 * down + 0.15 * toe_dir
        eye = np.eye(3)
        out.append(_blob([_ellipsoid(heel, eye, (0.045,) * 3), _ellipsoid(toe, eye, (0.042,) * 3)],
                         style.shoes, toe_dir))
    return out


def _head(j: np.ndarray, lateral: np.ndarray, style: Style, neck_depth: float) -> list[Blob]:
    """Neck, hair shell, face, ears and face decals (eyes, brows, nose, mouth)."""
    up = _unit(j[10] - j[8])  # thorax -> crown: joint 9 is the nose in H36M but the neck base in CMU
    lat = _ortho(lateral, up)
    fwd = np.cross(lat, up)
    # Head half-height ~11 cm, scaled with the trunk (pelvis-thorax is ~0.46 m on an adult).
    ru = 0.11 * float(np.clip(np.linalg.norm(j[8] - j[0]) / 0.46, 0.85, 1.15))
    # CMU's head joint sits a few cm below the crown; the skull is forward of the spine line.
    c = j[10] + (0.045 - ru) * up + 0.025 * fwd
    axes = (lat, up, fwd)
    hair = _blob([_ellipsoid(c - 0.015 * fwd + 0.02 * up, axes, (0.084, ru * 0.98, 0.1))], style.hair)
    face = _blob([_ellipsoid(c + 0.01 * fwd - 0.012 * up, axes, (0.077, ru, 0.094))], style.skin)
    neck = _capsule(j[8] + 0.02 * up, _NECK_R * style.girth, c - 0.3 * ru * up, _NECK_R * 0.9, style.skin)
    neck.depth = min(neck.depth, neck_depth - _EPS)
    # Hair first when the camera sees the face, last when it sees the back of the head.
    sees_face = float(np.dot(fwd, -_unit(c))) > -0.2
    first, second = (hair, face) if sees_face else (face, hair)
    first.depth = min(first.depth, neck.depth - _EPS)
    second.depth = first.depth - _EPS
    out = [neck, hair, face]
    skin, dark = np.asarray(style.skin, float), np.array([35.0, 30.0, 30.0])
    fc = c + 0.01 * fwd - 0.012 * up

    def decal(offset, radii, color, normal):
        blob = _blob([_ellipsoid(fc + offset, axes, radii)], color, normal=_unit(normal))
        blob.depth = second.depth - 2 * _EPS
        out.append(blob)

    for s in (-1.0, 1.0):
        eye_n = _unit(fwd + 0.5 * s * lat)
        decal(0.035 * s * lat + 0.025 * up + 0.083 * fwd, (0.012, 0.007, 0.003), dark, eye_n)
        decal(0.036 * s * lat + 0.048 * up + 0.074 * fwd, (0.017, 0.004, 0.003), style.hair, eye_n)
        decal(0.076 * s * lat + 0.005 * up, (0.004, 0.028, 0.018), skin * 0.85, s * lat)
    decal(-0.01 * up + 0.096 * fwd, (0.011, 0.02, 0.012), skin * 0.8, fwd)
    decal(-0.05 * up + 0.086 * fwd, (0.022, 0.006, 0.003), skin * np.array([0.6, 0.6, 0.85]), _unit(fwd - 0.3 * up))
    return out


def build_body(j: np.ndarray, up: np.ndarray, style: Style) -> list[Blob]:
    """Every blob of the figure for one pose.

    Args:
        j: (17, 3) H36M joints in the camera frame, metres.
        up: (3,) unit world up in the camera frame.
        style: Colours and proportions.

    Returns:
        Blobs with their painter's depths set; draw them from the largest depth down.
    """
    j = np.asarray(j, float)
    head_lateral = body_axes(j, up, shoulders=0.8)[0]
    feet_forward = body_axes(j, up, shoulders=0.2)[1]
    torso = _torso(j, style)
    return torso + _limbs(j, style) + _feet(j, feet_forward, style) + _head(j, head_lateral, style, torso[-1].depth)


def _silhouettes(centers: np.ndarray, mats: np.ndarray) -> np.ndarray:
    """Exact outline points of ellipsoids x = c + M u (|u| = 1) seen from the camera at the origin.

    The outline is where the surface normal M^-T u is perpendicular to x, i.e. u . w = -1 with
    w = M^-1 c: a circle on the unit sphere, sampled at _RING angles and mapped back through M.

    Args:
        centers: (N, 3) camera frame, metres.
        mats: (N, 3, 3) semi-axis matrices.

    Returns:
        (N, _RING, 3) outline points; NaN for an ellipsoid that contains the camera.
    """
    w = np.linalg.solve(mats, centers[..., None])[..., 0]
    n = np.linalg.norm(w, axis=-1, keepdims=True)
    wn = w / np.maximum(n, 1e-12)
    helper = np.where(np.abs(wn[:, :1]) < 0.9, [[1.0, 0.0, 0.0]], [[0.0, 1.0, 0.0]])
    e1 = np.cross(wn, helper)
    e1 /= np.linalg.norm(e1, axis=-1, keepdims=True)
    e2 = np.cross(wn, e1)
    radius = np.sqrt(np.clip(1.0 - 1.0 / np.maximum(n, 1e-12) ** 2, 0.0, 1.0))
    ang = np.linspace(0.0, 2 * np.pi, _RING, endpoint=False)
    u = (-wn / np.maximum(n, 1e-12))[:, None] + radius[:, None] * (
        np.cos(ang)[None, :, None] * e1[:, None] + np.sin(ang)[None, :, None] * e2[:, None])
    pts = centers[:, None] + np.einsum("nij,nkj->nki", mats, u)
    pts[(n[:, 0] <= 1.0)] = np.nan
    return pts


def _layers(blob: Blob, light: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray]:
    """Shading passes of one blob: per layer its ellipsoids shrunk and moved toward the light.

    Returns:
        (centres per layer, matrices per layer, (L,) brightness factors); decals get one flat pass.
    """
    if blob.normal is not None:
        return [blob.centers], [blob.mats], np.array([1.0])
    view = blob.centers / np.linalg.norm(blob.centers, axis=-1, keepdims=True)
    # Only the part of the light across the line of sight (and across a limb's axis) moves the highlight.
    shift = light - (view @ light)[:, None] * view
    if blob.axis is not None:
        shift -= (shift @ blob.axis)[:, None] * blob.axis
    size = np.sqrt((blob.mats ** 2).sum(axis=(1, 2)) / 2.0)[:, None]
    centres = [blob.centers + (1.0 - s) * 0.75 * size * shift for s in _SCALES]
    return centres, [blob.mats * s for s in _SCALES], _SHADES


def draw_body(image: np.ndarray, blobs: list[Blob], camera: Camera, light: np.ndarray) -> None:
    """Draw the figure into ``image`` (in place): every blob's shading passes, far blobs first.

    Args:
        image: (H, W, 3) uint8 BGR.
        blobs: From :func:`build_body`.
        camera: Projects camera-frame points to pixels.
        light: (3,) unit direction toward the light, camera frame.
    """
    order = sorted(blobs, key=lambda b: -b.depth)
    visible, cs, ms = [], [], []
    for blob in order:
        if (blob.centers[:, 2] < 0.1).any():
            continue  # behind or grazing the camera
        if blob.normal is not None and float(np.dot(blob.normal, -blob.centers.mean(0))) <= 0.3 * blob.depth:
            continue  # a decal on the far side of the head
        c, m, shades = _layers(blob, light)
        visible.append((blob, shades, len(cs)))
        cs.extend(c)
        ms.extend(m)
    if not visible:
        return
    k = [len(c) for c in cs]
    pts = _silhouettes(np.concatenate(cs), np.concatenate(ms))
    uv = pts[..., :2] / pts[..., 2:3] * camera.focal + np.asarray(camera.center)
    starts = np.concatenate([[0], np.cumsum(k)])
    fixed = np.round(uv * (1 << _SHIFT))
    for blob, shades, first in visible:
        colors = np.clip(blob.color[None] * shades[:, None], 0, 255).tolist()
        for layer, color in enumerate(colors):
            poly = fixed[starts[first + layer]:starts[first + layer + 1]].reshape(-1, 2)
            if not np.isfinite(poly).all():
                break
            hull = cv2.convexHull(poly.astype(np.int32))
            cv2.fillConvexPoly(image, hull, color, lineType=cv2.LINE_AA, shift=_SHIFT)
