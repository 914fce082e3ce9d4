"""Stage 6 (data side): read and write keypoint / pose files that other tools consume.

``pose3d lift`` input (``.npz``):
    keypoints (T, J, 2) float pixels (NaN, or any non-finite value, where missing); scores (T, J) optional;
    width, height (pixels); fps (Hz); format ('h36m17' or 'coco17').

``pose3d lift`` output (``.npz``):
    poses3d (T, 17, 3) float32 metres, camera frame (x right, y down, z forward), pelvis at the origin;
    joint_names (17,) str (H36M-17 order); fps; keypoints2d (T, 17, 2) the H36M-17 pixel input used; with
    --trajectory also root3d (T, 3) float32, the pelvis's camera-frame position in metres.
"""

from __future__ import annotations

import csv
import json
import zipfile
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from pipeline.errors import InputError, OutputError, ShapeError
from pipeline.io.bvh import resample_fit, write_bvh
from pipeline.io.outputs import check_input, writing
from pipeline.lifting.angles import joint_angles, write_angles_csv
from pipeline.lifting.contacts import CONTACT_JOINTS
from pipeline.lifting.rig import forward_kinematics
from pipeline.lifting.world import WorldFrame, estimate_up, estimate_world, level_rotation, placed_poses
from pipeline.skeleton import COCO17, H36M17, RIG_JOINTS, RIG_PARENTS, get_skeleton
from pipeline.types import SkeletonFit, Timeline, Track


@dataclass(frozen=True)
class KeypointTrack:
    """One person's 2D track as read from a file.

    Attributes:
        keypoints: (T, J, 2) pixels, NaN where missing.
        scores: (T, J) confidences, or None.
        width, height: Image size, pixels.
        fps: Frame rate, Hz.
        format: Skeleton name of ``keypoints`` ('h36m17' or 'coco17').
    """

    keypoints: np.ndarray
    scores: np.ndarray | None
    width: int
    height: int
    fps: float
    format: str

    def __post_init__(self) -> None:
        j = get_skeleton(self.format).num_joints
        if self.keypoints.ndim != 3 or self.keypoints.shape[1:] != (j, 2) or len(self.keypoints) == 0:
            raise ShapeError(f"keypoints must be (T>0, {j}, 2) for {self.format}, got {self.keypoints.shape}")
        if self.scores is not None and self.scores.shape != self.keypoints.shape[:2]:
            raise ShapeError(f"scores must be {self.keypoints.shape[:2]}, got {self.scores.shape}")
        if self.width <= 0 or self.height <= 0 or not self.fps > 0:
            raise ShapeError(f"width, height and fps must be positive (got {self.width}, {self.height}, {self.fps})")


def load_keypoints_npz(path: str | Path, fps: float | None = None) -> KeypointTrack:
    """Read a ``pose3d lift`` input file (see the module docstring); ``fps`` overrides the file's."""
    path = check_input(path, "keypoints")
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = [k for k in ("keypoints", "width", "height") if k not in data]
            if missing:
                raise InputError(f"{path}: missing array(s) {missing}; expected keypoints, width, height, fps, format")
            if fps is None and "fps" not in data:
                raise InputError(f"{path}: no 'fps' array; add it or pass --fps")
            scores = np.asarray(data["scores"], dtype=np.float32) if "scores" in data else None
            keypoints, scores = _missing_as_nan(np.asarray(data["keypoints"], dtype=np.float32), scores)
            return KeypointTrack(
                keypoints=keypoints, scores=scores,
                width=int(data["width"]), height=int(data["height"]),
                fps=float(fps if fps is not None else data["fps"]),
                format=str(data["format"]) if "format" in data else "h36m17",
            )
    except (EOFError, zipfile.BadZipFile) as exc:
        raise InputError(f"{path}: not a readable .npz file ({exc or 'empty or truncated'})") from None
    except (OSError, ValueError) as exc:
        if isinstance(exc, ShapeError):
            raise InputError(f"{path}: {exc}") from None
        raise InputError(f"{path}: not a readable .npz file ({exc})") from None


def _missing_as_nan(keypoints: np.ndarray, scores: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
    """Non-finite coordinates (inf as well as NaN) mark a joint as missing: NaN there, score 0."""
    if keypoints.ndim != 3 or keypoints.shape[-1] != 2:
        return keypoints, scores  # KeypointTrack says what is wrong with the shape
    missing = ~np.isfinite(keypoints).all(-1)
    if missing.any():
        keypoints = np.where(missing[..., None], np.nan, keypoints).astype(np.float32)
        if scores is not None and scores.shape == missing.shape:
            scores = np.where(missing, 0.0, scores).astype(np.float32)
    return keypoints, scores


def atomic_save_npz(path: str | Path, **arrays: np.ndarray) -> Path:
    """Write an ``.npz`` through a temporary file beside it, so a failure never leaves a half-written output.

    Raises:
        OutputError: the folder refuses the file (read-only, full).
    """
    path = Path(path)
    with writing(path) as tmp, open(tmp, "wb") as f:
        np.savez_compressed(f, **arrays)
    return path


def save_poses_npz(path: str | Path, poses3d: np.ndarray, fps: float, keypoints2d: np.ndarray,
                   root3d: np.ndarray | None = None) -> Path:
    """Write a ``pose3d lift`` output file (see the module docstring); ``root3d`` (T, 3) with --trajectory."""
    if poses3d.ndim != 3 or poses3d.shape[1:] != (17, 3):
        raise ShapeError(f"poses3d must be (T, 17, 3), got {poses3d.shape}")
    extra = {} if root3d is None else {"root3d": np.asarray(root3d, np.float32)}
    return atomic_save_npz(path, poses3d=poses3d.astype(np.float32), joint_names=np.array(H36M17.joints),
                           fps=np.float64(fps), keypoints2d=keypoints2d.astype(np.float32), **extra)


# --- Track exports (`pose3d run --export FILE`): format from the suffix -------------------------------------
#
# JSON (`.json`), schema "pose3d-tracks" version 2 (version 1 lacked the skeleton, raw poses and contacts):
#   {"format": "pose3d-tracks", "version": 2,
#    "video": {"path", "width", "height", "fps", "num_frames", "duration", "decoded_frames", "skipped_frames"}
#             (skipped: frames ffmpeg could not decode; frame numbers count the decoded ones),
#    "skeletons": {"keypoints2d": {"name": "coco17", "joints": [...17 names]},
#                  "poses3d": {"name": "h36m17", "joints": [...17 names], "units": "metres",
#                              "frame": "camera: x right, y down, z forward; pelvis at the origin"},
#                  "rig": {"joints": [...20 names], "parents": [20 ints], "rest": RIG_REST, "rotations": RIG_ROTATIONS},
#                  "contacts": {"joints": ["r_ankle", "l_ankle"]}},
#    "world": null, or (with --trajectory) {"rotation": [3][3], "offset": [3], "frame": WORLD_FRAME}: the
#             estimated camera-to-world transform world = rotation @ camera + offset (pipeline/lifting/world.py),
#    "tracks": [{"id", "frames": [T ints], "times": [T] presentation seconds, "interpolated": [T bools],
#                "keypoints2d": [T][17][2] pixels or null where unseen, "scores2d": [T][17],
#                "poses3d": [T][17][3] metres (the fitted skeleton's joints when it was fitted),
#                "poses3d_raw": null or [T][17][3] the lifter's own output (when a skeleton was fitted),
#                "bone_lengths": null or [17] metres (bone from each joint's parent; 0 for the pelvis),
#                "rig_offsets": null or [20][3] rest offsets, "rotations": null or [T][20][4] quaternions,
#                "contacts": null or [T][2] probability that the right / left foot is on the ground,
#                "root3d": null or [T][3] camera-frame metres of the pelvis (the trajectory),
#                "poses3d_world": null or [T][17][3] world metres (placed joints, floor at y = 0)}]}
# NPZ (`.npz`): the same content as arrays: video_* scalars, joint_names_2d, joint_names_3d, rig_joints,
#   rig_parents, track_ids, and per track id N: track_N_frames (T,), track_N_times (T,) seconds,
#   track_N_interpolated (T,), track_N_keypoints2d (T,17,2) (NaN where unseen), track_N_scores2d (T,17),
#   track_N_poses3d (T,17,3); with a fitted skeleton track_N_poses3d_raw (T,17,3), track_N_bone_lengths (17,),
#   track_N_rig_offsets (20,3), track_N_rotations (T,20,4); with contacts track_N_contacts (T,2); with the
#   trajectory also track_N_root3d (T,3), track_N_poses3d_world (T,17,3), world_rotation (3,3) and world_offset (3,).
# CSV (`.csv`): one row per track, frame and joint index j (0..16): track_id, frame, time (s), interpolated, joint,
#   coco_joint, x, y, score (COCO joint j), h36m_joint, X, Y, Z (H36M joint j, pelvis-relative camera frame),
#   Xw, Yw, Zw (the same joint in the world frame, with the trajectory), Xr, Yr, Zr (the lifter's raw output
#   when a skeleton was fitted), contact (the probability, on the ankle rows); empty where unseen or not estimated.
# Joint angles (a `.csv` whose name ends in `angles.csv`, e.g. `run_angles.csv`): one row per track and frame
#   (pipeline/lifting/angles.py: ISB-style definitions, degrees and degrees per second).
# BVH (`.bvh`): one file per person, `<stem>_track<ID>.bvh` beside the named path (pipeline/io/bvh.py): the fitted
#   rig, metres, y up; the pelvis moves in the world frame with the trajectory and stays put without it; frames
#   at the video's average rate (variable-rate video and gaps in a track are resampled to it).

RIG_REST = "T-pose; y up, x to the person's left, z forward; metres (pipeline/lifting/rig.py)"
RIG_ROTATIONS = ("local rotation of each rig joint as a quaternion (x, y, z, w); joint 0's turns the rig frame "
                 "into the camera frame; global = parent's global @ local")
WORLD_FRAME = ("estimated from the people: y up, floor at y = 0, x the camera's right levelled, z towards the "
               "camera; origin on the floor below the mean pelvis position; metres")

EXPORT_FORMATS = (".json", ".npz", ".csv", ".bvh")
ANGLES_SUFFIX = "angles.csv"  # a .csv named like this holds joint angles instead of joint positions


def _video_meta(info, timeline: Timeline) -> dict:
    return {"path": str(info.path), "width": info.width, "height": info.height, "fps": info.fps,
            "num_frames": info.num_frames, "duration": info.duration, "decoded_frames": len(timeline.times),
            "skipped_frames": timeline.skipped}


def _nan_to_none(array: np.ndarray) -> list:
    return np.where(np.isfinite(array), array, None).tolist()


def _world_poses(tracks) -> tuple[object, dict[int, np.ndarray]]:
    """The clip's world frame and each placed track's (T, 17, 3) world joints (empty without trajectories)."""
    world = estimate_world(tracks)
    if world is None:
        return None, {}
    return world, {t.track_id: world.apply(placed_poses(t)) for t in tracks
                   if t.poses3d is not None and t.root3d is not None}


def _rounded(array: np.ndarray | None, digits: int = 4):
    return None if array is None else np.round(array.astype(np.float64), digits).tolist()


def _write_json(path: Path, tracks, info, timeline: Timeline) -> None:
    world, placed = _world_poses(tracks)
    doc = {"format": "pose3d-tracks", "version": 2, "video": _video_meta(info, timeline),
           "skeletons": {"keypoints2d": {"name": COCO17.name, "joints": list(COCO17.joints)},
                         "poses3d": {"name": H36M17.name, "joints": list(H36M17.joints), "units": "metres",
                                     "frame": "camera: x right, y down, z forward; pelvis at the origin"},
                         "rig": {"joints": list(RIG_JOINTS), "parents": list(RIG_PARENTS), "rest": RIG_REST,
                                 "rotations": RIG_ROTATIONS},
                         "contacts": {"joints": list(CONTACT_JOINTS)}},
           "world": None if world is None else {"rotation": _rounded(world.rotation, 6),
                                                "offset": _rounded(world.offset), "frame": WORLD_FRAME},
           "tracks": [{"id": int(t.track_id), "frames": t.frames.tolist(),
                       "times": np.round(timeline.at(t.frames), 6).tolist(), "interpolated": t.interpolated.tolist(),
                       "keypoints2d": _nan_to_none(np.round(t.keypoints.astype(np.float64), 2)),
                       "scores2d": np.round(t.scores.astype(np.float64), 3).tolist(),
                       "poses3d": _rounded(t.poses3d), "poses3d_raw": _rounded(t.poses3d_raw),
                       **_skeleton_fields(t.skeleton), "contacts": _rounded(t.contacts, 3),
                       "root3d": _rounded(t.root3d), "poses3d_world": _rounded(placed.get(t.track_id))}
                      for t in tracks]}
    path.write_text(json.dumps(doc, separators=(",", ":")))


def _quaternions(fit: SkeletonFit) -> np.ndarray:
    """(T, 20, 4) the fit's local rotations as (x, y, z, w) quaternions."""
    t, j = fit.rotations.shape[:2]
    return Rotation.from_matrix(fit.rotations.reshape(-1, 3, 3)).as_quat().reshape(t, j, 4).astype(np.float32)


def _skeleton_fields(fit: SkeletonFit | None) -> dict:
    if fit is None:
        return {"bone_lengths": None, "rig_offsets": None, "rotations": None}
    return {"bone_lengths": _rounded(fit.bone_lengths), "rig_offsets": _rounded(fit.offsets),
            "rotations": _rounded(_quaternions(fit), 5)}


def _write_npz(path: Path, tracks, info, timeline: Timeline) -> None:
    arrays = {"video_width": np.int64(info.width), "video_height": np.int64(info.height),
              "video_fps": np.float64(info.fps), "video_num_frames": np.int64(info.num_frames),
              "video_decoded_frames": np.int64(len(timeline.times)),
              "video_skipped_frames": np.int64(timeline.skipped),
              "joint_names_2d": np.array(COCO17.joints), "joint_names_3d": np.array(H36M17.joints),
              "rig_joints": np.array(RIG_JOINTS), "rig_parents": np.array(RIG_PARENTS, np.int64),
              "track_ids": np.array([t.track_id for t in tracks], np.int64)}
    for t in tracks:
        arrays |= {f"track_{t.track_id}_frames": t.frames, f"track_{t.track_id}_times": timeline.at(t.frames),
                   f"track_{t.track_id}_interpolated": t.interpolated,
                   f"track_{t.track_id}_keypoints2d": t.keypoints, f"track_{t.track_id}_scores2d": t.scores}
        if t.poses3d is not None:
            arrays[f"track_{t.track_id}_poses3d"] = t.poses3d
        if t.root3d is not None:
            arrays[f"track_{t.track_id}_root3d"] = t.root3d
        if t.skeleton is not None:
            arrays |= {f"track_{t.track_id}_poses3d_raw": t.poses3d_raw,
                       f"track_{t.track_id}_bone_lengths": t.skeleton.bone_lengths,
                       f"track_{t.track_id}_rig_offsets": t.skeleton.offsets,
                       f"track_{t.track_id}_rotations": _quaternions(t.skeleton)}
        if t.contacts is not None:
            arrays[f"track_{t.track_id}_contacts"] = t.contacts
    world, placed = _world_poses(tracks)
    if world is not None:
        arrays |= {"world_rotation": world.rotation, "world_offset": world.offset}
        arrays |= {f"track_{i}_poses3d_world": p for i, p in placed.items()}
    with open(path, "wb") as f:
        np.savez_compressed(f, **arrays)


def _write_csv(path: Path, tracks, info, timeline: Timeline) -> None:
    with open(path, "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["track_id", "frame", "time", "interpolated", "joint", "coco_joint", "x", "y", "score",
                      "h36m_joint", "X", "Y", "Z", "Xw", "Yw", "Zw", "Xr", "Yr", "Zr", "contact"])
        _, placed = _world_poses(tracks)
        feet = {H36M17.index(name): k for k, name in enumerate(CONTACT_JOINTS)}
        for t in tracks:
            unknown = np.full((len(t), 17, 3), np.nan)
            p3, raw = (v if v is not None else unknown for v in (t.poses3d, t.poses3d_raw))
            pw = placed.get(t.track_id, unknown)
            contacts = t.contacts if t.contacts is not None else np.full((len(t), 2), np.nan)
            times = timeline.at(t.frames)
            for i, frame in enumerate(t.frames.tolist()):
                for j in range(17):
                    xy = ["" if not np.isfinite(v) else f"{v:.2f}" for v in t.keypoints[i, j]]
                    xyz = ["" if not np.isfinite(v) else f"{v:.4f}" for v in (*p3[i, j], *pw[i, j], *raw[i, j])]
                    contact = contacts[i, feet[j]] if j in feet else np.nan
                    out.writerow([t.track_id, frame, f"{times[i]:.6f}", int(t.interpolated[i]), j, COCO17.joints[j],
                                  *xy, f"{t.scores[i, j]:.3f}", H36M17.joints[j], *xyz,
                                  f"{contact:.3f}" if np.isfinite(contact) else ""])


def _write_angles(path: Path, tracks, info, timeline: Timeline) -> None:
    lifted = [t for t in tracks if t.poses3d is not None]
    up = _level_world(lifted).rotation[1] if lifted else np.array([0.0, -1.0, 0.0])
    write_angles_csv(path, [(t.track_id, t.frames, joint_angles(t.poses3d, up, timeline.at(t.frames)))
                            for t in lifted])


def _level_world(tracks) -> WorldFrame:
    """The clip's world frame; without the trajectory, one that only levels the poses (its up estimated from them,
    no offset)."""
    world = estimate_world(tracks)
    if world is not None:
        return world
    return WorldFrame(level_rotation(estimate_up(np.concatenate([t.poses3d for t in tracks]))), np.zeros(3))


def _write_bvh(path: Path, tracks, info, timeline: Timeline, track_id: int) -> None:
    track = next(t for t in tracks if t.track_id == track_id)
    if track.skeleton is None:
        raise OutputError(f"--export {path}: BVH needs the fitted skeleton; lift.fit.enabled is off")
    # Without the trajectory the pelvis stays put; the person still stands upright on a level floor.
    world = _level_world([t for t in tracks if t.poses3d is not None])
    fit, root = resample_fit(track.skeleton, timeline.at(track.frames), info.fps, track.root3d)
    write_bvh(path, fit, 1.0 / info.fps, world, root)


def export_files(path: str | Path, tracks) -> list[tuple[Path, int | None]]:
    """The files an ``--export`` path stands for: (file, track id it holds or None for all tracks).

    A ``.bvh`` path stands for one file per person with a fitted skeleton, ``<stem>_track<ID>.bvh`` beside it;
    any other path for itself.
    """
    path = Path(path)
    if path.suffix.lower() != ".bvh":
        return [(path, None)]
    return [(path.with_name(f"{path.stem}_track{t.track_id}{path.suffix}"), t.track_id)
            for t in tracks if t.skeleton is not None]


def export_tracks(path: str | Path, tracks, info, timeline: Timeline | None = None, *,
                  into: Path | None = None, track_id: int | None = None) -> Path:
    """Write tracks to ``path`` in the format its suffix names (.json, .npz, .csv, .bvh), atomically.

    Args:
        path: Destination file (for BVH, one of :func:`export_files`'s).
        tracks: list of :class:`pipeline.types.Track`.
        info: The video's :class:`pipeline.types.VideoInfo`.
        timeline: Presentation time of every decoded frame, and how many frames could not be decoded;
            None assumes ``info.num_frames`` frames evenly spaced at ``info.fps``.
        into: Write the file there instead, in ``path``'s format: a temporary file that the caller moves to
            ``path`` together with a run's other outputs (:class:`pipeline.io.outputs.StagedOutputs`).
        track_id: The person a BVH file holds (BVH only; the others hold every track).

    Returns:
        The written path.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    writers = {".json": _write_json, ".npz": _write_npz, ".csv": _write_csv, ".bvh": _write_bvh}
    if suffix not in writers:
        raise InputError(f"--export {path}: unknown format {path.suffix!r}; use one of {', '.join(EXPORT_FORMATS)}")
    if (suffix == ".bvh") != (track_id is not None):
        raise InputError(f"--export {path}: a BVH file holds one track (track_id), the other formats all")
    if timeline is None:
        timeline = Timeline.uniform(max([info.num_frames] + [int(t.frames[-1]) + 1 for t in tracks]), info.fps)
    write = _write_angles if path.name.lower().endswith(ANGLES_SUFFIX) else writers[suffix]
    if suffix == ".bvh":
        write = partial(_write_bvh, track_id=track_id)
    if into is not None:
        try:
            write(into, tracks, info, timeline)
        except OSError as err:
            raise OutputError(f"{path}: cannot write ({err.strerror}); check the folder and free space") from None
        return path
    with writing(path) as tmp:
        write(tmp, tracks, info, timeline)
    return path


def load_tracks_json(path: str | Path) -> tuple[dict, list]:
    """Read a ``pose3d-tracks`` JSON export back into (video metadata, list of Track)."""
    doc = json.loads(Path(path).read_text())
    if doc.get("format") != "pose3d-tracks":
        raise InputError(f"{path}: not a pose3d-tracks JSON file")

    def arr(value, dtype=np.float32):
        return np.array(value, dtype=np.float64).astype(dtype)  # null -> NaN through float64

    def optional(t: dict, key: str) -> np.ndarray | None:
        return None if t.get(key) is None else arr(t[key])   # version 1 files lack the fit's keys

    tracks = [Track(t["id"], np.array(t["frames"], np.int64), arr(t["keypoints2d"]), arr(t["scores2d"]),
                    np.array(t["interpolated"], bool), optional(t, "poses3d"), optional(t, "root3d"),
                    optional(t, "poses3d_raw"), _skeleton(t), optional(t, "contacts"))
              for t in doc["tracks"]]
    return doc["video"], tracks


def _skeleton(track: dict) -> SkeletonFit | None:
    """A JSON track's fitted rig (positions rebuilt by forward kinematics), or None."""
    if track.get("rotations") is None or track.get("rig_offsets") is None:
        return None
    quats = np.array(track["rotations"], np.float64)
    rotations = Rotation.from_quat(quats.reshape(-1, 4)).as_matrix().reshape(*quats.shape[:2], 3, 3)
    offsets = np.array(track["rig_offsets"], np.float64)
    positions, _ = forward_kinematics(torch.from_numpy(rotations), torch.from_numpy(offsets))
    return SkeletonFit(offsets.astype(np.float32), rotations.astype(np.float32), positions.numpy().astype(np.float32))
