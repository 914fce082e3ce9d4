"""Training pairs for the lifter: mocap windows seen through random virtual cameras, with detector-like 2D.

Each sample is a window of consecutive mocap frames (optionally every s-th frame: multi-rate sampling,
paper 003), optionally bred by evolutionary augmentation (:mod:`pipeline.training.evolve`, paper 004),
re-proportioned (random bone lengths), filmed by a random pinhole camera
(:func:`pipeline.training.cameras.sample_cameras`), optionally mirrored, and corrupted the way a single-image 2D
detector corrupts keypoints (jitter, a per-window bias per joint, stale joints, left/right swaps). Windows
are cut at sequence ends by replicating the end frame, as inference pads.

Multi-rate sampling follows paper 003: a share ``rate_prob`` of the windows takes every s-th frame of its
clip, s drawn uniformly from the intervals above 1 (3, 5, 7), so the lifter also sees motion s times faster
than captured; the other windows keep the original rate. Taking every s-th frame around a random anchor and
replicating the clip's end frames is the same as subsampling the whole clip at s (from a random phase) and
cutting padded windows from it, as paper 003 subsamples sequences.

Outputs:
    x: (B, L, 17, 2) normalised screen coordinates, L = receptive_field + K - 1.
    y: (B, K, 17, 3) pelvis-relative camera-frame metres for the K output frames.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from pipeline.camera import normalize_screen
from pipeline.errors import InputError
from pipeline.keypoints import rebuild_torso
from pipeline.lifting.model import pose_size_2d
from pipeline.skeleton import H36M17
from pipeline.training.cameras import sample_cameras
from pipeline.training.config import AugmentConfig, CameraConfig
from pipeline.training.detected import DetectedWindows
from pipeline.training.evolve import bone_vectors, evolve_windows, from_bones

# Joints a 2D detector finds worst get more jitter: wrists, ankles, and the face-derived head.
_JOINT_NOISE = torch.ones(17)
_JOINT_NOISE[[3, 6, 13, 16]] = 1.5
_JOINT_NOISE[[10, 12, 15]] = 1.25
_LIMB_SWAPS = (([1, 2, 3], [4, 5, 6]), ([14, 15, 16], [11, 12, 13]))  # (right, left) legs, then arms


def symmetric_bone_scale(b: int, amount: float, gen: torch.Generator) -> torch.Tensor:
    """(B, J) per-child-joint length factors, the same for a left bone and its right twin."""
    scale = 1.0 + amount * (2.0 * torch.rand(b, H36M17.num_joints, generator=gen) - 1.0)
    perm = torch.as_tensor(H36M17.flip_permutation())
    left = torch.as_tensor(H36M17.left)
    scale[:, left] = scale[:, perm[left]]
    return scale


def rescale_bones(joints: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Scale every bone by a factor, keeping the pelvis in place.

    Args:
        joints: (B, T, J, 3) positions, metres.
        scale: (B, J) factor for the bone that ends at each joint (root entry ignored).

    Returns:
        (B, T, J, 3) re-proportioned positions.
    """
    return from_bones(joints[:, :, 0], bone_vectors(joints) * scale[:, None, :, None])


def corrupt_2d(uv: torch.Tensor, config: AugmentConfig, gen: torch.Generator) -> torch.Tensor:
    """Make exact 2D keypoints look like a single-image detector's.

    Args:
        uv: (B, T, J, 2) pixel keypoints.
        config: Noise amounts; ``clean_fraction`` of the samples stay exact.
        gen: Random generator.

    Returns:
        (B, T, J, 2) corrupted pixel keypoints.
    """
    b, t, j, _ = uv.shape
    height = (uv[..., 1].amax(dim=(1, 2)) - uv[..., 1].amin(dim=(1, 2))).clamp_min(1.0)
    lo, hi = config.noise_px
    sigma = (lo + (hi - lo) * torch.rand(b, generator=gen)) * height
    sigma = sigma * (torch.rand(b, generator=gen) >= config.clean_fraction)
    per_joint = sigma[:, None, None, None] * _JOINT_NOISE[None, None, :, None]
    jitter = torch.randn(uv.shape, generator=gen) * per_joint
    bias = torch.randn(b, 1, j, 2, generator=gen) * per_joint * 0.5
    out = uv + jitter + bias
    noisy = (sigma > 0)[:, None, None]
    # Stale joints: a missed joint often keeps an earlier frame's location.
    stale = (torch.rand(b, t, j, generator=gen) < config.drop_prob) & noisy
    lag = torch.randint(1, 5, (b, t, j), generator=gen)
    src = (torch.arange(t)[None, :, None] - lag).clamp_min(0)
    held = torch.gather(out, 1, src[..., None].expand(-1, -1, -1, 2))
    out = torch.where(stale[..., None], held, out)
    for right, left in _LIMB_SWAPS:
        swap = ((torch.rand(b, t, generator=gen) < config.swap_prob) & noisy[..., 0])[..., None, None]
        a, c = out[:, :, right], out[:, :, left]
        out[:, :, right], out[:, :, left] = torch.where(swap, c, a), torch.where(swap, a, c)
    return out


@dataclass(frozen=True)
class Clip:
    """A mocap sequence for training: joints (T, 17, 3) world metres Y-up and its name/subject/action."""

    joints: torch.Tensor
    name: str
    subject: str
    action: str


class PoseWindows:
    """Random training windows over a set of mocap clips (all at the training frame rate).

    Args:
        clips: Sequences at the training frame rate.
        receptive_field: Lifter receptive field.
        out_frames: K consecutive output frames per sample (temporal loss terms need K >= 3).
        causal: Output frames at the window end instead of its centre.
        camera: Virtual camera ranges.
        augment: Augmentation settings.
        errors: Detected windows whose 2D-stage errors noisy samples may carry (the learned noise model).
        error_share: Share of the noisy samples given a real error window instead of synthetic noise.
    """

    def __init__(self, clips: Sequence[Clip], receptive_field: int, out_frames: int, causal: bool,
                 camera: CameraConfig, augment: AugmentConfig, errors: DetectedWindows | None = None,
                 error_share: float = 0.0) -> None:
        if not clips:
            raise InputError("no training motions: check the data folder and the subject split")
        self.joints = torch.cat([c.joints for c in clips]).float()
        lengths = torch.tensor([len(c.joints) for c in clips])
        self.ends = lengths.cumsum(0)
        self.starts = self.ends - lengths
        self.length = receptive_field + out_frames - 1
        self.receptive_field, self.out_frames, self.causal = receptive_field, out_frames, causal
        self.camera, self.augment = camera, augment
        self.errors, self.error_share = errors, error_share if errors is not None else 0.0

    def __len__(self) -> int:
        return len(self.joints)

    def _indices(self, b: int, gen: torch.Generator) -> torch.Tensor:
        """(B, L) frame indices into ``self.joints``: a window per sample, clamped inside its clip."""
        frame = torch.randint(len(self.joints), (b,), generator=gen)
        clip = torch.searchsorted(self.ends, frame, right=True)
        intervals = torch.tensor([s for s in self.augment.rate_intervals if s > 1] or [1])
        interval = intervals[torch.randint(len(intervals), (b,), generator=gen)]
        interval = torch.where(torch.rand(b, generator=gen) < self.augment.rate_prob, interval, 1)
        anchor = self.length - 1 if self.causal else self.length // 2
        offsets = (torch.arange(self.length) - anchor)[None] * interval[:, None]
        idx = frame[:, None] + offsets
        return torch.maximum(torch.minimum(idx, self.ends[clip, None] - 1), self.starts[clip, None])

    def film(self, batch_size: int, gen: torch.Generator, noisy: bool = True) -> "FilmedWindows":
        """Draw, augment and film a batch of windows (the step both training targets share).

        Args:
            batch_size: B windows.
            gen: Random generator.
            noisy: Corrupt the 2D like a detector (False: exact projections).

        Returns:
            A :class:`FilmedWindows` of B windows of L = receptive_field + K - 1 frames.
        """
        world = self.joints[self._indices(batch_size, gen)]
        aug = self.augment
        if aug.evolve.fraction > 0.0:
            world = evolve_windows(world, aug.evolve, gen).windows
        scale = symmetric_bone_scale(batch_size, aug.bone_scale, gen)
        scale *= 1.0 + aug.global_scale * (2.0 * torch.rand(batch_size, 1, generator=gen) - 1.0)
        world = rescale_bones(world, scale)
        cams = sample_cameras(world, self.camera, gen)
        cam3d = cams.to_camera(world)
        uv = cams.project(cam3d)
        flip = torch.rand(batch_size, generator=gen) < aug.flip
        perm = torch.as_tensor(H36M17.flip_permutation())
        width = cams.size[:, 0, None, None]
        # The principal point is the image centre, so mirroring pixels about it mirrors the camera frame.
        uv = torch.where(flip[:, None, None, None], torch.stack([width - uv[..., 0], uv[..., 1]], -1)[:, :, perm], uv)
        mirrored = cam3d[:, :, perm] * torch.tensor([-1.0, 1.0, 1.0])
        cam3d = torch.where(flip[:, None, None, None], mirrored, cam3d)
        exact = uv
        if noisy:
            uv = corrupt_2d(uv, aug, gen)
        if aug.torso_from_limbs:
            uv, exact = rebuild_torso(uv), rebuild_torso(exact)
        if noisy and self.error_share > 0.0:
            uv = self._with_real_errors(uv, exact, gen)
        return FilmedWindows(uv, cam3d, cams.focal, cams.center, cams.size)

    def _with_real_errors(self, uv: torch.Tensor, exact: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """Give ``error_share`` of the windows a window of the 2D stage's own error, scaled to the person's size."""
        b, length = uv.shape[:2]
        use = (torch.rand(b, generator=gen) < self.error_share)[:, None, None, None]
        errors = self.errors.errors(b, length, gen) * pose_size_2d(exact)[..., None]
        return torch.where(use, exact + errors, uv)

    @property
    def first_output(self) -> int:
        """Index in a window of its first output frame (the centre, or the end when causal)."""
        return self.receptive_field - 1 if self.causal else self.receptive_field // 2

    def sample(self, batch_size: int, gen: torch.Generator, noisy: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """Draw a batch of (x, y) pairs; see the module docstring for shapes. ``noisy=False`` gives exact 2D."""
        shot = self.film(batch_size, gen, noisy)
        x = normalize_screen(shot.uv, shot.size[:, 0, None, None], shot.size[:, 1, None, None])
        y = shot.cam3d[:, self.first_output: self.first_output + self.out_frames]
        return x, y - y[:, :, :1]


@dataclass(frozen=True)
class FilmedWindows:
    """B windows of L frames seen by B cameras (torch tensors).

    Attributes:
        uv: (B, L, 17, 2) pixels (detector-like when drawn noisy).
        cam3d: (B, L, 17, 3) camera-frame metres, absolute (not pelvis-relative).
        focal: (B,) focal lengths, pixels.
        center: (B, 2) principal points, pixels.
        size: (B, 2) image (width, height), pixels.
    """

    uv: torch.Tensor
    cam3d: torch.Tensor
    focal: torch.Tensor
    center: torch.Tensor
    size: torch.Tensor
