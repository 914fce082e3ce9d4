"""What every ``pose3d`` command shares: the console, progress bars, and errors turned into one line."""

from __future__ import annotations

import contextlib
import functools
import os
import sys
from typing import Callable

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from pipeline.errors import Pose3DError
from pipeline.twod.blazepose import native_stderr_silenced

console = Console(stderr=True)
state = {"verbose": False}  # set by the app's --verbose option before any command runs


def handle_errors(fn: Callable) -> Callable:
    """Turn the project's exceptions into one line and an exit code (traceback with --verbose)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Pose3DError as exc:
            if state["verbose"]:
                console.print_exception()
            console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            console.print("[yellow]interrupted[/]")
            raise typer.Exit(130) from None

    return wrapper


def progress_bar(on: Console | None = None) -> Progress:
    """Rich bars as every command draws them: description, bar, done/total, elapsed, remaining, an info field."""
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TimeRemainingColumn(), TextColumn("{task.fields[info]}"), console=on or console, transient=False)


@contextlib.contextmanager
def native_logs_muted():
    """Yield a console for progress while file descriptor 2 goes to /dev/null.

    MediaPipe's C++ graph writes INFO/WARNING lines straight to fd 2 as it starts and runs, over the progress
    bars. The bars are drawn on a duplicate of fd 2 meanwhile. Nothing is muted with --verbose, or when
    stderr is not a real file (tests, pipes).
    """
    try:
        real = sys.stderr.fileno() == 2
    except (AttributeError, OSError, ValueError):
        real = False
    if not real or state["verbose"]:
        yield console
        return

    sys.stderr.flush()
    with os.fdopen(os.dup(2), "w") as out, native_stderr_silenced():
        yield Console(file=out, force_terminal=console.is_terminal)
