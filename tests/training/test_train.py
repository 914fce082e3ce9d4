"""Training, resuming, evaluation and the train/evaluate/project commands on tiny models."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import pipeline.evaluation.evaluate as ev
from pipeline.cli.app import app
from pipeline.errors import ConfigError, ModelError
from pipeline.evaluation.evaluate import evaluate, format_report, joint_errors
from pipeline.lifting.checkpoint import load_checkpoint
from pipeline.lifting.model import LifterConfig
from pipeline.training.config import AugmentConfig, LossConfig, SemiSupervisedConfig, TrainConfig
from pipeline.training.dataset import Clip
from pipeline.training.mocap import load_dataset
from pipeline.training.split import Split, action_of
from pipeline.training.train import train
from tests.support.synth import SHARED, moving_person

CMU = SHARED / "data" / "mocap" / "cmu"
needs_cmu = pytest.mark.skipif(not (CMU / "MANIFEST.tsv").exists(), reason="../shared/data/mocap not present")


def _clips(n: int, frames: int = 200, subject: str = "1") -> list[Clip]:
    return [Clip(torch.from_numpy(moving_person(frames, seed=i, jitter=0.15)).float(), f"c{i}", subject, "walk")
            for i in range(n)]


def _tiny(**kw) -> TrainConfig:
    base = TrainConfig(epochs=2, samples_per_epoch=512, batch_size=128, lr=3e-3, seed=0,
                       lifter=LifterConfig(filter_widths=(3, 3), channels=32, dropout=0.1),
                       loss=LossConfig(velocity=0.0, acceleration=0.0, limb_length=0.0, frames=1))
    return replace(base, **kw)


SPLIT = Split(train=_clips(3), val=_clips(1, subject="2"), test=_clips(1, subject="3"))


def test_train_writes_checkpoints_with_architecture(tmp_path):
    result = train(_tiny(), tmp_path, split=SPLIT)
    assert result.best.exists() and result.last.exists() and result.epochs_run == 2
    model, meta = load_checkpoint(result.best)
    assert model.config == _tiny().lifter and meta["train_fps"] == 50.0 and not meta["torso_from_limbs"]
    assert np.isfinite(result.best_val_mpjpe_mm) and result.best_val_mpjpe_mm > 0


def test_checkpoints_record_the_input_torso_the_network_trained_on(tmp_path):
    config = _tiny(epochs=1, augment=AugmentConfig(torso_from_limbs=True))
    result = train(config, tmp_path, split=SPLIT)
    for path in (result.best, result.last):
        assert load_checkpoint(path)[1]["torso_from_limbs"], path.name


def test_training_reduces_validation_error(tmp_path):
    first = train(_tiny(epochs=1), tmp_path / "a", split=SPLIT).best_val_mpjpe_mm
    later = train(_tiny(epochs=6), tmp_path / "b", split=SPLIT).best_val_mpjpe_mm
    assert later < 0.8 * first


def test_resume_continues_where_it_stopped(tmp_path):
    train(_tiny(epochs=2), tmp_path, split=SPLIT)
    seen = []
    result = train(_tiny(epochs=3), tmp_path, split=SPLIT, resume=True, progress=seen.append)
    assert result.epochs_run == 1
    assert {p.epoch for p in seen} == {2}
    _, meta = load_checkpoint(tmp_path / "last.pt")
    assert meta["extra"]["train_state"]["epoch"] == 2


def test_init_starts_from_a_checkpoint_and_checks_its_architecture(tmp_path):
    first = train(_tiny(epochs=3), tmp_path / "a", split=SPLIT)
    start = train(_tiny(epochs=1), tmp_path / "b", split=SPLIT).best_val_mpjpe_mm
    tuned = train(_tiny(epochs=1, lr=1e-4, init=str(first.best)), tmp_path / "c", split=SPLIT)
    # One epoch from the 3-epoch weights is far better than one epoch from scratch.
    assert tuned.best_val_mpjpe_mm < 0.9 * start

    with pytest.raises(ConfigError, match="init"):
        train(_tiny(init=str(first.best), semi=SemiSupervisedConfig(labeled_subjects=("1",))), tmp_path / "e",
              split=SPLIT)
    with pytest.raises(ModelError, match="differs"):
        train(_tiny(epochs=1, init=str(first.best), lifter=LifterConfig(filter_widths=(3, 3), channels=16)),
              tmp_path / "d", split=SPLIT)


def test_init_grows_a_shallower_checkpoint_into_a_wider_receptive_field(tmp_path):
    first = train(_tiny(epochs=3), tmp_path / "a", split=SPLIT)
    deeper = replace(_tiny().lifter, filter_widths=(3, 3, 3))
    scratch = train(_tiny(epochs=1, lifter=deeper), tmp_path / "b", split=SPLIT).best_val_mpjpe_mm
    grown = train(_tiny(epochs=1, lr=1e-4, init=str(first.best), lifter=deeper), tmp_path / "c", split=SPLIT)
    model, _ = load_checkpoint(grown.best)
    assert model.receptive_field == 27
    # It starts from the 3-epoch network, not from scratch.
    assert grown.best_val_mpjpe_mm < 0.9 * scratch


def test_temporal_loss_terms_train(tmp_path):
    cfg = _tiny(epochs=1, loss=LossConfig(velocity=2.0, acceleration=10.0, limb_length=1.5, frames=3))
    seen = []
    train(cfg, tmp_path, split=SPLIT, progress=seen.append)
    assert seen and all(np.isfinite(p.loss) for p in seen)
    # With the extra terms the total exceeds the MPJPE part.
    assert any(p.loss > p.mpjpe_mm / 1000.0 for p in seen if p.val_mpjpe_mm is None)


def test_causal_model_trains(tmp_path):
    cfg = _tiny(epochs=1, lifter=LifterConfig(filter_widths=(3, 3), channels=16, causal=True))
    model, _ = load_checkpoint(train(cfg, tmp_path, split=SPLIT).best)
    assert model.config.causal


def test_evaluate_report_rows_and_zero_error_on_truth(tmp_path):
    model, _ = load_checkpoint(train(_tiny(epochs=1), tmp_path, split=SPLIT).best)
    clips = _clips(2, frames=300) + [Clip(_clips(1)[0].joints, "x", "1", "jump")]
    report = evaluate(model, clips, TrainConfig().camera, segment_frames=100)
    for protocol in ("gt", "noisy"):
        rows = report.rows[protocol]
        assert [r.group for r in rows] == ["jump", "walk", "overall"]
        assert rows[-1].frames == sum(r.frames for r in rows[:-1]) == 800
        assert all(np.isfinite([r.mpjpe, r.p_mpjpe, r.n_mpjpe, r.mpjve]).all() for r in rows)
        assert all(r.p_mpjpe <= r.mpjpe + 1e-6 for r in rows)
    assert "| gt | **overall** | 800 |" in format_report(report)
    truth = moving_person(50)
    assert np.allclose(joint_errors(truth, truth, range(17)), 0.0, atol=1e-6)


def test_evaluate_gives_the_lifter_the_rebuilt_torso_only_when_asked(tmp_path, monkeypatch):
    model, _ = load_checkpoint(train(_tiny(epochs=1), tmp_path, split=SPLIT).best)
    seen = []
    real = ev.infer_with_bank
    monkeypatch.setattr(ev, "infer_with_bank", lambda m, x, *a, **k: seen.append(x) or real(m, x, *a, **k))
    reports = {}
    for flag in (False, True):
        seen.clear()
        reports[flag] = evaluate(model, _clips(1, frames=200), TrainConfig().camera, segment_frames=100,
                                 torso_from_limbs=flag)
        # Screen normalisation is affine, so a rebuilt thorax stays the shoulders' midpoint.
        mid = all(np.allclose(x[:, 8], (x[:, 11] + x[:, 14]) / 2, atol=1e-5) for x in seen)
        assert len(seen) == 4 and mid == flag
    assert reports[True].overall().mpjpe != reports[False].overall().mpjpe


def test_action_labels():
    assert action_of("basketball - forward dribble") == "basketball"
    assert action_of("walk, veer left") == "walk"
    assert action_of("") == "unknown"


@needs_cmu
@pytest.mark.slow
def test_cli_train_evaluate_project_lift_on_shared_mocap(tmp_path):
    config = tmp_path / "tiny.yaml"
    config.write_text(
        f"data: {CMU}\nepochs: 1\nsamples_per_epoch: 256\nbatch_size: 128\n"
        "test_subjects: ['8']\nval_subjects: ['7']\n"
        "lifter: {filter_widths: [3, 3], channels: 16}\n"
        "loss: {velocity: 0, acceleration: 0, limb_length: 0, frames: 1}\n")
    runner = CliRunner()
    res = runner.invoke(app, ["train", "--config", str(config), "--out", str(tmp_path / "run"), "--device", "cpu"])
    assert res.exit_code == 0, res.output
    weights = tmp_path / "run" / "best.pt"
    res = runner.invoke(app, ["evaluate", "--config", str(config), "--weights", str(weights), "--device", "cpu",
                              "--json", str(tmp_path / "eval.json"), "--torso", "limbs"])
    assert res.exit_code == 0, res.output
    assert "| gt | **overall** |" in res.output and "| noisy | **overall** |" in res.output
    assert "limbs 2D torso" in res.output
    assert (tmp_path / "eval.json").exists()
    bvh = next((CMU / "bvh" / "cgspeed-mb").glob("08_*.bvh.gz"))
    res = runner.invoke(app, ["project", str(bvh), "--out", str(tmp_path / "kp.npz"), "--gt", str(tmp_path / "gt.npz")])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["lift", str(tmp_path / "kp.npz"), "--out", str(tmp_path / "p3d.npz"),
                              "--weights", str(weights), "--device", "cpu"])
    assert res.exit_code == 0, res.output
    with np.load(tmp_path / "p3d.npz") as out, np.load(tmp_path / "gt.npz") as gt:
        assert out["poses3d"].shape == gt["poses3d"].shape
        assert np.isfinite(out["poses3d"]).all()


def test_cli_train_missing_data_is_one_line_error(tmp_path):
    res = CliRunner().invoke(app, ["train", "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "r"),
                                   "--device", "cpu"])
    assert res.exit_code == 3
    assert "mocap folder or manifest not found" in res.output and "Traceback" not in res.output


@needs_cmu
def test_load_dataset_from_a_manifest_file(tmp_path):
    rows = (CMU / "MANIFEST.tsv").read_text().splitlines()
    picked = [r for r in rows[1:] if r.startswith("bvh/cgspeed-mb/08_0")][:2]
    # Paths are relative to the manifest's folder; absolute ones work too, so the copy can live anywhere.
    absolute = [str(CMU / r.split("\t")[0]) + r[r.index("\t"):] for r in picked]
    (tmp_path / "m.tsv").write_text("\n".join([rows[0], *absolute]) + "\n")
    motions = load_dataset(tmp_path / "m.tsv", fps=50.0, cache_dir=tmp_path / "cache")
    assert {m.subject for m in motions} == {"8"} and len(motions) == 2


def test_learning_rate_schedule_with_a_final_anneal():
    plain = TrainConfig(lr=1e-3, lr_decay=0.5)
    assert plain.learning_rate(0) == 1e-3 and plain.learning_rate(3) == pytest.approx(1.25e-4)
    annealed = TrainConfig(lr=1e-3, lr_decay=0.5, anneal_epoch=2, anneal_decay=0.1)
    assert [annealed.learning_rate(e) for e in range(3)] == [plain.learning_rate(e) for e in range(3)]
    assert annealed.learning_rate(4) == pytest.approx(2.5e-4 * 0.01)
