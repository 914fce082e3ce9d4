"""ffmpeg plumbing shared by the video reader and writer: the binary, probing, and child processes.

Only the ffmpeg binary is needed (imageio-ffmpeg ships one; a system ffmpeg on PATH is preferred): probing
runs a demux-only stream copy and reads frame counts, timestamps, size, rotation and audio from its output.
"""

from __future__ import annotations

import contextlib
import functools
import os
import queue
import re
import shutil
import subprocess
import threading
from collections import deque
from pathlib import Path
from typing import IO

import imageio_ffmpeg

from pipeline.errors import InputError, Pose3DError
from pipeline.io.outputs import check_input
from pipeline.types import VideoInfo

PIPE, DEVNULL = subprocess.PIPE, subprocess.DEVNULL
_NOPTS = -(2**63)                       # AV_NOPTS_VALUE as framecrc prints it
VIDEO_STREAM = "0:V:0"                        # first video stream that is not cover art
_PREFIX = re.compile(r"^\[[^\]]* @ (0x)?[0-9a-f]+\]\s*")
_STREAM = re.compile(r"^\s*Stream #\d+:\d+\S*: (\w+): (\w+)")
_SHOWINFO = re.compile(r"\bn:\s*\d+\s+pts:\s*\S+\s+pts_time:(\S+)")
_FAILURE = re.compile(r"error|invalid|not found|partial|corrupt|denied|no such|unsupported", re.I)


def ffmpeg_exe() -> str:
    """Path of ffmpeg: a system ``ffmpeg`` on PATH if any, else the one bundled with imageio-ffmpeg.

    Raises:
        Pose3DError: Neither is available.
    """
    if exe := shutil.which("ffmpeg"):
        return exe
    try:
        return imageio_ffmpeg.get_ffmpeg_exe()
    except (ImportError, RuntimeError) as err:
        raise Pose3DError("no ffmpeg found: pip install imageio-ffmpeg, or install ffmpeg on PATH") from err


@functools.lru_cache(maxsize=8)
def capabilities(exe: str) -> tuple[str, str]:
    """(frame-mode option, showinfo filter) this ffmpeg accepts: the spellings changed in ffmpeg 5."""
    def help_text(topic: str) -> str:
        run = subprocess.run([exe, "-hide_banner", "-h", topic], stdin=DEVNULL, capture_output=True)
        return (run.stdout + run.stderr).decode("utf-8", "replace")

    mode = "-fps_mode" if "-fps_mode" in help_text("long") else "-vsync"
    # Checksumming every 1080p frame costs real CPU and only the timestamp is wanted.
    return mode, "showinfo=checksum=0" if "checksum" in help_text("filter=showinfo") else "showinfo"


def file_url(path) -> str:
    """ffmpeg file name: the ``file:`` protocol keeps names with ':' or a leading '-' from being misread."""
    return "file:" + os.path.abspath(path)


def failure_reason(lines) -> str:
    """The most telling line of an ffmpeg log, without its ``[demuxer @ 0x..]`` prefix."""
    skip = ("Input #", "Output #", "Error opening input file", "At least one")   # header or no news
    clean = [_PREFIX.sub("", line).strip() for line in lines if not line[:1].isspace()]
    clean = [line for line in clean if line and not line.startswith(skip)]
    return ([line for line in clean if _FAILURE.search(line)] or clean or ["ffmpeg gave no reason"])[0]


def checked_source(path) -> Path:
    """``path`` as a Path if it names a non-empty readable file, else InputError saying what is wrong."""
    p = check_input(path, "video")   # a FIFO or device would block the open below
    try:
        with open(p, "rb") as f:
            empty = not f.read(1)
    except OSError as err:
        raise InputError(f"{p}: cannot be read ({err.strerror}); check its permissions") from err
    if empty:
        raise InputError(f"{p}: file is empty (0 bytes); re-export or re-copy the video")
    return p


def parse_header(log: str) -> dict:
    """Facts from ``ffmpeg -i`` stderr about the input and its first video stream that is not cover art.

    Returns:
        dict: ``input`` (ffmpeg opened it), ``codec``, ``size`` ((w, h) as stored, or None), ``fps`` (nominal
        Hz or None), ``duration`` (container seconds or None), ``rotation`` (clockwise degrees), ``has_audio``.
    """
    out = {"input": "Input #0" in log, "codec": None, "size": None, "fps": None, "duration": None,
           "rotation": 0, "has_audio": False}
    log = re.split(r"^(?:Output #|Stream mapping:)", log, maxsplit=1, flags=re.M)[0]
    if m := re.search(r"Duration: (\d+):(\d+):(\d+(?:\.\d+)?)", log):
        out["duration"] = int(m[1]) * 3600 + int(m[2]) * 60 + float(m[3])
    block, video = None, []
    for line in log.splitlines():
        if m := _STREAM.match(line):
            block, out["has_audio"] = None, out["has_audio"] or m[1] == "Audio"
            if m[1] == "Video" and out["codec"] is None and "attached pic" not in line:
                block, out["codec"] = video, m[2]
                if size := re.search(r", (\d+)x(\d+)", line):
                    out["size"] = (int(size[1]), int(size[2]))
                if fps := re.search(r" ([\d.]+) (?:fps|tbr)", line):
                    out["fps"] = float(fps[1]) or None
        elif block is not None:
            block.append(line)
    text = "\n".join(video)
    # The display matrix angle is counter-clockwise; an old-style "rotate" tag is clockwise.
    if m := re.search(r"display ?matrix: rotation of (-?[\d.]+) degrees", text, re.I):
        out["rotation"] = round(-float(m[1]) / 90) % 4 * 90
    elif m := re.search(r"^\s*rotate\s*:\s*(-?\d+)", text, re.M):
        out["rotation"] = round(int(m[1]) / 90) % 4 * 90
    return out


def _packet_stats(lines: IO[bytes]) -> dict:
    """Frame count and time span from a framecrc listing, read line by line (memory stays flat).

    Returns:
        dict: ``count`` (packets that decode to a frame), ``span`` (seconds from the first frame's start to
        the last one's end, or None), ``codec`` and ``size`` ((w, h) as stored) when listed.
    """
    out, tb = {"count": 0, "span": None, "codec": None, "size": None}, 0.0
    first = last = end = None
    no_durations = False
    for raw in lines:
        line = raw.decode("utf-8", "replace").strip()
        key, _, value = line.partition(":")
        if key.startswith("#tb"):
            num, den = value.split("/")
            tb = int(num) / int(den)
        elif key.startswith("#dimensions"):
            out["size"] = tuple(int(v) for v in value.split("x"))
        elif key.startswith("#codec_id"):
            out["codec"] = value.strip()
        fields = [f.strip() for f in line.split(",")]
        if line.startswith("#") or len(fields) < 5 or not fields[4].isdigit():
            continue
        flags = int(fields[6][2:], 16) if len(fields) > 6 and fields[6].startswith("F=") else 1
        if flags & 4 or fields[4] == "0":       # discarded pre-roll (edit lists) and empty packets: no frame
            continue
        out["count"] += 1
        pts, duration = int(fields[2]) if int(fields[2]) != _NOPTS else int(fields[1]), int(fields[3])
        if pts != _NOPTS:
            first, last = pts if first is None else min(first, pts), pts if last is None else max(last, pts)
            end = pts + duration if end is None else max(end, pts + duration)
            no_durations |= duration <= 0
    if tb and first is not None:
        n, span = out["count"], (end - first) * tb
        if no_durations and n > 1:              # raw streams: add one mean frame interval
            span = (last - first) * tb * n / (n - 1)
        out["span"] = span if span > 0 else None
    return out


def probe(path) -> VideoInfo:
    """Describe a video without decoding it (one demux-only stream-copy pass over the file).

    Args:
        path: Video file in any container/codec ffmpeg reads.

    Returns:
        VideoInfo: display size in pixels (after rotation), average fps (frames / duration), exact frame
        count (packets), duration in seconds, clockwise rotation in degrees, has_audio, codec.

    Raises:
        InputError: Missing, empty, unreadable, not a video, truncated or corrupt.
    """
    p = checked_source(path)
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", file_url(p), "-map", VIDEO_STREAM, "-c", "copy",
           "-f", "framecrc", "pipe:1"]
    proc = subprocess.Popen(cmd, stdin=DEVNULL, stdout=PIPE, stderr=PIPE)
    drain = Drain(proc.stderr)
    try:
        stats = _packet_stats(proc.stdout)
    finally:
        stop_process(proc, drain, kill=False)
    head, log = parse_header("\n".join(drain.head)), drain.log()
    if not head["input"]:
        raise InputError(f"{p}: not a readable video ({failure_reason(log)}); check it is a complete video file")
    if head["codec"] is None:
        raise InputError(f"{p}: has no video stream; pass a video, not an audio or image file")
    if proc.returncode != 0 or stats["count"] == 0 or any("partial file" in line for line in log):
        raise InputError(f"{p}: truncated or corrupt ({failure_reason(log)}); re-export or re-download it")
    count, span = stats["count"], stats["span"] or head["duration"]
    fps = count / span if span else head["fps"] or 25.0
    width, height = stats["size"] or head["size"] or (0, 0)
    if head["rotation"] in (90, 270):
        width, height = height, width
    return VideoInfo(path=p, width=width, height=height, fps=fps, num_frames=count, duration=span or count / fps,
                     rotation=head["rotation"], has_audio=head["has_audio"], codec=stats["codec"] or head["codec"])


class Drain(threading.Thread):
    """Reads an ffmpeg stderr pipe to its end on a thread, so ffmpeg can never block on a full pipe.

    Keeps the first 200 log lines (the header) and the last 40 (the complaints); with ``times=True`` it
    queues each frame's showinfo ``pts_time`` in seconds (None where ffmpeg printed NOPTS) instead.
    """

    _END = object()

    def __init__(self, stream: IO[bytes], *, times: bool = False) -> None:
        super().__init__(daemon=True)
        self.stream, self.head, self.lines = stream, [], deque(maxlen=40)
        self.times = queue.Queue() if times else None
        self.start()

    def run(self) -> None:
        for raw in self.stream:
            line = raw.decode("utf-8", "replace").rstrip()
            if self.times is not None and "showinfo" in line:
                if m := _SHOWINFO.search(line):
                    self.times.put(float(m[1]) if re.fullmatch(r"-?[\d.]+(e-?\d+)?", m[1]) else None)
            elif line:
                (self.head if len(self.head) < 200 else self.lines).append(line)
        if self.times is not None:
            self.times.put(self._END)

    def log(self) -> list[str]:
        """The kept log lines, oldest first."""
        return self.head + list(self.lines)

    def next_time(self, fallback: float) -> float:
        """The next frame's time in seconds, or ``fallback`` if ffmpeg gave none."""
        with contextlib.suppress(queue.Empty):
            value = self.times.get(timeout=10.0)    # logged before the frame was piped: normally here already
            if value is self._END:
                self.times.put(value)
            elif value is not None:
                return value
        return fallback


def stop_process(proc: subprocess.Popen, drain: Drain | None, *, kill: bool = True) -> int:
    """Kill (if asked and still running), unpipe and reap an ffmpeg process; returns its exit code."""
    if kill and proc.poll() is None:
        proc.kill()
    for stream in (proc.stdin, proc.stdout):
        with contextlib.suppress(OSError):      # flushing into a pipe whose reader has died
            if stream is not None:
                stream.close()
    rc = proc.wait()
    if drain is not None:
        drain.join(timeout=10.0)
    return rc


def read_exact(stream: IO[bytes], nbytes: int) -> bytearray | None:
    """Exactly ``nbytes`` from ``stream``, or None at its end (a partial last frame is dropped)."""
    buf = bytearray(nbytes)
    view, got = memoryview(buf), 0
    while got < nbytes:
        if not (n := stream.readinto(view[got:])):
            return None
        got += n
    return buf
