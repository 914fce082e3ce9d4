"""Output locations: checked before any work, written beside their destination, moved into place at the end.

The rules every command follows (docs/failure.md):

* An output never names an input or another output of the same command (symbolic links, hard links and
  relative paths are resolved first), and its folder must accept a new file. A missing folder is created,
  but only when the run writes its outputs, and removed again if the run fails, so a failed run leaves no
  empty folders behind either.
* Outputs are written to hidden temporary files beside their destination (same file system, so the final
  rename is atomic), named ``.NAME.PID-HEX.tmp``; only when every output of a run is complete are they moved
  into place. On any failure, or a signal, the temporary files are removed.
* A temporary file that a killed run left behind (its process is gone) is removed by the next run that
  writes the same output.
"""

from __future__ import annotations

import contextlib
import glob
import os
import re
import secrets
import stat
from collections.abc import Iterator, Sequence
from pathlib import Path

from pipeline.errors import ConfigError, InputError, OutputError

TEMP_SUFFIX = ".tmp"


def check_input(path: str | Path, what: str = "input") -> Path:
    """``path`` as a Path when it names an existing regular file, else InputError saying what it is.

    A FIFO, a device or a socket would block or never end when read, so it is refused before anything opens it.
    """
    p = Path(path)
    try:
        mode = p.stat().st_mode
    except FileNotFoundError:
        raise InputError(f"{p}: no such file ({what} file not found); check the path") from None
    except OSError as err:
        raise InputError(f"{p}: cannot be read ({err.strerror})") from None
    if stat.S_ISDIR(mode):
        raise InputError(f"{p}: is a folder, not a{'n' if what[0] in 'aeiou' else ''} {what} file")
    if not stat.S_ISREG(mode):
        kind = "a FIFO (named pipe)" if stat.S_ISFIFO(mode) else "a device or socket"
        raise InputError(f"{p}: is {kind}, not a regular file; save the {what} to a file first")
    return p


def _same_file(a: Path, b: Path) -> bool:
    """Whether two paths name the same file: the same resolved path, or one file under two names (hard link)."""
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    with contextlib.suppress(OSError):
        return os.path.samefile(a, b)
    return False


def _check_folder(path: Path, option: str) -> None:
    """The output's folder, or the nearest existing folder above it that the run will create it in, is a
    folder and accepts a new file (probed by creating one)."""
    if path.is_dir():
        raise ConfigError(f"{option} {path}: is a folder; give a file name")
    folder = path.parent
    while not folder.exists() and not folder.is_symlink() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise ConfigError(f"{option} {path}: {folder} is not a folder")
    probe = temp_beside(folder / path.name)
    try:
        with open(probe, "xb"):
            pass
    except OSError as err:
        raise OutputError(f"{option} {path}: cannot write in {folder} ({err.strerror}); choose a writable "
                          "folder") from None
    probe.unlink(missing_ok=True)


def check_outputs(inputs: Sequence[str | Path], outputs: Sequence[tuple[str, str | Path, Sequence[str]]]) -> None:
    """Refuse, before any work, outputs that would overwrite an input or each other, or cannot be written.

    Args:
        inputs: Files the command reads.
        outputs: (option name for messages, path, allowed suffixes) per output, e.g.
            ``("--out", "result.mp4", (".mp4",))``.

    Raises:
        ConfigError: a clash, a wrong suffix, a file where a folder should be.
        OutputError: a folder that refuses a new file (read-only, full, not a real folder).
    """
    seen: list[tuple[str, Path]] = []
    for option, raw, suffixes in outputs:
        path = Path(raw)
        if suffixes and path.suffix.lower() not in suffixes:
            choices = suffixes[0] if len(suffixes) == 1 else f"{', '.join(suffixes[:-1])} or {suffixes[-1]}"
            raise ConfigError(f"{option} {path}: unknown format {path.suffix or '(no suffix)'!r}; use {choices}")
        for source in inputs:
            if _same_file(path, Path(source)):
                raise ConfigError(f"{option} {path}: is the input {source}; pose3d never overwrites its input, "
                                  "choose another name")
        for other_option, other in seen:
            if _same_file(path, other):
                raise ConfigError(f"{option} {path}: also given as {other_option}; give each output its own file")
        _check_folder(path, option)
        seen.append((option, path))


def temp_beside(path: Path) -> Path:
    """A new hidden temporary file name beside ``path``, marked with this process's id."""
    return path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}{TEMP_SUFFIX}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):
        return False
    except OSError:  # someone else's process (EPERM): alive
        return True
    return True


def remove_stale_temps(path: Path) -> list[Path]:
    """Delete the temporary files of ``path`` that runs which no longer exist left behind.

    Only files named exactly as :func:`temp_beside` names them for ``path`` (plus a suffix a writer adds)
    are considered, and only when the process id in the name is not running.

    Returns:
        The files removed.
    """
    pattern = re.compile(rf"\.{re.escape(path.name)}\.(\d+)-[0-9a-f]{{8}}{re.escape(TEMP_SUFFIX)}(\.\w+)?")
    removed = []
    for tmp in path.parent.glob(f".{glob.escape(path.name)}.*{TEMP_SUFFIX}*"):
        match = pattern.fullmatch(tmp.name)
        if match and int(match[1]) != os.getpid() and not _alive(int(match[1])):
            with contextlib.suppress(OSError):
                tmp.unlink()
                removed.append(tmp)
    return removed


@contextlib.contextmanager
def folders_for(paths: Sequence[str | Path | None]) -> Iterator[None]:
    """Create the missing folders of ``paths`` (None entries ignored); remove those it created if the block fails.

    Raises:
        OutputError: a folder cannot be created.
    """
    created: list[Path] = []
    try:
        for path in (Path(p) for p in paths if p is not None):
            missing = [f for f in [path.parent, *path.parent.parents] if not f.exists()]
            for folder in reversed(missing):
                try:
                    folder.mkdir()
                except FileExistsError:
                    continue
                except OSError as err:
                    raise OutputError(f"{path}: cannot create the folder {folder} ({err.strerror})") from None
                created.append(folder)
        yield
    except BaseException:
        for folder in reversed(created):
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise


class StagedOutputs:
    """Outputs written to temporary files and moved into place together by :meth:`commit`.

    Use as a context manager: leaving it without :meth:`commit` (an error, a signal) deletes every
    temporary file, so a failed run leaves nothing at, or beside, its destinations.
    """

    def __init__(self, paths: Sequence[str | Path]) -> None:
        self.final = [Path(p) for p in paths]
        for path in self.final:
            remove_stale_temps(path)
        self._temps = {path: temp_beside(path) for path in self.final}

    def temp(self, path: str | Path) -> Path:
        """Where to write the output that will end up at ``path``."""
        return self._temps[Path(path)]

    def commit(self) -> list[Path]:
        """Move every written temporary file into place.

        Raises:
            OutputError: a move failed (the outputs moved before it stay, the rest are removed).
        """
        done = []
        for path in self.final:
            try:
                os.replace(self._temps[path], path)
            except OSError as err:
                raise OutputError(f"{path}: cannot save the output ({err.strerror})") from None
            done.append(path)
        self._temps = {}
        return done

    def __enter__(self) -> "StagedOutputs":
        return self

    def __exit__(self, *exc) -> None:
        for tmp in self._temps.values():
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
        self._temps = {}


@contextlib.contextmanager
def writing(path: str | Path) -> Iterator[Path]:
    """One output written through a temporary file beside it (its folder created if missing), moved into place
    when the block succeeds.

    Yields:
        The temporary path to write.

    Raises:
        OutputError: the write or the move failed for a file-system reason (full, read-only, ...).
    """
    with folders_for([path]), StagedOutputs([path]) as staged:
        try:
            yield staged.temp(path)
        except OSError as err:
            raise OutputError(f"{path}: cannot write ({err.strerror}); check the folder and free space") from None
        staged.commit()
