"""Stage 1: decode any video ffmpeg reads into frames, and encode frames to H.264 mp4, in bounded memory.

Decoding: ffmpeg pipes raw BGR24 frames and we read exactly W*H*3 bytes per frame. Each frame's time comes
from a ``showinfo`` filter on stderr (drained on a thread), and ``-fps_mode passthrough`` stops ffmpeg from
duplicating or dropping frames, so variable-frame-rate clips keep their real timing. ffmpeg auto-rotates
clips with rotation metadata (phones): images and :class:`VideoInfo` sizes are in display orientation.

Encoding: a rawvideo pipe carries no timestamps, so frames go to ffmpeg as an uncompressed Matroska stream
with microsecond times; libx264 yuv420p +faststart is written to a temp file beside the output and renamed
into place only on success. Only the ffmpeg binary is needed: imageio-ffmpeg ships no ffprobe.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from pathlib import Path
from typing import Iterator

import numpy as np

from pipeline.errors import InputError, OutputError, ShapeError
from pipeline.io.ffmpeg import (
    DEVNULL,
    PIPE,
    VIDEO_STREAM,
    Drain,
    capabilities,
    checked_source,
    failure_reason,
    ffmpeg_exe,
    file_url,
    parse_header,
    probe,
    read_exact,
    stop_process,
)
from pipeline.io.outputs import remove_stale_temps, temp_beside
from pipeline.types import Frame

__all__ = ["VideoReader", "VideoWriter", "ffmpeg_exe", "probe", "read_frames"]


class _Closing:
    """``with`` support: leaving normally calls ``close()``, an exception or garbage collection ``_abort()``."""

    def __enter__(self):
        return self

    def __exit__(self, exc_type, *exc) -> None:
        if exc_type is None:
            self.close()
        else:
            self._abort()

    def __del__(self) -> None:
        if getattr(self, "_proc", None) is not None:
            self._abort()


class VideoReader(_Closing):
    """Decodes a video into :class:`Frame` objects one at a time through an ffmpeg pipe (about one frame in memory).

    Each iteration starts a fresh ffmpeg; ``close()``, leaving the ``with`` block or breaking out of the loop
    kills and reaps it.

    Attributes:
        info: :func:`probe` of the file (display size before any ``max_size`` shrinking).
        width, height: Size of the yielded images in pixels.
        scale: Yielded pixels per display pixel (1.0 unless ``max_size`` shrank the frames).
    """

    def __init__(self, path, *, max_size: int | None = None) -> None:
        """Probe ``path``; decoding starts when iterated.

        Args:
            path: Video file.
            max_size: Optional long-side limit in pixels; frames are shrunk (aspect kept), never enlarged.

        Raises:
            InputError: The file is missing, empty or not a readable video.
        """
        if max_size is not None and max_size < 1:
            raise ValueError(f"max_size must be >= 1, got {max_size}")
        self.info = probe(path)
        self.path = self.info.path
        self.scale = min(1.0, max_size / max(self.info.width, self.info.height)) if max_size else 1.0
        self.width = max(1, round(self.info.width * self.scale))
        self.height = max(1, round(self.info.height * self.scale))
        self._proc: subprocess.Popen | None = None

    def _command(self) -> list[str]:
        exe = ffmpeg_exe()
        mode, showinfo = capabilities(exe)
        # An explicit scale pins the piped size to what we read even if the stream changes size midway; at
        # the same size it only does the pixel-format conversion ffmpeg would do anyway.
        resize = f"scale={self.width}:{self.height}" + (":flags=area" if self.scale < 1 else "")
        return [exe, "-hide_banner", "-nostdin", "-nostats", "-loglevel", "info", "-i", file_url(self.path),
                "-map", VIDEO_STREAM, "-vf", f"{resize},{showinfo}", mode, "passthrough",
                "-f", "rawvideo", "-pix_fmt", "bgr24", "pipe:1"]

    def __iter__(self) -> Iterator[Frame]:
        """Yield the frames in display order.

        Returns:
            Iterator of Frame: index (0-based), time (presentation seconds from the file's start, from the
            stream's timestamps), image ((height, width, 3) uint8 BGR, writable).

        Raises:
            InputError: ffmpeg failed part-way (the frames before the failure were yielded).
        """
        self.close()
        proc = self._proc = subprocess.Popen(self._command(), stdin=DEVNULL, stdout=PIPE, stderr=PIPE)
        drain = Drain(proc.stderr, times=True)
        nbytes, step, index, time = self.width * self.height * 3, 1.0 / self.info.fps, 0, -1.0 / self.info.fps
        try:
            # close() or a newer iteration may have stopped this process between two frames.
            while proc is self._proc and (buf := read_exact(proc.stdout, nbytes)) is not None:
                time = drain.next_time(fallback=time + step)
                image = np.frombuffer(buf, np.uint8).reshape(self.height, self.width, 3)   # writable: owns buf
                yield Frame(index=index, time=time, image=image)
                index += 1
            if proc is self._proc and proc.wait() != 0:
                raise InputError(f"{self.path}: decoding failed after {index} frames ({failure_reason(drain.log())})")
        finally:
            stop_process(proc, drain)
            if proc is self._proc:
                self._proc = None

    def close(self) -> None:
        """Stop any running decode (kills and reaps ffmpeg). Safe to call more than once."""
        proc, self._proc = self._proc, None
        if proc is not None:
            stop_process(proc, None)                    # the generator's own finally joins its stderr thread

    _abort = close


def read_frames(path, *, max_size: int | None = None) -> Iterator[Frame]:
    """Yield the frames of ``path`` (see :class:`VideoReader`); ffmpeg stops when the generator is closed.

    Args:
        path: Video file.
        max_size: Optional long-side limit in pixels.

    Returns:
        Iterator of Frame with (H, W, 3) uint8 BGR images and times in seconds.
    """
    with VideoReader(path, max_size=max_size) as reader:
        yield from reader


def _head(element_id: int, size: int) -> bytes:
    """EBML element ID and size; sizes always take 8 bytes (valid EBML, and frames need no special case)."""
    return element_id.to_bytes((element_id.bit_length() + 7) // 8, "big") + (size | 1 << 56).to_bytes(8, "big")


def _el(element_id: int, payload: bytes | int) -> bytes:
    """One EBML element; ints are stored big-endian unsigned."""
    if isinstance(payload, int):
        payload = payload.to_bytes(max(1, (payload.bit_length() + 7) // 8), "big")
    return _head(element_id, len(payload)) + payload


def _mkv_header(width: int, height: int, fps: float) -> bytes:
    """Matroska header for one uncompressed BGR24 track with microsecond timestamps (IDs from RFC 9559)."""
    ebml = _el(0x1A45DFA3, _el(0x4286, 1) + _el(0x42F7, 1) + _el(0x42F2, 4) + _el(0x42F3, 8)
               + _el(0x4282, b"matroska") + _el(0x4287, 4) + _el(0x4285, 2))
    segment = bytes.fromhex("18538067 01ffffffffffffff")   # unknown size: streamed once, in order
    info = _el(0x1549A966, _el(0x2AD7B1, 1000) + _el(0x4D80, b"pose3d") + _el(0x5741, b"pose3d"))
    video = _el(0xE0, _el(0xB0, width) + _el(0xBA, height) + _el(0x2EB524, b"BGR\x18"))
    track = _el(0xAE, _el(0xD7, 1) + _el(0x73C5, 1) + _el(0x83, 1) + _el(0x9C, 0) + _el(0x86, b"V_UNCOMPRESSED")
                + _el(0x23E383, round(1e9 / fps)) + video)   # default duration: sets the last frame's length
    return ebml + segment + info + _el(0x1654AE6B, track)


MP4_SUFFIXES = (".mp4",)  # what VideoWriter writes: H.264 in an MP4 container


class VideoWriter(_Closing):
    """Encodes BGR frames to an H.264 (libx264, yuv420p, +faststart) mp4, keeping each frame's time.

    Odd widths/heights get one black column/row on the right/bottom (yuv420p needs even sizes; padding keeps
    pixel coordinates, scaling would not). The file appears at ``path`` only after a successful ``close()``;
    an exception inside the ``with`` block leaves nothing behind.
    """

    def __init__(self, path, *, width: int, height: int, fps: float, audio_from: Path | None = None,
                 crf: int = 20, preset: str = "veryfast", final: Path | None = None) -> None:
        """Start ffmpeg writing a temp file beside ``path``.

        Args:
            path: Output .mp4; its folder must exist and be writable.
            width, height: Frame size in pixels.
            fps: Nominal rate in Hz: spaces frames written without a time, and sets the last frame's length.
            audio_from: File whose first audio track, if any, is added (AAC), cut to the video's duration.
            crf, preset: libx264 quality (lower is better, 18-28 typical) and speed preset.
            final: Where the video will end up when ``path`` is a temporary file that the caller moves there
                with its other outputs (:class:`pipeline.io.outputs.StagedOutputs`): encode straight into
                ``path``, verify it, leave it there, and name ``final`` in messages.

        Raises:
            OutputError: The output folder is missing or not writable.
            InputError: ``audio_from`` is unreadable.
        """
        if width < 1 or height < 1 or not fps > 0:
            raise ShapeError(f"{path}: bad video size {width}x{height} or fps {fps}")
        self.path, self.width, self.height, self.fps = Path(final or path), int(width), int(height), float(fps)
        self._proc, self._audio, self._frames, self._last = None, None, 0, None
        if audio_from is not None:
            log = subprocess.run([ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", file_url(checked_source(audio_from))],
                                 stdin=DEVNULL, capture_output=True).stderr.decode("utf-8", "replace")
            self._audio = Path(audio_from) if parse_header(log)["has_audio"] else None
        self._staged = final is not None
        self._tmp = Path(path) if self._staged else self._temp_file()
        try:
            self._proc = subprocess.Popen(self._command(crf, preset), stdin=PIPE, stdout=DEVNULL, stderr=PIPE)
        except BaseException:
            self._abort()
            raise
        self._drain = Drain(self._proc.stderr)
        self._send(_mkv_header(self.width, self.height, self.fps))

    def _temp_file(self) -> Path:
        """Create an empty hidden file beside the output (same file system, so the final rename is atomic).

        Temporary files that killed runs left for the same output are removed first.
        """
        folder = self.path.parent
        if not folder.is_dir():
            raise OutputError(f"{self.path}: output folder {folder} does not exist; create it first")
        remove_stale_temps(self.path)
        tmp = temp_beside(self.path)
        try:
            open(tmp, "xb").close()
        except OSError as err:
            raise OutputError(f"{self.path}: cannot write in {folder} ({err.strerror}); "
                              "choose a writable output folder") from err
        return tmp

    def _command(self, crf: int, preset: str) -> list[str]:
        exe = ffmpeg_exe()
        pad = ["-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2"] if self.width % 2 or self.height % 2 else []
        return [exe, "-hide_banner", "-nostdin", "-loglevel", "error", "-f", "matroska", "-i", "pipe:0",
                "-map", "0:v:0", *pad, "-c:v", "libx264", "-preset", preset, "-crf", str(crf), "-pix_fmt", "yuv420p",
                capabilities(exe)[0], "passthrough",
                # ffmpeg would use 1/fps and snap VFR times to that grid; 90 kHz is exact for 24/25/30/60 and
                # 30000/1001 fps and within 6 us of any microsecond time.
                "-enc_time_base:v", "1:90000",
                *([] if self._audio else ["-movflags", "+faststart"]),   # else the audio pass does it
                "-f", "mp4", "-y", file_url(self._tmp)]

    def _send(self, *chunks) -> None:
        try:
            for chunk in chunks:
                self._proc.stdin.write(chunk)
        except OSError as err:                  # ffmpeg died: its log says why
            self._abort()
            raise OutputError(f"{self.path}: encoding failed ({failure_reason(self._drain.log())})") from err

    def write(self, image: np.ndarray, time: float | None = None) -> None:
        """Append one frame.

        Args:
            image: (height, width, 3) uint8 BGR.
            time: Presentation time in seconds; None = previous time + 1/fps (0 for the first frame). Kept to
                the microsecond; a time not after the previous frame's is nudged 1 us past it.
        """
        if self._proc is None:
            raise ValueError(f"{self.path}: write() after close()")
        if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.shape != (self.height, self.width, 3):
            got = f"{getattr(image, 'shape', type(image).__name__)} {getattr(image, 'dtype', '')}"
            raise ShapeError(f"frame must be ({self.height}, {self.width}, 3) uint8, got {got}")
        if time is None:
            time = 0.0 if self._last is None else self._last + 1.0 / self.fps
        tick = max(round(float(time) * 1e6), 0 if self._last is None else round(self._last * 1e6) + 1)
        self._last, data = tick / 1e6, np.ascontiguousarray(image)
        # One cluster per frame: its timestamp is absolute, so block offsets (int16) never overflow.
        body = _el(0xE7, tick) + _head(0xA3, 4 + data.nbytes) + b"\x81\x00\x00\x80"   # track 1, +0, key
        self._send(_head(0x1F43B675, len(body) + data.nbytes) + body, memoryview(data).cast("B"))
        self._frames += 1

    def close(self) -> None:
        """Finish encoding, add the audio, and move the file into place. Safe to call more than once.

        Raises:
            OutputError: ffmpeg failed, no frame was written, or the finished file is not whole (a full disk can
                let ffmpeg exit 0 without the mp4 index); then nothing is left at ``path``.
        """
        if self._proc is None:
            return
        proc, self._proc = self._proc, None
        done = False
        try:
            try:
                code = stop_process(proc, self._drain, kill=False)
            except BaseException:               # a signal while ffmpeg finishes: end it, never orphan it
                stop_process(proc, None)
                raise
            if code != 0 or self._frames == 0:
                why = failure_reason(self._drain.log()) if self._frames else "no frames were written"
                raise OutputError(f"{self.path}: encoding failed ({why})")
            if self._audio:
                self._mux_audio()
            self._verify()
            if not self._staged:
                os.replace(self._tmp, self.path)
            done = True
        except OSError as err:
            raise OutputError(f"{self.path}: cannot save the video ({err.strerror})") from err
        finally:
            if not done or not self._staged:
                with contextlib.suppress(OSError):
                    self._tmp.unlink(missing_ok=True)   # a no-op after the rename

    def _verify(self) -> None:
        """Probe the finished file: it must read back as a video with every frame written (ffmpeg can exit 0
        after "Error writing trailer" on a full disk, leaving an mp4 without its index)."""
        try:
            frames = probe(self._tmp).num_frames
        except InputError as err:
            raise OutputError(f"{self.path}: the encoded file is not a whole video ({err}); is the disk full?") from None
        if frames != self._frames:
            raise OutputError(f"{self.path}: the encoded file holds {frames} of {self._frames} frames; is the disk full?")

    def _mux_audio(self) -> None:
        """Replace the temp video with one that also holds the audio, cut to the video's end."""
        out = self._tmp.with_name(self._tmp.name + ".a")
        # AAC re-encode, not copy: a copy can only be cut at packet boundaries and not every codec fits mp4.
        command = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-i", file_url(self._tmp),
                   "-i", file_url(self._audio), "-map", "0:v:0", "-map", "1:a:0", "-c:v", "copy", "-c:a", "aac",
                   "-b:a", "160k", "-t", f"{self._last + 1.0 / self.fps:.6f}", "-movflags", "+faststart",
                   "-f", "mp4", "-y", file_url(out)]
        try:
            run = subprocess.run(command, stdin=DEVNULL, capture_output=True)   # a signal kills ffmpeg too
        except BaseException:                   # a signal during the audio pass: leave no half file
            out.unlink(missing_ok=True)
            raise
        if run.returncode != 0:
            out.unlink(missing_ok=True)
            why = failure_reason(run.stderr.decode("utf-8", "replace").splitlines())
            raise OutputError(f"{self.path}: adding the audio of {self._audio} failed ({why})")
        os.replace(out, self._tmp)

    def _abort(self) -> None:
        """Stop ffmpeg and delete the temp file: nothing is written to ``path``."""
        proc, self._proc = self._proc, None
        if proc is not None:
            stop_process(proc, self._drain)
        with contextlib.suppress(OSError):
            self._tmp.unlink(missing_ok=True)
