"""``pose3d weights``: list, download and check the YOLO / mmpose weight files.

Mounted on the main app by :mod:`pipeline.cli.app` (``app.add_typer(weights_app, name="weights")``); errors go
through :func:`pipeline.cli.ui.handle_errors`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn
from rich.table import Table

from pipeline.cli.ui import handle_errors
from pipeline.errors import ConfigError, ModelError
from pipeline.io import weights

weights_app = typer.Typer(add_completion=False, no_args_is_help=True,
                          help="List, download (fetch) and check (verify) the YOLO / mmpose weight files.")
out = Console()
err = Console(stderr=True)

_DIR_HELP = ("Folder of the weight files (default: $POSE3D_WEIGHTS_DIR, else the checkout's weights/, else "
             "~/.cache/pose3d/weights).")


def _mb(size: Optional[int]) -> str:
    return "?" if size is None else f"{size / 1e6:.1f} MB"


def _label(result: weights.VerifyResult) -> str:
    """One word for a file's state: missing, verified, size ok, bad or unchecked (nothing published)."""
    if not result.present:
        return "missing"
    if result.ok:
        return "verified" if result.checked != "size" else "size ok"
    return "bad" if result.checked else "unchecked"


_COLOURS = {"missing": "dim", "verified": "green", "size ok": "green", "bad": "red", "unchecked": "yellow"}


@weights_app.command("list")
@handle_errors
def list_(weights_dir: Optional[Path] = typer.Option(None, "--weights-dir", envvar=weights.ENV_DIR,
                                                     help=_DIR_HELP)) -> None:
    """Known models with their file, size, licence and whether a verified copy is in the weights folder."""
    folder = weights.weights_dir(weights_dir)
    table = Table(title=f"weights in {folder}", title_justify="left")
    for column in ("name", "kind", "file", "size", "licence", "status"):
        table.add_column(column, overflow="fold")
    for result in weights.status_all(weights_dir):
        entry = weights.MODELS[result.name]
        size = entry.size if entry.size is not None else result.size
        label = _label(result)
        table.add_row(entry.name, entry.kind, entry.filename, _mb(size), entry.licence,
                      f"[{_COLOURS[label]}]{label}[/]")
    out.print(table)


def _bar() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                    TimeRemainingColumn(), console=err, transient=False)


@weights_app.command()
@handle_errors
def fetch(
    names: Optional[list[str]] = typer.Argument(None, help="Model names (see `pose3d weights list`)."),
    all_: bool = typer.Option(False, "--all", help="Every model of the table."),
    weights_dir: Optional[Path] = typer.Option(None, "--weights-dir", envvar=weights.ENV_DIR, help=_DIR_HELP),
    force: bool = typer.Option(False, "--force", help="Download again even when a verified copy is present."),
) -> None:
    """Download weight files (checked against their published size and SHA-256) into the weights folder."""
    chosen = list(weights.MODELS) if all_ else list(dict.fromkeys(names or []))
    if not chosen:
        raise ConfigError("nothing to fetch: give model names (pose3d weights list) or --all")
    for name in chosen:
        weights.model(name)  # unknown names fail before any download starts
    for name in chosen:
        present = weights.verify(name, weights_dir)
        if present.ok and not force:
            out.print(f"{name}: already present and verified ({present.path})", highlight=False)
            continue
        if present.present and not present.ok:
            err.print(f"{name}: replacing {present.path} ({present.reason})", highlight=False)
        with _bar() as bar:
            task = bar.add_task(f"{name} ({weights.MODELS[name].filename})", total=None)
            path = weights.fetch(name, weights_dir, force=True,
                                 progress=lambda done, total: bar.update(task, completed=done, total=total))
        out.print(f"{name}: downloaded and verified -> {path}", highlight=False)


@weights_app.command()
@handle_errors
def verify(
    names: Optional[list[str]] = typer.Argument(None, help="Model names (default: every file present)."),
    weights_dir: Optional[Path] = typer.Option(None, "--weights-dir", envvar=weights.ENV_DIR, help=_DIR_HELP),
) -> None:
    """Check weight files copied in by hand against their published size and SHA-256 (exit 4 if any fails)."""
    for name in names or []:
        weights.model(name)
    results = [weights.verify(n, weights_dir) for n in names] if names else weights.status_all(weights_dir)
    if not names:
        results = [r for r in results if r.present]
        if not results:
            raise weights.WeightsMissingError(
                f"no weight files in {weights.weights_dir(weights_dir)}: copy them in (pose3d weights list shows "
                "the file names) or run `pose3d weights fetch NAME`")
    for r in results:
        mark = "[green]ok[/]  " if r.ok else "[red]FAIL[/]"
        out.print(f"{mark} {r.name:<10} {r.path.name}: {r.reason}", highlight=False, soft_wrap=True)
    bad = [r for r in results if not r.ok]
    if bad:
        raise ModelError(f"{len(bad)} of {len(results)} weight files failed verification: "
                         + ", ".join(f"{r.name} {_label(r)}" for r in bad) + " (details above)")
