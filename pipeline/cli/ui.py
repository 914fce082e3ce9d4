"""What every ``pose3d`` command shares: the console, progress bars, and errors turned into one line."""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import sys
from typing import Callable

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from pipeline.errors import Pose3DError
from pipeline.twod.blazepose import native_stderr_silenced

console = Console(stderr=True)
state = {"verbose": False}  # set by the app's --verbose option before any command runs


class Terminated(KeyboardInterrupt):
    """SIGTERM (``docker stop``, ``timeout``, systemd) raised as an interrupt, so that the clean-up Ctrl-C gets
    runs too: temporary files removed, ffmpeg and worker processes ended."""


def interrupt_exit_code(exc: KeyboardInterrupt) -> int:
    """The shell's convention: 128 + the signal number (SIGINT 2, SIGTERM 15)."""
    return 143 if isinstance(exc, Terminated) else 130


@contextlib.contextmanager
def sigterm_interrupts():
    """While inside, SIGTERM raises :class:`Terminated` in the main thread (elsewhere signals are left alone)."""

    def stop(*_):
        raise Terminated

    try:
        old = signal.signal(signal.SIGTERM, stop)
    except ValueError:      # not the main thread
        old = None
    try:
        yield
    finally:
        if old is not None:
            signal.signal(signal.SIGTERM, old)


def handle_errors(fn: Callable) -> Callable:
    """Turn the project's exceptions into one line and an exit code (traceback with --verbose); SIGTERM and
    Ctrl-C stop the command cleanly with exit code 143 or 130."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            with sigterm_interrupts():
                return fn(*args, **kwargs)
        except Pose3DError as exc:
            if state["verbose"]:
                console.print_exception()
            console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt as exc:
            console.print("[yellow]terminated[/]" if isinstance(exc, Terminated) else "[yellow]interrupted[/]")
            raise typer.Exit(interrupt_exit_code(exc)) from None

    return wrapper


def progress_bar(on: Console | None = None) -> Progress:
    """Rich bars as every command draws them: description, bar, done/total, elapsed, remaining, an info field.

    On a terminal the finished bars stay on screen; in a log (stderr not a terminal) they are not written at
    all, so logs hold the one-line summary or error that follows.
    """
    target = on or console
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TimeRemainingColumn(), TextColumn("{task.fields[info]}"), console=target,
                    transient=not target.is_terminal)


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
