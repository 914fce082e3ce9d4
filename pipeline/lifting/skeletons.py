"""Stage 5b: one skeleton per tracked person, with foot contacts and (with the trajectory) locked feet.

After lifting, each track is fitted with a constant-bone rig (:func:`pipeline.lifting.fit.fit_skeleton`), and
``poses3d`` become the rig's joints (the lifter's own output stays as ``poses3d_raw``). Contacts are then
estimated per foot (:mod:`pipeline.lifting.contacts`); with the trajectory, the feet in contact are pinned to
the floor and the rig refitted around them (:func:`pipeline.lifting.fit.lock_feet`).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Callable, Sequence

import numpy as np

from pipeline.keypoints import coco_to_h36m
from pipeline.lifting.contacts import ContactConfig, contact_probability, lock_targets
from pipeline.lifting.fit import FitConfig, FootLock, fit_skeleton, lock_feet, run_starts
from pipeline.lifting.world import WorldFrame, estimate_up, estimate_world, level_rotation, placed_poses
from pipeline.skeleton import H36M17
from pipeline.types import Timeline, Track

_FEET = [H36M17.index("r_ankle"), H36M17.index("l_ankle")]


def fit_track(track: Track, fps: float, config: FitConfig) -> Track:
    """The track with a fitted skeleton: ``poses3d`` its joints, ``poses3d_raw`` the lifter's.

    Args:
        track: A lifted track.
        fps: Frame rate of the video, Hz.
        config: Fit settings.
    """
    _, trust = coco_to_h36m(track.keypoints, track.scores)
    fit = fit_skeleton(track.poses3d, fps, config, weights=trust, starts=run_starts(track.frames))
    return replace(track, poses3d=fit.poses3d, poses3d_raw=track.poses3d, skeleton=fit)


def with_contacts(track: Track, times: np.ndarray, config: ContactConfig, world: WorldFrame | None) -> Track:
    """The track with ``contacts`` set (the world speed counts when the track is placed in ``world``)."""
    placed = world is not None and track.root3d is not None
    rotation = world.rotation if placed else level_rotation(estimate_up(track.poses3d))
    level = track.poses3d.astype(np.float64) @ rotation.T
    feet = world.apply(placed_poses(track))[:, _FEET].astype(np.float64) if placed else None
    return replace(track, contacts=contact_probability(level[:, _FEET], times, config, feet))


def locked(track: Track, world: WorldFrame, fps: float, config: FitConfig) -> Track:
    """The placed track refitted with its feet pinned where its contacts say they touch the floor."""
    ankles = world.apply(placed_poses(track))[:, _FEET].astype(np.float64)
    lock = FootLock(world.rotation, world.offset, lock_targets(ankles, track.contacts >= 0.5), track.root3d)
    fit, root = lock_feet(track.skeleton, track.poses3d_raw, lock, fps, config, run_starts(track.frames))
    return replace(track, poses3d=fit.poses3d, skeleton=fit, root3d=root)


def fit_tracks(tracks: Sequence[Track], timeline: Timeline, fps: float, fit: FitConfig, contacts: ContactConfig,
               report: Callable[[str, int, int], None] | None = None) -> list[Track]:
    """Stage 5b on every lifted track (see the module docstring).

    Args:
        tracks: Lifted tracks (``poses3d`` set; ``root3d`` with the trajectory).
        timeline: Presentation times of the video's frames.
        fps: Frame rate of the video, Hz.
        fit: Skeleton-fit settings (disabled: ``poses3d`` stay the lifter's, and feet are not locked).
        contacts: Contact settings.
        report: Progress callback (stage 'fit', tracks done, total).

    Returns:
        The tracks with skeletons, contacts and (placed, with locking on) locked feet.
    """
    out = []
    for i, track in enumerate(tracks):
        out.append(fit_track(track, fps, fit) if fit.enabled and track.poses3d is not None else track)
        if report:
            report("fit", i + 1, len(tracks))
    if not contacts.enabled:
        return out
    world = estimate_world(out)
    out = [with_contacts(t, timeline.at(t.frames), contacts, world) if t.poses3d is not None else t for t in out]
    if world is None or not (contacts.lock and fit.enabled):
        return out
    return [locked(t, world, fps, fit) if t.root3d is not None and t.skeleton is not None else t for t in out]
