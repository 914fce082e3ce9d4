"""pose3d: ordinary video of people in, tracked 2D skeletons and metric 3D skeletons out.

The import name is ``pipeline``; the distribution is ``pose3d``. The whole job in Python::

    from pipeline import load_run_config, run_video

    result = run_video("clip.mp4", "result.mp4", load_run_config(None), exports=["result.json"])
    for track in result.tracks:
        print(track.track_id, track.poses3d.shape)  # (frames, 17, 3) metres, camera frame

Each stage is a sub-package (``io``, ``twod``, ``cleanup``, ``lifting``, ``render``), usable on its own;
``training``, ``evaluation``, ``batch`` and ``cli`` build on them and are never imported by them.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from pipeline.errors import ConfigError, InputError, ModelError, Pose3DError, ShapeError
from pipeline.lifting.lifter import Lifter
from pipeline.run import Progress, RunConfig, RunResult, load_run_config, run_video
from pipeline.types import Detections, Frame, Track, VideoInfo

try:
    __version__ = version("pose3d")
except PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = [
    "ConfigError", "Detections", "Frame", "InputError", "Lifter", "ModelError", "Pose3DError", "Progress",
    "RunConfig", "RunResult", "ShapeError", "Track", "VideoInfo", "__version__", "load_run_config", "run_video",
]
