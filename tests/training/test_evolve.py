"""Tests for pipeline/training/evolve.py (paper 004's crossover, mutation and natural selection on windows), its wiring
into PoseWindows and training, and the ablation configs."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.config import load_config, to_dict
from pipeline.errors import ConfigError, ShapeError
from pipeline.lifting.model import LifterConfig
from pipeline.skeleton import H36M17
from pipeline.training import evolve
from pipeline.training.config import (
    AugmentConfig,
    CameraConfig,
    EvolveConfig,
    LossConfig,
    SemiSupervisedConfig,
    TrainConfig,
)
from pipeline.training.dataset import Clip, PoseWindows
from pipeline.training.evolve import LIMIT_NAMES, PARTS, axis_angle, body_frames, crossover, evolve_windows, mutate
from pipeline.training.mocap import load_dataset
from pipeline.training.split import Split
from pipeline.training.train import train
from tests.support.synth import SHARED, STANDING, rot_y

CMU = SHARED / "data" / "mocap" / "cmu"
ABLATION = Path(__file__).resolve().parents[2] / "configs" / "ablation"


def _rot_x(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def _rot_z(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _turn(pose: np.ndarray, joints: list[int], pivot: int, rot: np.ndarray) -> np.ndarray:
    out = pose.copy()
    out[joints] = (pose[joints] - pose[pivot]) @ rot.T + pose[pivot]
    return out


def _walk_pose(phase: float, swing: float, look: float) -> np.ndarray:
    """STANDING (facing +Z, left +X): legs and arms swung about the lateral axis, knees/elbows bent, head turned."""
    p = _turn(STANDING, [9, 10], 8, rot_y(look * np.sin(0.5 * phase)) @ _rot_x(0.5 * look * np.cos(phase)))
    for hip, knee, ankle, sign in ((1, 2, 3, 1.0), (4, 5, 6, -1.0)):
        hip_flex = sign * swing * np.sin(phase)                     # + swings the knee forward
        knee_flex = math.radians(25.0) + 0.8 * swing * (1.0 + np.sin(phase + 1.0 + (sign < 0) * np.pi))
        p = _turn(p, [knee, ankle], hip, _rot_x(-hip_flex))
        p = _turn(p, [ankle], knee, _rot_x(knee_flex))              # + takes the ankle backwards
    for shoulder, elbow, wrist, sign in ((14, 15, 16, -1.0), (11, 12, 13, 1.0)):
        p = _turn(p, [elbow, wrist], shoulder, _rot_x(-sign * swing * np.sin(phase)))
        p = _turn(p, [wrist], elbow, _rot_x(-math.radians(30.0) - 0.5 * swing * (1 + np.sin(phase))))
    return p


def walks(n: int = 8, frames: int = 27, seed: int = 0) -> torch.Tensor:
    """(n, frames, 17, 3) smooth, anatomically valid walking windows (Y up, feet near y = 0), metres."""
    rng = np.random.default_rng(seed)
    out = np.empty((n, frames, 17, 3))
    for i in range(n):
        phase0, speed, yaw0 = rng.uniform(0, 2 * np.pi), rng.uniform(0.1, 0.25), rng.uniform(0, 2 * np.pi)
        swing, turn, look = math.radians(rng.uniform(10, 35)), rng.uniform(-0.03, 0.03), rng.uniform(-0.6, 0.6)
        for t in range(frames):
            pose = _walk_pose(phase0 + speed * t, swing, look) @ rot_y(yaw0 + turn * t).T
            out[i, t] = pose + np.array([0.02 * t, 0.0, 0.01 * t])
    return torch.tensor(out, dtype=torch.float32)


def _bones(p: torch.Tensor) -> torch.Tensor:
    return evolve.bone_vectors(p)


def _acceleration(w: torch.Tensor) -> torch.Tensor:
    """(N,) largest per-joint second difference of each window (N, T, J, 3), metres/frame^2."""
    return w.diff(n=2, dim=1).norm(dim=-1).amax(dim=(1, 2))


# --------------------------------------------------------------------------------------------------------------
# joint-angle limits


def test_walks_are_valid_parents():
    w = walks(16)
    assert not evolve.limit_violations(w).any()
    assert w.shape == (16, 27, 17, 3)


def _one_rule(pose: np.ndarray) -> set[str]:
    v = evolve.limit_violations(torch.tensor(pose, dtype=torch.float32))
    return {name for name, bad in zip(LIMIT_NAMES, v.tolist()) if bad}


@pytest.mark.parametrize("name,make", [
    ("knee_hyperextension", lambda p: _turn(p, [3], 2, _rot_x(-math.radians(40)))),        # shin swung forward
    ("knee_flexion", lambda p: _turn(p, [3], 2, _rot_x(math.radians(172)))),
    ("elbow_flexion", lambda p: _turn(p, [13], 12, _rot_x(-math.radians(175)))),
    ("hip_flexion", lambda p: _turn(p, [2, 3], 1, _rot_x(-math.radians(165)))),            # thigh up the chest
    ("hip_extension", lambda p: _turn(p, [5, 6], 4, _rot_x(math.radians(80)))),
    ("hip_adduction", lambda p: _turn(p, [2, 3], 1, _rot_z(math.radians(60)))),             # right leg far left
    ("shoulder_extension", lambda p: _turn(p, [15, 16], 14, _rot_x(math.radians(100)))),
    ("neck", lambda p: _turn(p, [9, 10], 8, _rot_x(math.radians(110)))),                   # head bent backwards
    ("spine_twist", lambda p: _turn(p, list(range(8, 17)), 7, rot_y(math.radians(100)))),
])
def test_limits_flag_impossible_poses(name, make):
    assert _one_rule(STANDING) == set()
    assert name in _one_rule(make(STANDING))


def test_limits_do_not_depend_on_position_heading_or_mirroring():
    w = walks(4)
    bad = w.clone()
    bad[:, :, 3] = bad[:, :, 2] + (bad[:, :, 2] - bad[:, :, 1])              # knee bent back on every frame
    bad = mutate(bad, torch.full((4,), 3), axis_angle(torch.tensor([[1.0, 0.0, 0.0]] * 4), torch.full((4,), -0.8)))
    ref = evolve.limit_violations(bad)
    assert ref.any()
    rot = torch.tensor(rot_y(1.3) @ _rot_x(0.4), dtype=torch.float32)
    torch.testing.assert_close(evolve.limit_violations(bad @ rot.T + 5.0).float(), ref.float())
    perm = torch.as_tensor(H36M17.flip_permutation())
    mirrored = bad[..., perm, :] * torch.tensor([-1.0, 1.0, 1.0])
    assert torch.equal(evolve.limit_violations(mirrored).any(-1), ref.any(-1))


def test_limit_violations_checks_its_shape():
    with pytest.raises(ShapeError):
        evolve.limit_violations(torch.zeros(4, 16, 3))


@pytest.mark.skipif(not (CMU / "MANIFEST.tsv").exists(), reason="../shared/data/mocap not present")
def test_real_mocap_almost_always_passes_the_limits(tmp_path):
    """Boxing, jumping jacks, squats, bending over, sitting, jumps and dance: real motion is not rejected."""
    rows = (CMU / "MANIFEST.tsv").read_text().splitlines()
    want = ("asfamc/14/14_02.", "asfamc/14/14_06.", "asfamc/14/14_20.", "asfamc/14/14_29.", "16/16_01.", "/60_01")
    picked = [r for r in rows[1:] if any(w in r.split("\t")[0] for w in want)]
    (tmp_path / "m.tsv").write_text("\n".join([rows[0], *(str(CMU / r.split("\t")[0]) + r[r.index("\t"):]
                                                          for r in picked)]) + "\n")
    motions = load_dataset(tmp_path / "m.tsv", fps=50.0, cache_dir=tmp_path / "cache")
    joints = torch.cat([torch.from_numpy(m.joints) for m in motions])
    assert len(picked) == 6 and len(joints) > 5000
    bad = evolve.limit_violations(joints)
    assert bad.any(-1).float().mean() < 0.01, dict(zip(LIMIT_NAMES, bad.float().mean(0).tolist()))


# --------------------------------------------------------------------------------------------------------------
# crossover


@pytest.mark.parametrize("part", range(len(PARTS)))
def test_crossover_transplants_the_donor_sub_tree_with_the_receiver_lengths(part):
    receiver, donor = walks(6, seed=1), walks(6, seed=2) * 1.1     # donor: a bigger person
    child = crossover(receiver, donor, torch.full((6,), part))
    rb, db, cb = _bones(receiver), _bones(donor), _bones(child)
    torch.testing.assert_close(cb.norm(dim=-1), rb.norm(dim=-1), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(child[:, :, 0], receiver[:, :, 0])
    name, taken, chest = PARTS[part]
    kept = [k for k in range(17) if k not in taken]
    torch.testing.assert_close(cb[:, :, kept], rb[:, :, kept], atol=1e-5, rtol=0)
    # The transplanted bones point the same way in the receiver's body frame as in the donor's.
    frame = 1 if chest else 0
    local = lambda b, f: torch.einsum("ntij,ntbi->ntbj", f, torch.nn.functional.normalize(b, dim=-1))
    c_local = local(cb[:, :, list(taken)], body_frames(child)[frame])
    d_local = local(db[:, :, list(taken)], body_frames(donor)[frame])
    torch.testing.assert_close(c_local, d_local, atol=1e-4, rtol=0)
    assert not torch.allclose(cb[:, :, list(taken)], rb[:, :, list(taken)], atol=1e-3), name


def test_crossover_with_itself_is_the_identity():
    w = walks(4)
    torch.testing.assert_close(crossover(w, w, torch.arange(4)), w, atol=1e-5, rtol=0)


# --------------------------------------------------------------------------------------------------------------
# mutation


@pytest.mark.parametrize("bone", evolve.MUTABLE)
def test_mutation_turns_one_bone_and_carries_its_descendants(bone):
    w = walks(3, seed=3)
    axis = torch.nn.functional.normalize(torch.tensor([[0.3, -0.5, 0.8], [1.0, 0.0, 0.0], [0.0, 0.2, 1.0]]), dim=-1)
    rot = axis_angle(axis, torch.tensor([0.4, -0.3, 0.25]))
    out = mutate(w, torch.full((3,), bone), rot)
    before, after = _bones(w), _bones(out)
    subtree = [c for c in range(17) if evolve.ANCESTRY[c, bone] == 1]
    others = [c for c in range(17) if c not in subtree]
    assert bone in subtree
    torch.testing.assert_close(after[:, :, others], before[:, :, others], atol=1e-5, rtol=0)
    # Every bone of the sub-tree turns by the same world rotation P R P^T (P: the pelvis frame).
    pelvis = body_frames(w)[0]
    world = pelvis @ rot[:, None] @ pelvis.transpose(-1, -2)
    expected = torch.einsum("ntij,ntbj->ntbi", world, before[:, :, subtree])
    torch.testing.assert_close(after[:, :, subtree], expected, atol=1e-5, rtol=0)
    assert (after[:, :, bone] - before[:, :, bone]).norm(dim=-1).min() > 1e-3
    torch.testing.assert_close(after.norm(dim=-1), before.norm(dim=-1), atol=1e-5, rtol=0)


def test_zero_mutation_is_the_identity():
    w = walks(2)
    out = mutate(w, torch.tensor([2, 12]), axis_angle(torch.tensor([[0.0, 1.0, 0.0]] * 2), torch.zeros(2)))
    torch.testing.assert_close(out, w, atol=1e-5, rtol=0)


# --------------------------------------------------------------------------------------------------------------
# evolution of a batch


def test_evolution_is_reproducible_and_seeded():
    w, cfg = walks(16), EvolveConfig(fraction=0.5)
    a = evolve_windows(w, cfg, torch.Generator().manual_seed(0))
    b = evolve_windows(w, cfg, torch.Generator().manual_seed(0))
    c = evolve_windows(w, cfg, torch.Generator().manual_seed(1))
    assert torch.equal(a.windows, b.windows) and torch.equal(a.accepted, b.accepted)
    assert not torch.equal(a.windows, c.windows)
    assert a.windows.shape == w.shape and a.chosen.shape == a.accepted.shape == (16,)


def test_fraction_chooses_windows_and_leaves_the_rest():
    w = walks(64, frames=9)
    none = evolve_windows(w, EvolveConfig(fraction=0.0), torch.Generator().manual_seed(0))
    assert torch.equal(none.windows, w) and not none.chosen.any()
    half = evolve_windows(w, EvolveConfig(fraction=0.5, generations=3), torch.Generator().manual_seed(0))
    assert 16 < int(half.chosen.sum()) < 48
    assert torch.equal(half.windows[~half.chosen], w[~half.chosen])
    assert (half.accepted[~half.chosen] == 0).all() and (half.accepted <= 3).all()
    changed = (half.windows - w).abs().flatten(1).amax(1) > 1e-4
    assert torch.equal(changed, half.accepted > 0)


def test_rejected_offspring_never_reach_training():
    """Wild mutations (sigma 70 deg) break limits often; nothing that breaks them comes out."""
    w = walks(64, seed=5)
    out = evolve_windows(w, EvolveConfig(fraction=1.0, generations=3, mutation_sigma_deg=70.0),
                         torch.Generator().manual_seed(2))
    assert (out.accepted < 3).any(), "the test needs some rejections"
    assert (out.accepted > 0).any()
    assert not evolve.limit_violations(out.windows).any()
    floor = w[..., 1].amin(dim=(1, 2)) - EvolveConfig().floor_tolerance
    assert (out.windows[..., 1].amin(dim=(1, 2)) >= floor).all()
    # Without selection, turns that large often give impossible bodies (so the check above can fail).
    g = torch.Generator().manual_seed(3)
    wild = mutate(w, torch.tensor(evolve.MUTABLE)[torch.randint(len(evolve.MUTABLE), (64,), generator=g)],
                  axis_angle(torch.nn.functional.normalize(torch.randn(64, 3, generator=g), dim=-1),
                             torch.full((64,), math.radians(100.0))))
    assert evolve.limit_violations(wild).any(-1).any(-1).float().mean() > 0.2


def test_evolved_windows_stay_smooth():
    w = walks(64, seed=6)
    out = evolve_windows(w, EvolveConfig(fraction=1.0, generations=2), torch.Generator().manual_seed(4))
    assert (out.accepted > 0).float().mean() > 0.5
    parents_worst = float(_acceleration(w).max())
    assert (_acceleration(out.windows) < 2.0 * parents_worst).all()
    # The same mutations drawn afresh for every frame would jitter: the smoothness test can fail.
    flat = w.reshape(-1, 1, 17, 3)
    g = torch.Generator().manual_seed(5)
    jitter = mutate(flat, torch.full((len(flat),), 16),
                    axis_angle(torch.nn.functional.normalize(torch.randn(len(flat), 3, generator=g), dim=-1),
                               torch.randn(len(flat), generator=g) * math.radians(15.0))).reshape(w.shape)
    assert (_acceleration(jitter) > 2.0 * parents_worst).float().mean() > 0.5


# --------------------------------------------------------------------------------------------------------------
# wiring: PoseWindows, training, configs


def _clips(n: int = 3) -> list[Clip]:
    return [Clip(walks(1, frames=120, seed=10 + i)[0], f"w{i}", str(i), "walk") for i in range(n)]


@pytest.mark.parametrize("causal", [False, True])
def test_pose_windows_with_evolution_keep_their_shapes_and_limits(causal):
    aug = AugmentConfig(flip=0.5, rate_prob=0.5, evolve=EvolveConfig(fraction=1.0, mutation_sigma_deg=40.0))
    data = PoseWindows(_clips(), 9, 3, causal, CameraConfig(), aug)
    x, y = data.sample(32, torch.Generator().manual_seed(0))
    assert x.shape == (32, 11, 17, 2) and y.shape == (32, 3, 17, 3)
    assert torch.isfinite(x).all() and torch.isfinite(y).all()
    assert torch.equal(y[:, :, 0], torch.zeros_like(y[:, :, 0]))
    assert not evolve.limit_violations(y).any()            # camera frame, mirrored or not: still within limits
    plain = PoseWindows(_clips(), 9, 3, causal, CameraConfig(), replace(aug, evolve=EvolveConfig()))
    assert not torch.equal(plain.sample(32, torch.Generator().manual_seed(0))[1], y)


def test_training_with_every_method_on(tmp_path):
    cfg = TrainConfig(epochs=1, samples_per_epoch=256, batch_size=64, seed=0,
                      lifter=LifterConfig(filter_widths=(3, 3), channels=16, dropout=0.1),
                      augment=AugmentConfig(rate_prob=0.5, evolve=EvolveConfig(fraction=0.5)),
                      loss=LossConfig(velocity=0.0, acceleration=0.0, limb_length=0.0, frames=1, bone=1.0))
    result = train(cfg, tmp_path, split=Split(train=_clips(), val=_clips(1), test=[]))
    assert result.best.exists() and np.isfinite(result.best_val_mpjpe_mm)


def test_evolve_config_from_yaml_and_its_checks(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("augment:\n  evolve:\n    fraction: 0.25\n    generations: 3\n")
    cfg = load_config(TrainConfig, path)
    assert cfg.augment.evolve == EvolveConfig(fraction=0.25, generations=3)
    assert TrainConfig().augment.evolve.fraction == 0.0 and TrainConfig().loss.bone == 0.0   # off by default
    path.write_text("augment:\n  evolve:\n    fracton: 0.25\n")
    with pytest.raises(ConfigError, match="did you mean 'fraction'"):
        load_config(TrainConfig, path)
    for bad in (dict(fraction=1.5), dict(generations=0), dict(mutation_sigma_deg=-1.0)):
        with pytest.raises(ConfigError):
            EvolveConfig(**bad)
    with pytest.raises(ConfigError, match="no interval above 1"):
        AugmentConfig(rate_prob=0.5, rate_intervals=(1,))
    with pytest.raises(ConfigError):
        AugmentConfig(rate_intervals=(0, 3))


def test_ablation_configs_differ_only_in_their_method():
    configs = {p.stem: load_config(TrainConfig, p) for p in sorted(ABLATION.glob("*.yaml"))}
    assert set(configs) == {"baseline", "multirate", "evolve", "boneloss", "causal", "coco_torso", "semisup",
                            "supervised_14"}
    base = configs["baseline"]
    assert base.epochs == 8 and base.samples_per_epoch == 200_000 and base.lifter.receptive_field == 27
    assert base.lifter.channels == 512 and base.lifter.input_norm == "pelvis_scale_pos"
    train_yaml = load_config(TrainConfig, ABLATION.parent / "train.yaml")
    assert (base.test_subjects, base.val_subjects) == (train_yaml.test_subjects, train_yaml.val_subjects)
    assert base.augment.rate_prob == 0.0 and base.augment.evolve.fraction == 0.0 and base.loss.bone == 0.0
    schedule = {k: getattr(base, k) for k in ("epochs", "samples_per_epoch", "lr_decay")}
    off = {"multirate": lambda c: replace(c, augment=replace(c.augment, rate_prob=0.0, rate_intervals=(1, 3, 5, 7))),
           "evolve": lambda c: replace(c, augment=replace(c.augment, evolve=EvolveConfig())),
           "boneloss": lambda c: replace(c, loss=replace(c.loss, bone=0.0)),
           "causal": lambda c: replace(c, lifter=replace(c.lifter, causal=False)),
           "coco_torso": lambda c: replace(c, augment=replace(c.augment, torso_from_limbs=False)),
           "semisup": lambda c: replace(c, semi=SemiSupervisedConfig(), **schedule),
           "supervised_14": lambda c: replace(c, semi=SemiSupervisedConfig(), **schedule)}
    for name, reset in off.items():
        assert configs[name] != base, name
        assert to_dict(reset(configs[name])) == to_dict(base), name
    # The semi-supervised pair shares a shorter schedule and differs from each other only in the unlabelled terms.
    semi, supervised = configs["semisup"], configs["supervised_14"]
    assert semi.semi.unlabeled_weight > 0 and supervised.semi.unlabeled_weight == 0 == supervised.semi.bone_weight
    assert replace(semi, semi=replace(semi.semi, unlabeled_weight=0.0, bone_weight=0.0)) == supervised


def test_shipped_training_config_and_its_variants_differ_only_in_kernel_widths():
    configs = ABLATION.parent
    shipped = load_config(TrainConfig, configs / "train.yaml")
    # The shipped run uses what helped in the ablation: the bone loss and the run-time torso.
    assert shipped.loss.bone > 0.0 and shipped.augment.torso_from_limbs
    assert shipped.augment.rate_prob == 0.0 and shipped.augment.evolve.fraction == 0.0
    twin = load_config(TrainConfig, configs / "train_single_frame.yaml")
    assert twin.lifter.filter_widths == (1, 1, 1)
    same = replace(twin, lifter=replace(twin.lifter, filter_widths=shipped.lifter.filter_widths))
    assert to_dict(same) == to_dict(shipped)
    # The RF 81 from scratch differs in kernel widths and a shorter schedule.
    rf81 = load_config(TrainConfig, configs / "train_rf81.yaml")
    assert rf81.lifter.filter_widths == (3, 3, 3, 3) and rf81.epochs < shipped.epochs
    same = replace(rf81, lifter=shipped.lifter, epochs=shipped.epochs, anneal_epoch=shipped.anneal_epoch)
    assert to_dict(same) == to_dict(shipped)


def test_second_stages_grow_the_first_stages_and_differ_only_in_kernel_widths():
    configs = ABLATION.parent
    grown = load_config(TrainConfig, configs / "train_grow81.yaml")
    twin = load_config(TrainConfig, configs / "train_single_frame_grow.yaml")
    stage1 = {"runs/lifter/best.pt": load_config(TrainConfig, configs / "train.yaml"),
              "runs/single_frame/best.pt": load_config(TrainConfig, configs / "train_single_frame.yaml")}
    for config in (grown, twin):
        first = stage1[config.init]
        # Growing appends one block to the first stage's network; data, losses and augmentation stay.
        assert config.lifter.filter_widths[:-1] == first.lifter.filter_widths
        assert replace(config.lifter, filter_widths=first.lifter.filter_widths) == first.lifter
        assert (config.loss, config.augment, config.camera) == (first.loss, first.augment, first.camera)
    assert grown.lifter.receptive_field == 81 and twin.lifter.receptive_field == 1
    same = replace(twin, init=grown.init, lifter=grown.lifter)
    assert to_dict(same) == to_dict(grown)
