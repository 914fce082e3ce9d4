"""CMU ASF/AMC reader: skeleton + motion -> H36M17 world joints (derivation table in mocap_bvh).

ASF lengths are in units of 1/``length`` inch (CMU: ``:units length 0.45``, so x0.0254/0.45 = x0.056444
for metres); angles in degrees unless ``:units angle rad``. Each bone's local rotation is C M C^-1, with C
from the bone's ``axis`` angles and M from its AMC dof values, both composed in the ``axis`` order
(Acclaim's "XYZ" means x applied first, i.e. Rz Ry Rx on column vectors).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pipeline.errors import InputError
from pipeline.training.mocap_fk import assemble_h36m, euler_matrices, place_on_floor, read_text, spine_weight, to_y_up

AMC_FPS = 120.0
# H36M point -> the ASF bone whose far end it is ("root" = the root position).
ASF_POINTS = {
    "l_hip": "lhipjoint", "l_knee": "lfemur", "l_ankle": "ltibia",
    "l_shoulder": "lclavicle", "l_elbow": "lhumerus", "l_wrist": "lradius",
    "r_hip": "rhipjoint", "r_knee": "rfemur", "r_ankle": "rtibia",
    "r_shoulder": "rclavicle", "r_elbow": "rhumerus", "r_wrist": "rradius",
    "thorax": "thorax", "neck": "lowerneck", "head": "head",
}
ASF_SPINE_CHAIN = ("root", "lowerback", "upperback", "thorax")


@dataclass
class AsfBone:
    """One ASF bone: unit direction (3,) and length in file units, axis angles (deg) and order, dofs."""

    name: str
    direction: np.ndarray = field(default_factory=lambda: np.zeros(3))
    length: float = 0.0
    axis: np.ndarray = field(default_factory=lambda: np.zeros(3))
    order: str = "XYZ"
    dof: list[str] = field(default_factory=list)
    parent: str | None = None


@dataclass
class AsfSkeleton:
    """Parsed ASF: bones by name (root included), metres per length unit, angles in degrees or not."""

    bones: dict[str, AsfBone]
    metres_per_unit: float
    degrees: bool


def parse_asf(text: str, path: Path) -> AsfSkeleton:
    """Parse ASF text into bones with parents.

    Args:
        text: Whole ASF file.
        path: For error messages.

    Returns:
        The skeleton; root has dof from ``:root order`` and order from ``:root axis``.
    """
    bones = {"root": AsfBone("root", dof=["tx", "ty", "tz", "rx", "ry", "rz"])}
    length_unit, degrees, section, bone = 1.0, True, "", None
    try:
        for raw in text.splitlines():
            t = raw.split()
            if not t or t[0].startswith("#"):
                continue
            if t[0].startswith(":"):
                section = t[0][1:].lower()
            elif section == "units" and t[0] == "length":
                length_unit = float(t[1])
            elif section == "units" and t[0] == "angle":
                degrees = not t[1].lower().startswith("rad")
            elif section == "root" and t[0] == "order":
                bones["root"].dof = [x.lower() for x in t[1:]]
            elif section == "root" and t[0] == "axis":
                bones["root"].order = t[1].upper()
            elif section == "bonedata":
                bone = _bone_line(t, bones, bone)
            elif section == "hierarchy" and t[0] not in ("begin", "end"):
                for child in t[1:]:
                    bones[child].parent = t[0]
    except (IndexError, ValueError, KeyError) as e:
        raise InputError(f"{path}: malformed ASF ({type(e).__name__}: {e})") from e
    missing = [b for b in set(ASF_POINTS.values()) | set(ASF_SPINE_CHAIN) if b not in bones]
    if missing:
        raise InputError(f"{path}: ASF lacks the bones {sorted(missing)} (CMU naming expected)")
    for name in ASF_POINTS.values():
        seen = {name}
        while name != "root":
            name = bones[name].parent
            if name is None or name in seen:
                raise InputError(f"{path}: ASF :hierarchy does not connect {sorted(seen)} to the root")
            seen.add(name)
    return AsfSkeleton(bones, 0.0254 / length_unit, degrees)


def _bone_line(t: list[str], bones: dict[str, AsfBone], bone: AsfBone | None) -> AsfBone | None:
    key = t[0].lower()
    if key == "begin":
        return AsfBone("")
    if key == "name":
        bone.name = t[1]
        bones[t[1]] = bone
    elif key == "direction":
        bone.direction = np.array(t[1:4], dtype=np.float64)
    elif key == "length":
        bone.length = float(t[1])
    elif key == "axis":
        bone.axis, bone.order = np.array(t[1:4], dtype=np.float64), t[4].upper()
    elif key == "dof":
        bone.dof = [x.lower() for x in t[1:]]
    return bone


def parse_amc(text: str, skel: AsfSkeleton, path: Path) -> dict[str, np.ndarray]:
    """Parse AMC motion.

    Args:
        text: Whole AMC file.
        skel: Its skeleton (gives each bone's dof count).
        path: For error messages.

    Returns:
        {bone name: (T, n_dof) float64 values in the bone's dof order}.
    """
    lines = text.splitlines()
    start = next((i for i, ln in enumerate(lines) if ln.strip().isdigit()), None)
    if start is None:
        raise InputError(f"{path}: AMC has no frame numbers")
    first = []
    for ln in lines[start + 1:]:
        name = ln.split(maxsplit=1)[0] if ln.strip() else ""
        if not name or name.isdigit():
            break
        first.append(name)
    try:
        width = [len(skel.bones[n].dof) for n in first]
    except KeyError as e:
        raise InputError(f"{path}: AMC names bone {e} that its ASF does not define") from e
    tokens = " ".join(lines[start:]).split()
    block = 1 + sum(1 + w for w in width)
    if len(tokens) % block:
        raise InputError(f"{path}: AMC frames are not all alike ({len(tokens)} tokens, not a multiple "
                         f"of the {block} in frame 1); every frame must list the same bones")
    table = np.array(tokens).reshape(-1, block)
    out, col = {}, 1
    for name, w in zip(first, width):
        if not np.all(table[:, col] == name):
            raise InputError(f"{path}: AMC frames list bones in differing orders (column of {name!r})")
        try:
            out[name] = table[:, col + 1:col + 1 + w].astype(np.float64)
        except ValueError as e:
            raise InputError(f"{path}: non-numeric AMC value for {name!r} ({e})") from e
        col += 1 + w
    return out


def _bone_frames(skel: AsfSkeleton, motion: dict[str, np.ndarray], n: int) -> dict[str, np.ndarray]:
    """Global rotation (T, 3, 3) and end position (T, 3) per bone on the paths to the needed points."""
    need: set[str] = set()
    for b in list(ASF_POINTS.values()) + list(ASF_SPINE_CHAIN):
        while b is not None and b not in need:
            need.add(b)
            b = skel.bones[b].parent
    rot, end, done = {}, {}, set()
    while len(done) < len(need):  # parents before children without assuming ASF order
        ready = [b for b in sorted(need - done) if skel.bones[b].parent in done or b == "root"]
        for name in ready:
            bone = skel.bones[name]
            values = motion.get(name, np.zeros((n, len(bone.dof))))
            ang = np.zeros((n, 3))
            for k, d in enumerate(bone.dof):
                if d[0] == "r":
                    ang[:, "xyz".index(d[1])] = values[:, k] if skel.degrees else np.rad2deg(values[:, k])
            order = bone.order[::-1]  # Acclaim order lists the first-applied rotation first
            c = euler_matrices(bone.axis[None, ["XYZ".index(a) for a in order]], order)[0]
            m = euler_matrices(ang[:, ["XYZ".index(a) for a in order]], order)
            local = c @ m @ c.T
            if name == "root":
                trans = np.zeros((n, 3))
                for k, d in enumerate(bone.dof):
                    if d[0] == "t":
                        trans[:, "xyz".index(d[1])] = values[:, k]
                rot[name], end[name] = local, trans
            else:
                rot[name] = rot[bone.parent] @ local
                end[name] = end[bone.parent] + bone.length * (rot[name] @ bone.direction)
            done.add(name)
    return end


def read_asf_amc(asf_path: Path, amc_path: Path) -> tuple[np.ndarray, float]:
    """Read a CMU ASF skeleton and AMC motion into H36M17 world joints.

    Args:
        asf_path: .asf or .asf.gz skeleton.
        amc_path: .amc or .amc.gz motion.

    Returns:
        (joints (T, 17, 3) float32 metres, Y-up, floor at y = 0; fps = 120, CMU's capture rate).
    """
    asf_path, amc_path = Path(asf_path), Path(amc_path)
    skel = parse_asf(read_text(asf_path), asf_path)
    motion = parse_amc(read_text(amc_path), skel, amc_path)
    n = len(next(iter(motion.values())))
    end = _bone_frames(skel, motion, n)
    rest = _bone_frames(skel, {}, 1)
    points = {k: end[b] for k, b in ASF_POINTS.items()}
    rest_pts = {k: rest[b][0] for k, b in ASF_POINTS.items()}
    i, w = spine_weight(rest_pts, [rest[b][0] for b in ASF_SPINE_CHAIN])
    points["spine"] = (1 - w) * end[ASF_SPINE_CHAIN[i]] + w * end[ASF_SPINE_CHAIN[i + 1]]
    up = rest_pts["thorax"] - 0.5 * (rest_pts["l_hip"] + rest_pts["r_hip"])
    joints = to_y_up(assemble_h36m(points) * skel.metres_per_unit, up)
    return place_on_floor(joints).astype(np.float32), AMC_FPS
