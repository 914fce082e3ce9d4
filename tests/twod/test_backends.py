"""Choosing the 2D backend (auto / yolo-mmpose / mediapipe) and the yolo-mmpose path end to end.

The end-to-end case runs YOLO built from its model YAML and HRNet-W32 from its mmpose config with no
checkpoint (configs/run_untrained.yaml): every stage runs for real, offline; only the weights are random.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import socket
import subprocess
import threading
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from pipeline.cli.app import app
from pipeline.config import load_config
from pipeline.io import weights
from pipeline.io.ffmpeg import ffmpeg_exe, probe
from pipeline.lifting.checkpoint import save_checkpoint
from pipeline.lifting.model import LifterConfig, TemporalModel
from pipeline.run import RunConfig
from pipeline.twod.stage import TwoDConfig, resolve_backend
from tests.support.synth import SHARED

KIDS = SHARED / "data" / "videos" / "two_kids_jumping_sam2.mp4"
REPO = Path(__file__).resolve().parents[2]
BODY = b"not really a network, but served over real HTTP" * 1000


@pytest.fixture(autouse=True)
def _no_env(monkeypatch):
    for var in (weights.ENV_DIR, weights.ENV_BASE_URL, "http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture()
def mirror(monkeypatch):
    """A local HTTP mirror serving BODY under any name; the yolo11n / hrnet-w32 table entries expect BODY."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            self.send_response(200)
            self.send_header("Content-Length", str(len(BODY)))
            self.end_headers()
            self.wfile.write(BODY)

        def log_message(self, *args):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    digest = hashlib.sha256(BODY).hexdigest()
    for name in ("yolo11n", "hrnet-w32"):
        monkeypatch.setitem(weights.MODELS, name, replace(weights.MODELS[name], sha256=digest, size=len(BODY)))
    monkeypatch.setenv(weights.ENV_BASE_URL, f"http://127.0.0.1:{srv.server_address[1]}/")
    yield
    srv.shutdown()
    srv.server_close()


def _offline(monkeypatch):
    """Point downloads at a closed local port: what an air-gapped host sees."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv(weights.ENV_BASE_URL, f"http://127.0.0.1:{port}/")


def test_auto_falls_back_to_the_offline_models_in_one_line(tmp_path, monkeypatch):
    _offline(monkeypatch)
    config, notice = resolve_backend(TwoDConfig(), tmp_path, fetch=True)
    assert config.backend == "offline"
    assert "\n" not in notice and "bundled offline models" in notice
    assert "yolo11n.pt" in notice and str(tmp_path) in notice and "pose3d weights fetch yolo11n hrnet-w32" in notice
    assert not list(tmp_path.iterdir())  # no half-downloaded file left behind


def test_auto_without_downloads_says_so(tmp_path):
    config, notice = resolve_backend(TwoDConfig(), tmp_path, fetch=False)
    assert config.backend == "offline" and "fetch_weights: false" in notice


def test_auto_uses_weights_that_are_present(tmp_path, monkeypatch):
    digest = hashlib.sha256(b"x").hexdigest()
    for name in ("yolo11n", "hrnet-w32"):
        (tmp_path / weights.MODELS[name].filename).write_bytes(b"x")
    monkeypatch.setitem(weights.MODELS, "yolo11n", replace(weights.MODELS["yolo11n"], sha256=digest, size=1))
    config, notice = resolve_backend(TwoDConfig(), tmp_path, fetch=False)
    assert config.backend == "yolo-mmpose" and notice is None


def test_auto_never_loads_a_yolo_file_that_is_not_the_published_one(tmp_path):
    """A file called yolo11n.pt could hold any pickle; Ultralytics would run it, so auto falls back."""
    for name in ("yolo11n", "hrnet-w32"):
        (tmp_path / weights.MODELS[name].filename).write_bytes(b"x")
    config, notice = resolve_backend(TwoDConfig(), tmp_path, fetch=False)
    assert config.backend == "offline" and "yolo11n.pt" in notice and "--trust-weights" in notice
    config, notice = resolve_backend(TwoDConfig(trust_weights=True), tmp_path, fetch=False)
    assert config.backend == "yolo-mmpose" and notice is None


def test_auto_fetches_missing_weights_when_online(tmp_path, mirror):
    seen = []
    config, notice = resolve_backend(TwoDConfig(), tmp_path, fetch=True, progress=lambda n, d, t: seen.append(n))
    assert config.backend == "yolo-mmpose" and notice is None
    assert {"yolo11n", "hrnet-w32"} <= set(seen)
    for name in ("yolo11n", "hrnet-w32"):
        assert (tmp_path / weights.MODELS[name].filename).read_bytes() == BODY


def test_untrained_networks_need_no_weights(tmp_path):
    cfg = load_config(RunConfig, REPO / "configs" / "run_untrained.yaml")
    assert resolve_backend(cfg.twod, tmp_path, fetch=False) == (cfg.twod, None)


def test_explicit_backend_with_missing_weights_is_a_one_line_error(tmp_path):
    clip = tmp_path / "clip.mp4"
    subprocess.run([ffmpeg_exe(), "-loglevel", "error", "-f", "lavfi", "-i", "testsrc=size=160x120:rate=10",
                    "-t", "1", str(clip)], check=True)
    res = CliRunner().invoke(app, ["run", str(clip), "--out", str(tmp_path / "o.mp4"), "--backend", "yolo-mmpose",
                                   "--weights-dir", str(tmp_path / "empty")])
    assert res.exit_code == 4, res.output
    line = res.output.strip()
    assert "\n" not in line and "yolo11n.pt" in line and str(tmp_path / "empty") in line
    assert "pose3d weights fetch yolo11n" in line


@pytest.mark.slow
@pytest.mark.skipif(not KIDS.exists(), reason="../shared/data/videos not present")
def test_yolo_mmpose_untrained_runs_end_to_end(tmp_path):
    clip = tmp_path / "kids.mp4"
    subprocess.run([ffmpeg_exe(), "-loglevel", "error", "-i", str(KIDS), "-t", "1.0", "-an", str(clip)], check=True)
    lifter = tmp_path / "tiny.pt"
    save_checkpoint(lifter, TemporalModel(LifterConfig(filter_widths=(3, 3), channels=16)).eval(), train_fps=50.0)
    out, data = tmp_path / "out.mp4", tmp_path / "out.json"
    res = CliRunner().invoke(app, ["run", str(clip), "--out", str(out), "--export", str(data),
                                   "--config", str(REPO / "configs" / "run_untrained.yaml"),
                                   "--weights", str(lifter), "--weights-dir", str(tmp_path / "none"),
                                   "--device", "cpu"])
    assert res.exit_code == 0, res.output
    assert "yolo-mmpose" in res.output
    info = probe(out)
    assert info.codec == "h264" and info.num_frames == probe(clip).num_frames
    doc = json.loads(data.read_text())
    assert doc["tracks"], "random networks still give boxes (max_det 2, conf 0): the tracker must keep some"
    for track in doc["tracks"]:
        poses = np.array(track["poses3d"], dtype=float)
        assert poses.shape == (len(track["frames"]), 17, 3) and np.isfinite(poses).all()
