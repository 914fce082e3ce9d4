"""The package as users meet it: the public API, ``python -m pipeline``, the README's Python example, and a
built wheel that runs outside the checkout."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from typer.testing import CliRunner

import pipeline
from pipeline.assets import asset_dir, shipped_config
from pipeline.cli.app import app

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "walk.mp4"


def _python_blocks(markdown: str, section: str) -> list[str]:
    """The ```python blocks of one ``## section`` of a Markdown file."""
    body = markdown.split(f"\n## {section}\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", body, re.S)


def test_public_api_at_the_root():
    for name in ("run_video", "RunConfig", "load_run_config", "Lifter", "Track", "VideoInfo", "Pose3DError"):
        assert name in pipeline.__all__ and getattr(pipeline, name) is not None
    assert re.fullmatch(r"\d+\.\d+\.\d+.*", pipeline.__version__)
    assert issubclass(pipeline.ConfigError, pipeline.Pose3DError)


def test_version_option():
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"pose3d {pipeline.__version__}"


def test_python_dash_m_is_the_cli(tmp_path):
    done = subprocess.run([sys.executable, "-m", "pipeline", "--help"], capture_output=True, text=True,
                          cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr
    for command in ("run", "batch", "lift", "train", "evaluate", "weights"):
        assert re.search(rf"\b{command}\b", done.stdout)


def test_assets_resolve_from_any_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert (asset_dir("weights") / "lifter.pt").is_file()
    assert shipped_config("run.yaml").is_file() and shipped_config("ablation/baseline.yaml").is_file()
    with pytest.raises(ValueError, match="unknown asset kind"):
        asset_dir("nope")


@pytest.mark.slow
def test_readme_python_example_runs(tmp_path, monkeypatch):
    blocks = _python_blocks((ROOT / "README.md").read_text(), "Python")
    assert blocks, "the README's Python section has no ```python block"
    (tmp_path / "examples").mkdir()
    shutil.copy(EXAMPLE, tmp_path / "examples" / EXAMPLE.name)
    monkeypatch.chdir(tmp_path)
    for block in blocks:
        exec(compile(block, "README.md", "exec"), {})
    assert (tmp_path / "result.mp4").stat().st_size > 0
    assert json.loads((tmp_path / "result.json").read_text())["tracks"]


def _build_wheel(out: Path) -> Path:
    """Build the wheel from a copy of the sources (the build leaves nothing in the checkout), offline."""
    uv = shutil.which("uv")
    if uv is None:
        pytest.skip("uv is not on PATH (the README's install step puts it there)")
    src = out / "src"
    for name in ("pipeline", "weights", "configs"):
        shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    # No build isolation: the locked environment already holds the build backend, so nothing is downloaded.
    env = {**os.environ, "VIRTUAL_ENV": sys.prefix, "UV_OFFLINE": "1"}
    done = subprocess.run([uv, "build", "--wheel", "--no-build-isolation", "--out-dir", str(out / "dist"), str(src)],
                          capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    (wheel,) = (out / "dist").glob("pose3d-*.whl")
    return wheel


def _venv_with(wheel: Path, folder: Path) -> Path:
    """A fresh virtual environment holding the wheel; its dependencies come from this environment's site-packages
    through a plain path entry, whose .pth files (the checkout's editable install among them) are not run."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True, timeout=120)
    python = folder / "bin" / "python"
    subprocess.run([shutil.which("uv"), "pip", "install", "--offline", "--no-deps", "--python", str(python),
                    str(wheel)], check=True, capture_output=True, timeout=300)
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    (Path(site) / "pose3d_test_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return python


@pytest.mark.slow
def test_built_wheel_runs_outside_the_checkout(tmp_path):
    wheel = _build_wheel(tmp_path)
    python = _venv_with(wheel, tmp_path / "venv")
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "POSE3D_WEIGHTS_DIR", "VIRTUAL_ENV")}
    where = subprocess.run([str(python), "-c", "import pipeline, pipeline.assets as a; "
                            "print(pipeline.__file__); print(a.asset_dir('weights'))"],
                           capture_output=True, text=True, cwd=work, env=env, timeout=300)
    assert where.returncode == 0, where.stderr
    module, weights = where.stdout.split()
    assert Path(module).is_relative_to(tmp_path / "venv") and Path(weights).is_relative_to(tmp_path / "venv")
    done = subprocess.run([str(python), "-m", "pipeline", "run", str(EXAMPLE), "--out", "out.mp4", "--export",
                           "out.json"], capture_output=True, text=True, cwd=work, env=env, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (work / "out.mp4").stat().st_size > 10_000
    assert len(json.loads((work / "out.json").read_text())["tracks"]) == 1
    version = subprocess.run([str(tmp_path / "venv" / "bin" / "pose3d"), "--version"], capture_output=True,
                             text=True, cwd=work, env=env, timeout=300)
    assert version.stdout.strip() == f"pose3d {pipeline.__version__}"
