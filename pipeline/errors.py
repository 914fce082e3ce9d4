"""The project's exception types.

Every error a user can cause or meet (a bad file, a missing model, a wrong option) is raised as a
subclass of :class:`Pose3DError` with a message that names the thing and says what to do. The CLI turns
these into one line and an exit code; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class Pose3DError(Exception):
    """Base class: a user-facing failure. ``exit_code`` is what the CLI exits with."""

    exit_code = 1


class ConfigError(Pose3DError):
    """A configuration file or option is invalid."""

    exit_code = 2


class InputError(Pose3DError):
    """An input file (video, mocap, keypoints) is missing, unreadable or malformed."""

    exit_code = 3


class OutputError(InputError):
    """An output cannot be written or did not come out whole (read-only or full disk, encoder failure).

    A kind of :class:`InputError` (exit code 3): the files, not the settings, are what to fix.
    """


class ModelError(Pose3DError):
    """A model or its weights are missing, incompatible or cannot be fetched."""

    exit_code = 4


class ShapeError(Pose3DError, ValueError):
    """A container was built with arrays of the wrong shape, dtype or values."""

    exit_code = 5
