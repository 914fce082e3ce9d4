"""One skeleton per person: constant bones and per-frame joint rotations fitted to a lifted track.

The lifter gives each frame's 17 joints on their own, so bones stretch and shrink from frame to frame and
nothing says how a joint is turned. :func:`fit_skeleton` estimates the person's bone lengths once
(:func:`pipeline.lifting.rig.bone_lengths`), then solves inverse kinematics over the whole track at once
with torch's L-BFGS: local rotations of :mod:`pipeline.lifting.rig`'s joints (6D rotation parameters for free
joints, an angle for the knee and elbow hinges) that bring the rig's joints onto the lifted ones, with

- a temporal smoothness term (second differences of every joint's global orientation, at any frame rate),
- a pull of the zero-length helper joints (lower back, collars) toward rest, which settles the pelvis tilt and
  the chest's twist that positions leave free, and a weak pull of every joint toward rest for the twists
  nothing observes (head, forearms),
- hinge limits (knees and elbows do not bend backwards), which also picks the limb's twist.

The fitted positions are the rig's forward kinematics, so every bone keeps its length in every frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from pipeline.errors import ConfigError, ShapeError
from pipeline.lifting import rig
from pipeline.skeleton import H36M17
from pipeline.types import SkeletonFit


@dataclass(frozen=True)
class FitConfig:
    """Skeleton-fit settings (``lift.fit`` in the run configuration).

    Attributes:
        enabled: Fit a skeleton to each track; exported ``poses3d`` are then its forward kinematics.
        smoothness: Weight of the orientation second differences (per frame at 50 Hz, scaled for other rates).
        helper_prior: Weight pulling the lower back and collars toward their rest rotation.
        rest_prior: Weight pulling every joint toward its rest rotation (settles twists positions leave free).
        iterations: L-BFGS iterations of each of the two passes (per frame, then with smoothness).
        lock_weight: Weight of the ankle-to-target term of foot locking (``--trajectory`` only).
        root_prior: Weight keeping the locked fit's pelvis near the trajectory's, per square metre.
        root_smoothness: Weight of the locked pelvis path's second differences (per frame at 50 Hz), which
            calms the trajectory's jitter.
    """

    enabled: bool = True
    smoothness: float = 0.02
    helper_prior: float = 1e-3
    rest_prior: float = 1e-5
    iterations: int = 60
    lock_weight: float = 10.0
    root_prior: float = 0.1
    root_smoothness: float = 10.0

    def __post_init__(self) -> None:
        weights = (self.smoothness, self.helper_prior, self.rest_prior, self.lock_weight, self.root_prior,
                   self.root_smoothness)
        if min(weights) < 0 or self.iterations < 1:
            raise ConfigError(f"lift.fit: weights must be >= 0 and iterations >= 1, got {self}")


def rotation_6d(params: torch.Tensor) -> torch.Tensor:
    """(..., 6) two column vectors -> (..., 3, 3) rotation by Gram-Schmidt (continuous: Zhou et al. 2019)."""
    a, b = params[..., :3], params[..., 3:]
    x = a / a.norm(dim=-1, keepdim=True).clamp_min(1e-9)
    b = b - (x * b).sum(-1, keepdim=True) * x
    y = b / b.norm(dim=-1, keepdim=True).clamp_min(1e-9)
    return torch.stack([x, y, torch.cross(x, y, dim=-1)], dim=-1)


def _hinge(angle: torch.Tensor, axis: int) -> torch.Tensor:
    """(...,) angles (radians) -> (..., 3, 3) rotations about the rig's x (0) or y (1) axis."""
    c, s = torch.cos(angle), torch.sin(angle)
    one, zero = torch.ones_like(c), torch.zeros_like(c)
    rows = ([[one, zero, zero], [zero, c, -s], [zero, s, c]] if axis == 0 else
            [[c, zero, s], [zero, one, zero], [-s, zero, c]])
    return torch.stack([torch.stack(r, -1) for r in rows], -2)


def _kabsch(rest: np.ndarray, observed: np.ndarray) -> np.ndarray:
    """(T, 3, 3) rotations R minimising |R rest - observed| per frame. rest (K, 3), observed (T, K, 3)."""
    h = np.einsum("ki,tkj->tij", rest, observed)
    u, _, vt = np.linalg.svd(h)
    d = np.sign(np.linalg.det(np.swapaxes(vt, 1, 2) @ np.swapaxes(u, 1, 2)))
    fix = np.ones((len(h), 3))
    fix[:, 2] = d
    return np.swapaxes(vt, 1, 2) @ (fix[:, :, None] * np.swapaxes(u, 1, 2))


_ANKLES = [rig.JOINTS.index("r_ankle"), rig.JOINTS.index("l_ankle")]
# A bend past straight costs 10 m² of summed squared joint error per radian squared: a hard limit in practice.
_HINGE_WEIGHT = 10.0


class _Parameters(torch.nn.Module):
    """The free parameters of a track's fit and the rotations they make."""

    def __init__(self, balls: np.ndarray, knees: np.ndarray, elbows: np.ndarray) -> None:
        super().__init__()
        # L-BFGS flattens gradients with view(), which needs contiguous parameters.
        def parameter(values: np.ndarray) -> torch.nn.Parameter:
            return torch.nn.Parameter(torch.tensor(np.ascontiguousarray(values), dtype=torch.float64))

        self.balls, self.knees, self.elbows = parameter(balls), parameter(knees), parameter(elbows)

    @classmethod
    def start(cls, root: np.ndarray) -> "_Parameters":
        """Parameters at rest except the root orientation ``root`` (T, 3, 3)."""
        t = len(root)
        balls = np.zeros((t, len(rig.BALLS), 6))
        balls[..., 0], balls[..., 4] = 1.0, 1.0                                  # identity: columns x and y
        balls[:, 0] = _six(root)
        # Slightly bent knees and elbows start on the anatomical side of their hinge limits.
        return cls(balls, np.full((t, 2), 0.2), np.tile([-0.2, 0.2], (t, 1)))

    @classmethod
    def of(cls, rotations: np.ndarray) -> "_Parameters":
        """The parameters that make ``rotations`` (T, 20, 3, 3), a fit's local rotations."""
        knees = rotations[:, list(rig.HINGE_X)]
        elbows = rotations[:, list(rig.HINGE_Y)]
        return cls(_six(rotations[:, list(rig.BALLS)]), np.arctan2(knees[..., 2, 1], knees[..., 1, 1]),
                   np.arctan2(elbows[..., 0, 2], elbows[..., 0, 0]))

    def rotations(self) -> torch.Tensor:
        """(T, 20, 3, 3) local rotations."""
        t = self.balls.shape[0]
        eye = torch.eye(3, dtype=torch.float64).expand(t, len(rig.JOINTS), 3, 3).clone()
        eye[:, list(rig.BALLS)] = rotation_6d(self.balls)
        eye[:, list(rig.HINGE_X)] = _hinge(self.knees, 0)
        eye[:, list(rig.HINGE_Y)] = _hinge(self.elbows, 1)
        return eye

    def hinge_violation(self) -> torch.Tensor:
        """Squared bend past straight: knees flex positive, the left elbow negative, the right positive."""
        return (torch.relu(-self.knees).square().sum(-1) + torch.relu(self.elbows[:, 0]).square()
                + torch.relu(-self.elbows[:, 1]).square())


def _six(rotations: np.ndarray) -> np.ndarray:
    """(..., 3, 3) rotations -> (..., 6) their first two columns, the 6D parameters."""
    return np.concatenate([rotations[..., :, 0], rotations[..., :, 1]], axis=-1)


def run_starts(frames: np.ndarray) -> np.ndarray:
    """(R,) indices where a new gap-free run of ``frames`` (T,) begins (always starts with 0)."""
    return np.concatenate([[0], np.flatnonzero(np.diff(frames) > 1) + 1])


def _smooth_mask(t: int, starts: np.ndarray) -> torch.Tensor:
    """(T-2,) True where frames i, i+1, i+2 lie in one run (no second difference across a gap)."""
    run = np.zeros(t, int)
    run[starts[starts > 0]] = 1
    run = np.cumsum(run)
    return torch.from_numpy(run[2:] == run[:-2]) if t > 2 else torch.zeros(0, dtype=torch.bool)


def fit_skeleton(poses: np.ndarray, fps: float, config: FitConfig = FitConfig(),
                 weights: np.ndarray | None = None, starts: np.ndarray | None = None) -> SkeletonFit:
    """Fit one constant-bone rig to a lifted track.

    Args:
        poses: (T, 17, 3) H36M-17 camera-frame metres, pelvis at the origin (the lifter's output).
        fps: Frame rate of the track, Hz (sets the smoothness term's scale).
        config: Weights and iterations.
        weights: (T, 17) trust per joint (e.g. 2D confidences) for the bone lengths; None trusts all.
        starts: Indices where the track resumes after a gap (:func:`run_starts`); smoothness never spans one.

    Returns:
        A :class:`SkeletonFit` with T frames.
    """
    if poses.ndim != 3 or poses.shape[1:] != (17, 3) or len(poses) == 0 or not np.isfinite(poses).all():
        raise ShapeError(f"fit_skeleton expects finite (T>0, 17, 3) poses, got {poses.shape}")
    poses = poses.astype(np.float64) - poses[:, :1]
    offsets = rig.rest_offsets(poses, rig.bone_lengths(poses, weights))
    # The root starts turned so that the rest hips, spine and thorax best match the lifted ones.
    at = {name: rig.JOINTS.index(name) for name in ("r_hip", "l_hip", "spine", "thorax")}
    rest_torso = np.stack([offsets[at["r_hip"]], offsets[at["l_hip"]], offsets[at["spine"]],
                           offsets[at["spine"]] + offsets[at["thorax"]]])
    lifted_torso = poses[:, [H36M17.index(name) for name in at]]
    params = _Parameters.start(_kabsch(rest_torso, lifted_torso))
    problem = _Problem(torch.from_numpy(poses), torch.from_numpy(offsets), config, fps,
                       _smooth_mask(len(poses), np.zeros(1, int) if starts is None else starts))
    for smooth in (False, True):
        problem.solve(params, smooth)
    return problem.result(params)


@dataclass(frozen=True)
class FootLock:
    """Where the feet are pinned: world-frame ankle targets during contact.

    Attributes:
        rotation, offset: (3, 3) and (3,) the camera-to-world transform, ``world = rotation @ camera + offset``
            (:class:`pipeline.lifting.world.WorldFrame`'s).
        targets: (T, 2, 3) world metres of the right and left ankle while in contact (NaN elsewhere).
        root3d: (T, 3) camera-frame pelvis positions (the trajectory) the fit is placed at.
    """

    rotation: np.ndarray
    offset: np.ndarray
    targets: np.ndarray
    root3d: np.ndarray


def lock_feet(fit: SkeletonFit, poses: np.ndarray, lock: FootLock, fps: float, config: FitConfig = FitConfig(),
              starts: np.ndarray | None = None) -> tuple[SkeletonFit, np.ndarray]:
    """Refit a placed skeleton so its ankles stay where they touch the ground, moving the pelvis as needed.

    Args:
        fit: The track's fit (bones are kept).
        poses: (T, 17, 3) the lifted joints it was fitted to, camera-frame metres, pelvis at the origin.
        lock: Ankle targets and the placement.
        fps: Frame rate, Hz.
        config: Weights and iterations (``lock_weight``, ``root_prior``).
        starts: Run starts, as for :func:`fit_skeleton`.

    Returns:
        (the refitted :class:`SkeletonFit`, the adjusted (T, 3) camera-frame pelvis positions).
    """
    params = _Parameters.of(fit.rotations.astype(np.float64))
    problem = _Problem(torch.from_numpy(poses.astype(np.float64) - poses[:, :1]),
                       torch.from_numpy(fit.offsets.astype(np.float64)), config, fps,
                       _smooth_mask(len(poses), np.zeros(1, int) if starts is None else starts), lock)
    problem.solve(params, True)
    return problem.result(params), (lock.root3d + problem.shift.detach().numpy()).astype(np.float32)


class _Problem:
    """The fit's objective over a whole track, and L-BFGS on it."""

    def __init__(self, target: torch.Tensor, offsets: torch.Tensor, config: FitConfig, fps: float,
                 smooth_mask: torch.Tensor, lock: FootLock | None = None) -> None:
        self.target, self.offsets, self.config, self.lock = target, offsets, config, lock
        # Second differences shrink with the square of the frame interval: rescale to 50 Hz's.
        self.rate = (fps / 50.0) ** 4
        self.smooth_mask = smooth_mask.to(torch.float64)[:, None]
        self.shift = torch.zeros(len(target), 3, dtype=torch.float64, requires_grad=lock is not None)
        if lock is not None:
            self.world = torch.from_numpy(np.asarray(lock.rotation, np.float64))
            self.world_offset = torch.from_numpy(np.asarray(lock.offset, np.float64))
            self.root = torch.from_numpy(np.asarray(lock.root3d, np.float64))
            targets = np.asarray(lock.targets, np.float64)
            self.pinned = torch.from_numpy(np.isfinite(targets).all(-1).astype(np.float64))
            self.targets = torch.from_numpy(np.nan_to_num(targets))

    def _accel(self, x: torch.Tensor) -> torch.Tensor:
        """Mean squared second difference of (T, ...) over time, within runs, at the 50 Hz scale."""
        accel = (x[2:] - 2 * x[1:-1] + x[:-2]).reshape(len(x) - 2, -1)
        return self.rate * (self.smooth_mask * accel.square()).sum(-1).mean()

    def loss(self, params: _Parameters, smooth: bool) -> torch.Tensor:
        """The objective: joint error (m², summed over joints, mean over frames) plus priors, limits, smoothness
        and, when locking, the pinned ankles' error and the pelvis's shift."""
        c = self.config
        rotations = params.rotations()
        positions, orientations = rig.forward_kinematics(rotations, self.offsets)
        eye = torch.eye(3, dtype=torch.float64)
        loss = (rig.to_h36m(positions) - self.target).square().sum(-1).mean()
        loss = loss + c.helper_prior * (rotations[:, list(rig.HELPERS)] - eye).square().sum((-1, -2, -3)).mean()
        loss = loss + c.rest_prior * (rotations[:, 1:] - eye).square().sum((-1, -2, -3)).mean()
        loss = loss + _HINGE_WEIGHT * params.hinge_violation().mean()
        if smooth and len(self.target) > 2:
            loss = loss + c.smoothness * self._accel(orientations)
        if self.lock is not None:
            ankles = (positions[:, _ANKLES] + (self.root + self.shift)[:, None]) @ self.world.T + self.world_offset
            miss = (ankles - self.targets).square().sum(-1)
            loss = loss + c.lock_weight * (self.pinned * miss).mean()
            loss = loss + c.root_prior * self.shift.square().sum(-1).mean()
            if len(self.target) > 2:
                # Smooth the corrected path, not the correction: the shift may cancel the trajectory's jitter.
                loss = loss + c.root_smoothness * self._accel(self.root + self.shift)
        return loss

    def solve(self, params: _Parameters, smooth: bool) -> None:
        """Run L-BFGS (``config.iterations`` iterations) on the objective."""
        variables = list(params.parameters()) + ([self.shift] if self.lock is not None else [])
        optimizer = torch.optim.LBFGS(variables, lr=1.0, max_iter=self.config.iterations, history_size=20,
                                      line_search_fn="strong_wolfe", tolerance_grad=1e-10, tolerance_change=1e-14)

        def closure() -> torch.Tensor:
            optimizer.zero_grad()
            loss = self.loss(params, smooth)
            loss.backward()
            return loss

        threads = torch.get_num_threads()
        # The tensors are small: extra threads only add synchronisation, which stalls on a busy machine.
        torch.set_num_threads(1)
        try:
            optimizer.step(closure)
        finally:
            torch.set_num_threads(threads)

    def result(self, params: _Parameters) -> SkeletonFit:
        with torch.no_grad():
            rotations = params.rotations()
            positions, _ = rig.forward_kinematics(rotations, self.offsets)
        return SkeletonFit(self.offsets.numpy().astype(np.float32), rotations.numpy().astype(np.float32),
                           positions.numpy().astype(np.float32))
