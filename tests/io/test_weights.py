"""Weights table, fetch and verify against a local HTTP server (never the internet), and the weights CLI."""

from __future__ import annotations

import hashlib
import http.server
import os
import socket
import threading
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipeline.cli.weights import weights_app
from pipeline.errors import ModelError
from pipeline.io import weights
from pipeline.io.weights import DownloadError, ModelWeights, WeightsMissingError

BODY = os.urandom(300_000)
DIGEST = hashlib.sha256(BODY).hexdigest()


class _Handler(http.server.BaseHTTPRequestHandler):
    """GET /ok/<file>: BODY; /short/<file>: Content-Length 1000 more than sent, then close; else 404."""

    def do_GET(self):  # noqa: N802 - http.server's name
        kind = self.path.strip("/").split("/")[0]
        if kind not in ("ok", "short"):
            self.send_error(404, "Not Found")
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(BODY) + (1000 if kind == "short" else 0)))
        self.end_headers()
        self.wfile.write(BODY)
        self.close_connection = True

    def log_message(self, *args):  # keep the test output clean
        pass


@pytest.fixture(scope="module")
def server():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


@pytest.fixture(autouse=True)
def _isolated(monkeypatch, tmp_path):
    """No proxy, no mirror, no weights folder from the environment; a fake 'tiny' model in the table."""
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY",
                weights.ENV_BASE_URL, weights.ENV_DIR):
        monkeypatch.delenv(var, raising=False)
    _entry(monkeypatch, DIGEST, len(BODY))


def _entry(monkeypatch, sha256: str, size: int | None) -> ModelWeights:
    """Put a 'tiny' model in the table whose own URL is a closed local port (tests pass url= or a mirror)."""
    url = f"http://127.0.0.1:{_closed_port()}/tiny.bin"
    entry = ModelWeights("tiny", "detector", "tiny.bin", url, sha256, size, "test", "none.yaml")
    monkeypatch.setitem(weights.MODELS, "tiny", entry)
    return entry


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _only(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_table_is_consistent():
    for name, entry in weights.MODELS.items():
        assert entry.name == name and entry.kind in ("detector", "pose")
        assert entry.url.endswith("/" + entry.filename)
        assert all(c in "0123456789abcdef" for c in entry.sha256) and len(entry.sha256) in (0, 8, 64)
        if entry.kind == "pose":  # openmmlab names its files with the first 8 hex digits of their SHA-256
            assert f"-{entry.sha256}_" in entry.filename


def test_fetch_downloads_verifies_and_leaves_no_temp(server, tmp_path, monkeypatch):
    monkeypatch.setattr(weights, "_CHUNK", 65536)  # several reads, several progress calls
    seen = []
    path = weights.fetch("tiny", tmp_path, url=f"{server}/ok/tiny.bin", progress=lambda d, t: seen.append((d, t)))
    assert path == tmp_path / "tiny.bin" and path.read_bytes() == BODY
    assert _only(tmp_path) == ["tiny.bin"]
    assert seen[0] == (0, len(BODY)) and seen[-1] == (len(BODY), len(BODY)) and len(seen) > 3
    result = weights.verify("tiny", tmp_path)
    assert result.ok and result.sha256 == DIGEST and result.checked == "sha256" and result.size == len(BODY)


def test_fetch_creates_the_folder_and_accepts_a_prefix(server, tmp_path, monkeypatch):
    _entry(monkeypatch, DIGEST[:8], None)
    path = weights.fetch("tiny", tmp_path / "new" / "dir", url=f"{server}/ok/tiny.bin")
    assert path.read_bytes() == BODY
    assert weights.verify("tiny", tmp_path / "new" / "dir").checked == "sha256-prefix"


def test_checksum_mismatch_keeps_nothing(server, tmp_path, monkeypatch):
    _entry(monkeypatch, "0" * 64, None)
    with pytest.raises(DownloadError, match="different file.*expected 0000") as info:
        weights.fetch("tiny", tmp_path, url=f"{server}/ok/tiny.bin")
    assert "\n" not in str(info.value) and isinstance(info.value, ModelError)
    assert _only(tmp_path) == []


def test_size_mismatch_keeps_nothing(server, tmp_path, monkeypatch):
    _entry(monkeypatch, "", len(BODY) + 1)
    with pytest.raises(DownloadError, match="size"):
        weights.fetch("tiny", tmp_path, url=f"{server}/ok/tiny.bin")
    assert _only(tmp_path) == []


def test_interrupted_transfer_keeps_nothing(server, tmp_path, monkeypatch):
    _entry(monkeypatch, "", None)  # no checksum: only Content-Length can tell the transfer was cut short
    with pytest.raises(DownloadError, match=f"broke off after {len(BODY)} of {len(BODY) + 1000} bytes"):
        weights.fetch("tiny", tmp_path, url=f"{server}/short/tiny.bin")
    assert _only(tmp_path) == []


def test_http_404(server, tmp_path):
    with pytest.raises(DownloadError, match="HTTP 404") as info:
        weights.fetch("tiny", tmp_path, url=f"{server}/missing/tiny.bin")
    assert f"{server}/missing/tiny.bin" in str(info.value)
    assert _only(tmp_path) == []


def test_unreachable_host_says_how_to_copy_by_hand(tmp_path):
    url = f"http://127.0.0.1:{_closed_port()}/tiny.bin"
    with pytest.raises(DownloadError) as info:
        weights.fetch("tiny", tmp_path, url=url, timeout=5)
    message = str(info.value)
    assert f"cannot reach {url}" in message and "offline" in message and str(tmp_path) in message
    assert "pose3d weights verify tiny" in message and "\n" not in message
    assert _only(tmp_path) == []


def test_interrupt_removes_the_partial_file(server, tmp_path):
    def stop(done, total):
        if done:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        weights.fetch("tiny", tmp_path, url=f"{server}/ok/tiny.bin", progress=stop)
    assert _only(tmp_path) == []


def test_present_verified_file_is_not_downloaded_again(tmp_path):
    (tmp_path / "tiny.bin").write_bytes(BODY)
    url = f"http://127.0.0.1:{_closed_port()}/tiny.bin"  # any download attempt would fail
    assert weights.fetch("tiny", tmp_path, url=url) == tmp_path / "tiny.bin"
    with pytest.raises(DownloadError):
        weights.fetch("tiny", tmp_path, url=url, force=True)
    assert (tmp_path / "tiny.bin").read_bytes() == BODY  # a failed forced download keeps the good file


def test_corrupt_file_is_replaced(server, tmp_path):
    (tmp_path / "tiny.bin").write_bytes(b"x" * len(BODY))
    weights.fetch("tiny", tmp_path, url=f"{server}/ok/tiny.bin")
    assert (tmp_path / "tiny.bin").read_bytes() == BODY and _only(tmp_path) == ["tiny.bin"]


def test_mirror_base_url(server, tmp_path, monkeypatch):
    monkeypatch.setenv(weights.ENV_BASE_URL, f"{server}/ok/")
    assert weights.source_url("tiny") == f"{server}/ok/tiny.bin"
    assert weights.source_url("tiny", "http://x/y") == "http://x/y"
    assert weights.fetch("tiny", tmp_path).read_bytes() == BODY


def test_verify_missing_corrupt_and_unchecked(tmp_path, monkeypatch):
    missing = weights.verify("tiny", tmp_path)
    assert not missing.present and not missing.ok and "tiny.bin" in missing.reason and str(tmp_path) in missing.reason
    (tmp_path / "tiny.bin").write_bytes(BODY[:-1])
    corrupt = weights.verify("tiny", tmp_path)
    assert corrupt.present and not corrupt.ok and "size" in corrupt.reason and corrupt.size == len(BODY) - 1
    _entry(monkeypatch, DIGEST, None)
    assert "sha256" in weights.verify("tiny", tmp_path).reason
    _entry(monkeypatch, "", None)  # nothing published: a present file is not "verified"
    unchecked = weights.verify("tiny", tmp_path)
    assert unchecked.present and not unchecked.ok and unchecked.checked == ""
    assert [r.name for r in weights.status_all(tmp_path)] == list(weights.MODELS)


def test_locate_message_names_file_and_directory(tmp_path):
    with pytest.raises(WeightsMissingError) as info:
        weights.locate("hrnet-w32", tmp_path)
    message = str(info.value)
    assert weights.MODELS["hrnet-w32"].filename in message and str(tmp_path) in message and "\n" not in message
    (tmp_path / "tiny.bin").write_bytes(BODY)
    assert weights.locate("tiny", tmp_path) == tmp_path / "tiny.bin"
    with pytest.raises(ModelError, match="unknown model 'nope'"):
        weights.locate("nope", tmp_path)


def test_weights_dir_order(tmp_path, monkeypatch):
    assert weights.weights_dir().name == "weights"
    monkeypatch.setenv(weights.ENV_DIR, str(tmp_path / "env"))
    assert weights.weights_dir() == tmp_path / "env" and weights.weights_dir(tmp_path) == tmp_path


def _cli(*args: str):
    return CliRunner().invoke(weights_app, list(args))


def test_cli_list(tmp_path):
    (tmp_path / "tiny.bin").write_bytes(BODY)
    res = _cli("list", "--weights-dir", str(tmp_path))
    assert res.exit_code == 0, res.output
    assert "hrnet-w32" in res.stdout and "yolo11n" in res.stdout and "verified" in res.stdout
    assert "missing" in res.stdout


def test_cli_fetch_and_verify(server, tmp_path, monkeypatch):
    monkeypatch.setenv(weights.ENV_BASE_URL, f"{server}/ok")
    monkeypatch.setenv(weights.ENV_DIR, str(tmp_path))  # --weights-dir falls back to the variable
    res = _cli("fetch", "tiny")
    assert res.exit_code == 0, res.output
    assert "downloaded and verified" in res.stdout and (tmp_path / "tiny.bin").read_bytes() == BODY
    res = _cli("fetch", "tiny")
    assert res.exit_code == 0 and "already present" in res.stdout
    res = _cli("verify", "tiny")
    assert res.exit_code == 0 and "ok" in res.stdout
    res = _cli("verify")  # every present file: only tiny.bin
    assert res.exit_code == 0 and "tiny" in res.stdout and "hrnet" not in res.stdout


def test_cli_verify_failures(tmp_path):
    res = _cli("verify", "tiny", "--weights-dir", str(tmp_path))
    assert res.exit_code == ModelError.exit_code and "missing" in res.stdout
    assert res.stderr.count("error:") == 1 and "failed verification" in res.stderr
    (tmp_path / "tiny.bin").write_bytes(b"bad")
    res = _cli("verify", "--weights-dir", str(tmp_path))
    assert res.exit_code == ModelError.exit_code and "FAIL" in res.stdout
    res = _cli("verify", "--weights-dir", str(tmp_path / "empty"))
    assert res.exit_code == ModelError.exit_code and "no weight files" in res.stderr


def test_cli_fetch_errors(tmp_path):
    res = _cli("fetch", "--weights-dir", str(tmp_path))
    assert res.exit_code == 2 and "nothing to fetch" in res.stderr
    res = _cli("fetch", "nope", "--weights-dir", str(tmp_path))
    assert res.exit_code == ModelError.exit_code and "unknown model" in res.stderr
    # The fixture's entry points at a closed port: a clean one-line failure.
    res = _cli("fetch", "tiny", "--weights-dir", str(tmp_path))
    assert res.exit_code == ModelError.exit_code and "cannot reach" in res.stderr
    assert _only(tmp_path) == []
