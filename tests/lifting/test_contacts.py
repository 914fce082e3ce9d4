"""Foot contacts (pipeline/lifting/contacts.py) and stage 5b over tracks (pipeline/lifting/skeletons.py)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from pipeline.errors import ConfigError, ShapeError
from pipeline.lifting.contacts import ContactConfig, contact_probability, contact_spans, lock_targets
from pipeline.lifting.fit import FitConfig
from pipeline.lifting.skeletons import fit_tracks
from pipeline.types import Timeline, Track
from tests.support.synth import moving_person


def _feet(heights: np.ndarray, speed: float, fps: float = 50.0) -> tuple[np.ndarray, np.ndarray]:
    """(T, 2, 3) pelvis-relative levelled ankles ``heights`` (T, 2) above the lowest, sliding along x at ``speed``."""
    t = np.arange(len(heights)) / fps
    ankles = np.zeros((len(heights), 2, 3))
    ankles[..., 1] = -0.9 + heights
    ankles[..., 0] = speed * t[:, None]
    return ankles, t


def test_a_low_foot_is_in_contact_and_a_raised_or_fast_one_is_not():
    heights = np.zeros((40, 2))
    heights[:, 1] = 0.2                               # the left foot held up
    level, t = _feet(heights, 0.0)
    p = contact_probability(level, t)
    assert (p[:, 0] > 0.9).all() and (p[:, 1] < 0.01).all() and p.dtype == np.float32
    # Standing, with the lifter holding one planted foot 3 cm higher than the other: both are planted.
    heights[:, 1] = 0.03
    assert (contact_probability(_feet(heights, 0.0)[0], t) > 0.9).all()
    # Placed in the world: a foot that travels fast is not planted, however low.
    world, t = _feet(np.zeros((40, 2)), 6.0)
    assert (contact_probability(level, t, world=world)[:, 0] < 0.01).all()
    still, _ = _feet(np.zeros((40, 2)), 0.2)
    assert (contact_probability(level, t, world=still)[:, 0] > 0.9).all()


def test_contact_spans_and_lock_targets():
    flags = np.zeros((10, 2), bool)
    flags[2:5, 0] = flags[7:, 0] = flags[:3, 1] = True
    assert contact_spans(flags) == [(0, 2, 5), (0, 7, 10), (1, 0, 3)]
    ankles = np.random.default_rng(0).normal(size=(10, 2, 3))
    targets = lock_targets(ankles, flags)
    assert np.isnan(targets[~flags]).all()
    assert np.allclose(targets[2:5, 0], np.median(ankles[2:5, 0], axis=0))


def test_settings_and_shapes_are_checked():
    with pytest.raises(ConfigError):
        ContactConfig(height_m=0.0)
    with pytest.raises(ShapeError):
        contact_probability(np.zeros((5, 3, 3)), np.zeros(5))


def _track(frames: int = 60, placed: bool = False) -> Track:
    poses = moving_person(frames, seed=3, jitter=0.03) * np.array([1.0, -1.0, 1.0])
    poses = (poses - poses[:, :1]).astype(np.float32)
    root = np.tile([0.2, 0.1, 4.0], (frames, 1)).astype(np.float32) if placed else None
    return Track(3, np.arange(frames, dtype=np.int64), np.full((frames, 17, 2), 100.0, np.float32),
                 np.ones((frames, 17), np.float32), np.zeros(frames, bool), poses, root)


def test_stage_5b_fits_skeletons_and_keeps_the_raw_poses():
    track = _track()
    out, = fit_tracks([track], Timeline.uniform(60, 30.0), 30.0, FitConfig(), ContactConfig())
    assert out.skeleton is not None and np.array_equal(out.poses3d_raw, track.poses3d)
    assert np.allclose(out.poses3d, out.skeleton.poses3d) and out.contacts.shape == (60, 2)
    assert out.root3d is None
    off, = fit_tracks([track], Timeline.uniform(60, 30.0), 30.0, FitConfig(enabled=False),
                      ContactConfig(enabled=False))
    assert off is track


def test_placed_tracks_get_world_contacts_and_locked_feet():
    track = _track(placed=True)
    out, = fit_tracks([track], Timeline.uniform(60, 30.0), 30.0, FitConfig(), ContactConfig())
    unlocked, = fit_tracks([track], Timeline.uniform(60, 30.0), 30.0, FitConfig(), replace(ContactConfig(), lock=False))
    assert out.root3d is not None and out.contacts is not None
    assert np.array_equal(unlocked.root3d, track.root3d) and not np.array_equal(out.root3d, track.root3d)
    assert np.allclose(out.skeleton.offsets, unlocked.skeleton.offsets)
