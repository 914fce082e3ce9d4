"""Model weights: the table of known downloadable models, the weights directory, fetching and verifying files.

The 2D stack's networks (Ultralytics YOLO, mmpose top-down models) are hosted on the internet; air-gapped
hosts copy the files in by hand and check them with :func:`verify`. Every file lives flat in one weights
directory, chosen in this order: an explicit argument (``--weights-dir``), ``$POSE3D_WEIGHTS_DIR``, the
checkout's ``weights/`` when run from source, else the user's cache folder (:func:`weights_dir`).
:func:`fetch` downloads from ``$POSE3D_WEIGHTS_BASE_URL`` + file name when that is set (a lab's mirror), else from the table's URL, into a temporary file that only replaces the final one once
its size and SHA-256 match the table.
"""

from __future__ import annotations

import errno
import hashlib
import http.client
import os
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from pipeline.assets import asset_dir, in_checkout
from pipeline.errors import ModelError

ENV_DIR = "POSE3D_WEIGHTS_DIR"
ENV_BASE_URL = "POSE3D_WEIGHTS_BASE_URL"
_CHUNK = 1 << 20

Progress = Callable[[int, int | None], None]  # (bytes done, bytes in all or None when unknown)


class WeightsMissingError(ModelError):
    """A model's weight file is not in the weights directory (and could not or may not be fetched)."""


class DownloadError(ModelError):
    """A download failed (network, HTTP status, short transfer, size or checksum mismatch); nothing was kept."""


@dataclass(frozen=True)
class ModelWeights:
    """One downloadable model.

    Attributes:
        name: Key used on the command line and in configs, e.g. "hrnet-w32".
        kind: "detector" (Ultralytics YOLO) or "pose" (mmpose top-down, COCO-17 keypoints).
        filename: File name inside the weights directory.
        url: Where a connected host downloads it from.
        sha256: Hex SHA-256 of the file; a shorter hex string is a prefix of it (openmmlab names its files
            with the first 8 hex digits of their SHA-256 and publishes no more). Only a complete digest lets
            pose3d unpickle the file in full; a prefix-only file goes through torch's safe loader.
        size: File size, bytes (None when not known in advance).
        licence: The weights' licence.
        config: For "pose" models, the mmpose config, relative to the ``configs/`` folder inside the mmpose
            wheel (``mmpose/.mim/configs``); for detectors, the Ultralytics model YAML that builds the same
            network untrained.
    """

    name: str
    kind: str
    filename: str
    url: str
    sha256: str
    size: int | None
    licence: str
    config: str


_MMPOSE = "https://download.openmmlab.com/mmpose"
_TD = "body_2d_keypoint/topdown_heatmap/coco"

MODELS: dict[str, ModelWeights] = {m.name: m for m in (
    ModelWeights("yolo11n", "detector", "yolo11n.pt",
                 "https://github.com/ultralytics/assets/releases/download/v8.3.0/yolo11n.pt",
                 "0ebbc80d4a7680d14987a577cd21342b65ecfd94632bd9a8da63ae6417644ee1", 5_613_764,
                 "AGPL-3.0 (Ultralytics)", "yolo11n.yaml"),
    ModelWeights("yolov8n", "detector", "yolov8n.pt",
                 "https://github.com/ultralytics/assets/releases/download/v8.3.0/yolov8n.pt",
                 "f59b3d833e2ff32e194b5bb8e08d211dc7c5bdf144b90d2c8412c47ccfc83b36", 6_549_796,
                 "AGPL-3.0 (Ultralytics)", "yolov8n.yaml"),
    ModelWeights("hrnet-w32", "pose", "hrnet_w32_coco_256x192-c78dce93_20200708.pth",
                 f"{_MMPOSE}/top_down/hrnet/hrnet_w32_coco_256x192-c78dce93_20200708.pth",
                 "c78dce93", None, "Apache-2.0 (OpenMMLab)", f"{_TD}/td-hm_hrnet-w32_8xb64-210e_coco-256x192.py"),
    ModelWeights("hrnet-w48", "pose", "hrnet_w48_coco_256x192-b9e0b3ab_20200708.pth",
                 f"{_MMPOSE}/top_down/hrnet/hrnet_w48_coco_256x192-b9e0b3ab_20200708.pth",
                 "b9e0b3ab", None, "Apache-2.0 (OpenMMLab)", f"{_TD}/td-hm_hrnet-w48_8xb32-210e_coco-256x192.py"),
    ModelWeights("rtmpose-m", "pose", "rtmpose-m_simcc-coco_pt-aic-coco_420e-256x192-d8dd5ca4_20230127.pth",
                 f"{_MMPOSE}/v1/projects/rtmposev1/"
                 "rtmpose-m_simcc-coco_pt-aic-coco_420e-256x192-d8dd5ca4_20230127.pth",
                 "d8dd5ca4", None, "Apache-2.0 (OpenMMLab)",
                 "body_2d_keypoint/rtmpose/coco/rtmpose-m_8xb256-420e_coco-256x192.py"),
    ModelWeights("rsn-50", "pose", "rsn50_coco_256x192-72ffe709_20201127.pth",
                 f"{_MMPOSE}/top_down/rsn/rsn50_coco_256x192-72ffe709_20201127.pth",
                 "72ffe709", None, "Apache-2.0 (OpenMMLab)", f"{_TD}/td-hm_rsn50_8xb32-210e_coco-256x192.py"),
    ModelWeights("mspn-50", "pose", "mspn50_coco_256x192-8fbfb5d0_20201123.pth",
                 f"{_MMPOSE}/top_down/mspn/mspn50_coco_256x192-8fbfb5d0_20201123.pth",
                 "8fbfb5d0", None, "Apache-2.0 (OpenMMLab)", f"{_TD}/td-hm_mspn50_8xb32-210e_coco-256x192.py"),
)}


def weights_dir(override: str | Path | None = None) -> Path:
    """The folder of downloaded weights: ``override``, else ``$POSE3D_WEIGHTS_DIR``, else the checkout's
    ``weights/`` when pose3d runs from source, else ``$XDG_CACHE_HOME/pose3d/weights`` (``~/.cache/...``): an
    installed package's own folder may be read-only."""
    if override:
        return Path(override)
    env = os.environ.get(ENV_DIR)
    if env:
        return Path(env)
    if in_checkout():
        return asset_dir("weights")
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "pose3d" / "weights"


def model(name: str) -> ModelWeights:
    """The table entry called ``name``; unknown names raise a ModelError listing the known ones."""
    try:
        return MODELS[name]
    except KeyError:
        raise ModelError(f"unknown model {name!r}; known: {', '.join(MODELS)} (pose3d weights list)") from None


def locate(name: str, directory: str | Path | None = None) -> Path:
    """Path of a known model's file in the weights directory.

    Args:
        name: Model name from :data:`MODELS`.
        directory: Weights directory override.

    Returns:
        The existing file.

    Raises:
        WeightsMissingError: the file is absent; the message names the file, the directory and the fix.
    """
    entry = model(name)
    path = weights_dir(directory) / entry.filename
    if not path.is_file():
        raise WeightsMissingError(
            f"{name} weights not found: put {entry.filename} in {path.parent} (download it from {entry.url}, "
            f"or run `pose3d weights fetch {name}` on a connected host), then `pose3d weights verify {name}`")
    return path


@dataclass(frozen=True)
class VerifyResult:
    """What :func:`verify` found for one model's file.

    Attributes:
        name: Model name.
        path: Where the file is expected.
        present: The file exists.
        size: Its size, bytes (None when absent).
        sha256: Its SHA-256, hex ("" when absent or not computed).
        ok: Present and checked against the table with no mismatch.
        reason: One line: what matched, or what is wrong and what to do.
        checked: The strongest check made: "sha256", "sha256-prefix" (openmmlab's 8 hex digits: catches
            corruption, not forgery), "size", or "" (none possible).
    """

    name: str
    path: Path
    present: bool
    size: int | None
    sha256: str
    ok: bool
    reason: str
    checked: str = ""

    @property
    def complete(self) -> bool:
        """The file's complete SHA-256 matched the table's: the only check that lets pose3d unpickle it in full
        (a prefix, such as openmmlab's 8 hex digits, catches corruption but not a forged file)."""
        return self.ok and self.checked == "sha256"


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of a file, read in chunks.

    Args:
        path: The file.

    Returns:
        64 lowercase hex digits.
    """
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _mismatch(entry: ModelWeights, size: int, digest: str) -> str | None:
    """What differs between a file (size, hex SHA-256 or "" when not computed) and the table, or None."""
    if entry.size is not None and size != entry.size:
        return f"size {size} bytes, expected {entry.size}"
    expected = entry.sha256.lower()
    if expected and digest and not digest.startswith(expected):
        return f"sha256 {digest[:max(len(expected), 16)]}..., expected {expected}"
    return None


def _strength(entry: ModelWeights) -> str:
    """The strongest check the table allows for ``entry``."""
    if len(entry.sha256) == 64:
        return "sha256"
    return "sha256-prefix" if entry.sha256 else ("size" if entry.size is not None else "")


def verify(name: str, directory: str | Path | None = None) -> VerifyResult:
    """Check a model's file in the weights directory against the table's size and SHA-256.

    Args:
        name: Model name from :data:`MODELS`.
        directory: Weights directory override.

    Returns:
        The result; never raises for a missing or wrong file (unknown names raise ModelError).
    """
    entry = model(name)
    path = weights_dir(directory) / entry.filename
    if not path.is_file():
        return VerifyResult(name, path, False, None, "", False,
                            f"missing: put {entry.filename} in {path.parent} or run `pose3d weights fetch {name}`")
    size = path.stat().st_size
    digest = sha256_file(path)
    problem, strength = _mismatch(entry, size, digest), _strength(entry)
    if problem:
        fix = f"run `pose3d weights fetch {name}` or copy it again"
        return VerifyResult(name, path, True, size, digest, False, f"corrupt or a different file ({problem}): {fix}",
                            strength)
    if not strength:
        # Nothing published to compare with: "ok" would let callers trust (fully unpickle) an arbitrary file.
        return VerifyResult(name, path, True, size, digest, False, "no published size or checksum to check against")
    what = {"sha256": "sha256 matches", "sha256-prefix": f"sha256 prefix {entry.sha256} matches",
            "size": "size matches (no published checksum)"}[strength]
    return VerifyResult(name, path, True, size, digest, True, what, strength)


def status_all(directory: str | Path | None = None) -> list[VerifyResult]:
    """:func:`verify` for every model of the table, in table order.

    Args:
        directory: Weights directory override.

    Returns:
        One result per model.
    """
    return [verify(name, directory) for name in MODELS]


def source_url(name: str, url: str | None = None) -> str:
    """Where :func:`fetch` downloads a model from: ``url``, else ``$POSE3D_WEIGHTS_BASE_URL``/file, else the table's.

    Args:
        name: Model name from :data:`MODELS`.
        url: Explicit URL (wins over everything).

    Returns:
        The URL.
    """
    entry = model(name)
    if url:
        return url
    base = os.environ.get(ENV_BASE_URL, "").strip()
    return f"{base.rstrip('/')}/{urllib.parse.quote(entry.filename)}" if base else entry.url


def fetch(name: str, directory: str | Path | None = None, *, url: str | None = None,
          progress: Progress | None = None, timeout: float = 30.0, force: bool = False) -> Path:
    """Download a model's file into the weights directory unless a verified copy is already there.

    The bytes go to a temporary ``.part`` file beside the target, hashed as they arrive; only a file whose
    length and SHA-256 match the table replaces the target (atomically), so an interrupted or bad download
    never leaves a file that looks usable. Ctrl-C removes the partial file and propagates.

    Args:
        name: Model name from :data:`MODELS`.
        directory: Weights directory override.
        url: Download from here instead (see :func:`source_url`); the table's checksum still applies.
        progress: Called as ``progress(bytes_done, bytes_total_or_None)`` while downloading.
        timeout: Seconds to wait for the connection and for each read.
        force: Download even when a verified file is present.

    Returns:
        Path of the verified file.

    Raises:
        DownloadError: Network or HTTP failure, short transfer, size or checksum mismatch; nothing is left behind.
    """
    entry = model(name)
    target = weights_dir(directory) / entry.filename
    if not force and target.is_file() and verify(name, directory).ok:
        return target
    src = source_url(name, url)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{entry.filename}.", suffix=".part", dir=target.parent)
    except OSError as exc:
        raise DownloadError(f"cannot write {entry.filename} into {target.parent}: {exc.strerror or exc} "
                            f"(choose another folder with --weights-dir or ${ENV_DIR})") from None
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            size, digest = _download(entry, src, out, progress, timeout, target.parent)
        problem = _mismatch(entry, size, digest)
        if problem:
            raise DownloadError(f"{src} gave a different file than the table's {entry.filename} ({problem}); "
                                f"nothing kept: check the URL or mirror (${ENV_BASE_URL}) serves the published file")
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return target


def _download(entry: ModelWeights, src: str, out, progress: Progress | None, timeout: float,
              folder: Path) -> tuple[int, str]:
    """Stream ``src`` into the open file ``out``; returns (bytes written, hex SHA-256), raises DownloadError."""
    digest, done, length = hashlib.sha256(), 0, None
    request = urllib.request.Request(src, headers={"User-Agent": "pose3d-weights"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            length = _content_length(response)
            total = length if length is not None else entry.size
            if progress:
                progress(0, total)
            for chunk in iter(lambda: response.read(_CHUNK), b""):
                out.write(chunk)
                digest.update(chunk)
                done += len(chunk)
                if progress:
                    progress(done, total)
    except urllib.error.HTTPError as exc:
        raise DownloadError(f"{src} answered HTTP {exc.code} {exc.reason}: the file is not there; check the URL "
                            f"or mirror (${ENV_BASE_URL}), or copy {entry.filename} into {folder} by hand") from None
    except urllib.error.URLError as exc:
        raise DownloadError(_unreachable(entry, src, exc.reason, folder)) from None
    except (OSError, http.client.HTTPException) as exc:
        if getattr(exc, "errno", None) in (errno.ENOSPC, errno.EDQUOT, errno.EROFS):  # our write, not the network
            raise DownloadError(f"cannot write {entry.filename} into {folder}: {exc}") from None
        raise DownloadError(f"download of {src} broke off after {done} bytes ({type(exc).__name__}: {exc}); "
                            "nothing kept: run the fetch again") from None
    # http.client returns b"" at a premature close instead of raising: the header says what was promised.
    if length is not None and done < length:
        raise DownloadError(f"download of {src} broke off after {done} of {length} bytes; nothing kept: "
                            "run the fetch again")
    return done, digest.hexdigest()


def _content_length(response) -> int | None:
    """The response's Content-Length, or None when absent or not a number."""
    try:
        value = int(response.headers.get("Content-Length", ""))
    except (TypeError, ValueError):
        return None
    return value if value >= 0 else None


def _unreachable(entry: ModelWeights, src: str, reason, folder: Path) -> str:
    """The one-line message for a URL the host cannot reach (offline, DNS, refused, timed out)."""
    return (f"cannot reach {src} ({getattr(reason, 'strerror', None) or reason}): if this host is offline, "
            f"download {entry.filename} on a connected machine, copy it into {folder}, then run "
            f"`pose3d weights verify {entry.name}`")
