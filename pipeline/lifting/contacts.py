"""Foot contact: when each foot is on the ground, from how low it is under the body and how fast it moves.

A foot on the ground is low and still. The height cue is measured in the body's own frame, levelled: the
ankle's height above the lowest it gets below the pelvis over the track (a planted foot is the lowest point of
a standing or walking body), each foot against its own lowest unless that is well above the other foot's. The world frame's absolute heights and speeds would be the natural cues, but
they carry the trajectory's errors: on rendered clips of the validation subjects the estimated world ankle of a
planted foot sat anywhere from 4 to 40 cm above the estimated floor and moved at a median 0.5 m/s, while a
swinging one moved at a median 0.7 m/s. So with the trajectory (``--trajectory``) the world speed only vetoes
feet that clearly travel (above 3 m/s), and height is the cue that decides; a jump with the legs held under the
body looks like standing.

Probabilities are the product of logistic ramps; the thresholds (3.5 cm, 3 m/s) were chosen on those
validation clips against contacts read off the mocap, for the recall that foot locking needs
(``pose3d evaluate-contacts``, docs/skeleton.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.errors import ConfigError, ShapeError

CONTACT_JOINTS = ("r_ankle", "l_ankle")


@dataclass(frozen=True)
class ContactConfig:
    """Foot-contact settings (``lift.contacts`` in the run configuration).

    Attributes:
        enabled: Estimate contacts (exported; drawn in the 3D panel).
        height_m: Ankle height above the lowest it gets below the pelvis at which the contact probability is one
            half, metres.
        height_scale_m: Width of that ramp, metres.
        speed_m_s: Horizontal ankle speed at which the probability is one half (world frame only), m/s.
        speed_scale_m_s: Width of that ramp, m/s.
        lock: With the trajectory, pin each foot where it touches the ground while the contact lasts (foot
            locking: the skeleton is refitted, bones kept, the pelvis moved as needed).
        floor_spread_m: How far above the other foot's lowest a foot's own lowest may be and still count as its
            floor, metres (0: both feet share the lowest; 0.03 and 0.06 measured alike on the validation subjects).
    """

    enabled: bool = True
    height_m: float = 0.035
    height_scale_m: float = 0.008
    speed_m_s: float = 3.0
    speed_scale_m_s: float = 0.5
    lock: bool = True
    floor_spread_m: float = 0.03

    def __post_init__(self) -> None:
        if min(self.height_m, self.height_scale_m, self.speed_m_s, self.speed_scale_m_s) <= 0:
            raise ConfigError(f"lift.contacts: thresholds and ramp widths must be > 0, got {self}")


def _ramp(value: np.ndarray, threshold: float, scale: float) -> np.ndarray:
    """1 well below ``threshold``, 0 well above, 0.5 at it."""
    return 1.0 / (1.0 + np.exp(np.clip((value - threshold) / scale, -50, 50)))


def contact_probability(level: np.ndarray, times: np.ndarray, config: ContactConfig = ContactConfig(),
                        world: np.ndarray | None = None) -> np.ndarray:
    """Per foot and frame, the probability that it is on the ground.

    Args:
        level: (T, 2, 3) right and left ankle relative to the pelvis, metres, in a levelled frame (y up).
        times: (T,) seconds of each frame.
        config: Thresholds.
        world: (T, 2, 3) the same ankles placed in the world frame (y up), or None without the trajectory.

    Returns:
        (T, 2) float32 probabilities in [0, 1].
    """
    if level.ndim != 3 or level.shape[1:] != (2, 3) or times.shape != (len(level),) or (
            world is not None and world.shape != level.shape):
        raise ShapeError(f"contact_probability: ankles {level.shape}, times {times.shape}")
    if len(level) == 0:
        return np.zeros((0, 2), np.float32)
    lowest = np.percentile(level[..., 1], 5)
    # Each foot against its own lowest (a lifter may hold one planted foot a few cm high), but never against
    # more than floor_spread_m above the other's: a foot held up all along is no floor.
    own = np.minimum(np.percentile(level[..., 1], 5, axis=0), lowest + config.floor_spread_m)
    height = level[..., 1] - own
    p = _ramp(height, config.height_m, config.height_scale_m)
    if world is not None and len(world) > 1:
        # Repeated timestamps (a duplicated frame) would divide by zero: spread them by a microsecond.
        t = times + np.arange(len(times)) * 1e-6
        speed = np.linalg.norm(np.gradient(world[..., [0, 2]], t, axis=0), axis=-1)
        p = p * _ramp(speed, config.speed_m_s, config.speed_scale_m_s)
    return p.astype(np.float32)


def contact_spans(flags: np.ndarray) -> list[tuple[int, int, int]]:
    """The contact spans of a (T, 2) bool array: (foot, first frame, one past the last frame)."""
    spans = []
    for foot in range(flags.shape[1]):
        edges = np.diff(np.concatenate([[0], flags[:, foot].astype(int), [0]]))
        spans += [(foot, int(a), int(b)) for a, b in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1))]
    return spans


def lock_targets(ankles: np.ndarray, flags: np.ndarray) -> np.ndarray:
    """Where each foot should stay during each contact: its median position over the contact.

    Args:
        ankles: (T, 2, 3) world-frame right and left ankle, metres.
        flags: (T, 2) bool contacts.

    Returns:
        (T, 2, 3) world metres during contact, NaN elsewhere.
    """
    targets = np.full(ankles.shape, np.nan)
    for foot, a, b in contact_spans(flags):
        targets[a:b, foot] = np.median(ankles[a:b, foot], axis=0)
    return targets
