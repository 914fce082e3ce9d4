"""BVH reader: hierarchy parser, vectorised forward kinematics and per-flavour joint tables -> H36M17.

How each H36M17 joint is derived (BVH joint names; ``X.end`` = X's End Site; every position comes from
forward kinematics of the file's own channels; "mid" = midpoint):

==============  ====================  ====================  ======================  =====================
H36M joint      cgspeed-mb            cgspeed-3dsmax(-m.)   cgspeed-daz, daz-m.     ASF/AMC (bone *end*)
==============  ====================  ====================  ======================  =====================
0 pelvis        mid(Left/RightUpLeg)  mid(Left/RightHip)    mid(l/rThigh)           mid(l/rhipjoint)
1, 4 r/l hip    Right/LeftUpLeg       Right/LeftHip         r/lThigh                r/lhipjoint
2, 5 knee       Right/LeftLeg         Right/LeftKnee        r/lShin                 r/lfemur
3, 6 ankle      Right/LeftFoot        Right/LeftAnkle       r/lFoot                 r/ltibia
7 spine         0.48 up the chain     0.48 up Hips-Chest-   0.48 up hip-abdomen-    0.48 up root-lowerback-
                Hips-Spine-Spine1-    Chest2-lowerneck      chest-neck              upperback-thorax
                Neck
8 thorax        Neck (a)              lowerneck (a)         neck                    thorax
9 neck/nose     Neck1                 Neck                  head                    lowerneck
10 head         Head.end              Head.end              head + 0.23 leg up      head
                                                            in head's frame (b)
11, 14 shoulder Left/RightArm         Left/RightShoulder    l/rShldr                l/rclavicle
12, 15 elbow    Left/RightForeArm     Left/RightElbow       l/rForeArm              l/rhumerus
13, 16 wrist    Left/RightHand        Left/RightWrist       l/rHand                 l/rradius
==============  ====================  ====================  ======================  =====================

"0.48 up the chain": the point between the two chain joints that bracket 0.48 of the pelvis -> thorax
distance in the rest pose (H36M's pelvis->spine / pelvis->thorax = 233 / 490 mm), blended linearly.
(a) the neck base, where neck and clavicles start. The cgspeed conversions wrote CMU's thorax bone with a
zero offset; it is restored (see :func:`_repair_thorax`), else the torso is 12 cm short.
(b) the daz skeletons end at the eyes; 0.23 hip-to-ankle lengths above the head joint is the crown for
a 1.64 m body (eye height 0.936 x stature).
The daz rigs are a stock figure the motion was retargeted onto (shoulders 23 cm apart, long forearms, the
neck base 5 cm above the shoulder line where the CMU skeletons put it 5-8 cm below): after the table above
they are conformed to the CMU ASF proportions and thorax placement (``conform_proportions``).

Units: cgspeed-mb and cgspeed-3dsmax are in CMU's ASF unit (x0.056444), cgspeed-daz in centimetres,
cgspeed-3dsmax-metres in metres; daz-metres is a 0.78x copy of a centimetre file written in metres, so its
leg comes out at 0.64 m, outside the plausible band: scale_known=False and it is rescaled to a hip-ankle
length of NOMINAL_LEG_M = 0.84 m (the ASF subjects' median). Position channels replace the OFFSET
component they name (exporters that write them on every joint repeat the offset there).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.errors import InputError
from pipeline.io.bvh import BvhJoint, forward_kinematics, parse_bvh
from pipeline.training.mocap_fk import (
    assemble_h36m,
    choose_scale,
    conform_proportions,
    place_on_floor,
    read_text,
    spine_weight,
    to_y_up,
)

# A point spec is a joint name, (name, "end") for its End Site, or (name, (dx, dy, dz)) for an offset in
# the joint's own frame measured in hip-to-ankle lengths (so it is scale-free).
_LIMBS = {"hip": 0, "knee": 1, "ankle": 2, "shoulder": 3, "elbow": 4, "wrist": 5}


def _sided(left: list[str], right: list[str], **centre) -> dict:
    table = {f"l_{k}": left[i] for k, i in _LIMBS.items()}
    table.update({f"r_{k}": right[i] for k, i in _LIMBS.items()})
    table.update(centre)
    return table


FLAVOURS: dict[str, dict] = {
    "cgspeed-mb": _sided(
        ["LeftUpLeg", "LeftLeg", "LeftFoot", "LeftArm", "LeftForeArm", "LeftHand"],
        ["RightUpLeg", "RightLeg", "RightFoot", "RightArm", "RightForeArm", "RightHand"],
        spine_chain=("Hips", "Spine", "Spine1", "Neck"), thorax="Neck", neck="Neck1", head=("Head", "end"),
        repair_thorax=("Spine1", "Neck", "LeftShoulder", "RightShoulder")),
    "cgspeed-3dsmax": _sided(
        ["LeftHip", "LeftKnee", "LeftAnkle", "LeftShoulder", "LeftElbow", "LeftWrist"],
        ["RightHip", "RightKnee", "RightAnkle", "RightShoulder", "RightElbow", "RightWrist"],
        spine_chain=("Hips", "Chest", "Chest2", "lowerneck"), thorax="lowerneck", neck="Neck",
        head=("Head", "end"), repair_thorax=("Chest2", "lowerneck", "LeftCollar", "RightCollar")),
    "cgspeed-daz": _sided(
        ["lThigh", "lShin", "lFoot", "lShldr", "lForeArm", "lHand"],
        ["rThigh", "rShin", "rFoot", "rShldr", "rForeArm", "rHand"],
        spine_chain=("hip", "abdomen", "chest", "neck"), thorax="neck", neck="head",
        head=("head", (0.0, 0.23, 0.0))),
}


_CHAINS = ("spine_chain", "repair_thorax")
# Flavours whose motion was retargeted onto a stock figure: their joint placement is the figure's, not the
# actor's, so they are conformed to the CMU proportions (:func:`pipeline.training.mocap_fk.conform_proportions`).
RETARGETED = ("cgspeed-daz",)


def _detect_flavour(joints: list[BvhJoint], path: Path) -> tuple[str, dict, dict[str, int]]:
    index = {jt.name.lower(): i for i, jt in enumerate(joints)}
    for flavour, table in FLAVOURS.items():
        if all(n.lower() in index for n in _names(table)):
            return flavour, table, index
    known = "; ".join(f"{f} ({', '.join(_names(t)[:3])}, ...)" for f, t in FLAVOURS.items())
    raise InputError(f"{path}: unknown BVH joint naming; joints seen: "
                     f"{', '.join(jt.name for jt in joints)}. Known flavours: {known}")


def _names(table: dict) -> list[str]:
    names = []
    for key, v in table.items():
        names += list(v) if key in _CHAINS else [v] if isinstance(v, str) else [v[0]]
    return names


def _rest_positions(joints: list[BvhJoint]) -> np.ndarray:
    rest = np.zeros((len(joints), 3))
    for j, jt in enumerate(joints):
        rest[j] = jt.offset + (rest[jt.parent] if jt.parent >= 0 else 0.0)
    return rest


def _point(spec, fk, rest, joints, index, leg, path):
    """Position (T, 3) and rest position (3,) of a point spec (see FLAVOURS)."""
    if isinstance(spec, str):
        j = index[spec.lower()]
        return fk[j][0], rest[j]
    j = index[spec[0].lower()]
    local = joints[j].end_site if spec[1] == "end" else np.asarray(spec[1]) * leg
    if local is None:
        raise InputError(f"{path}: BVH joint {joints[j].name!r} has no End Site (the head top)")
    return fk[j][0] + np.einsum("tij,j->ti", fk[j][1], local), rest[j] + local


def read_bvh_detail(path: Path, fps: float | None = None) -> tuple[np.ndarray, float, bool, str, str]:
    """Read a BVH file into H36M17 world joints.

    Args:
        path: .bvh or .bvh.gz file.
        fps: Frame rate to use instead of the header's Frame Time (which is snapped to the nearest
            integer rate when within 0.05%).

    Returns:
        (joints (T, 17, 3) float32 metres Y-up with the floor at y = 0, fps, scale_known,
        flavour name, unit name).
    """
    path = Path(path)
    joints, motion, frame_time = parse_bvh(read_text(path), path)
    flavour, table, index = _detect_flavour(joints, path)
    _repair_thorax(joints, table, index)
    parents = {jt_i for n in _names(table) for jt_i in _ancestors(joints, index[n.lower()])}
    fk = forward_kinematics(joints, motion, parents)
    rest = _rest_positions(joints)
    leg = _leg_length(rest, index, table)
    points, rest_pts = {}, {}
    for key, spec in table.items():
        if key not in _CHAINS:
            points[key], rest_pts[key] = _point(spec, fk, rest, joints, index, leg, path)
    chain = [index[n.lower()] for n in table["spine_chain"]]
    i, w = spine_weight(rest_pts, [rest[j] for j in chain])
    points["spine"] = (1 - w) * fk[chain[i]][0] + w * fk[chain[i + 1]][0]
    metres, known, unit = choose_scale(leg)
    up = rest_pts["thorax"] - 0.5 * (rest_pts["l_hip"] + rest_pts["r_hip"])
    out = to_y_up(assemble_h36m(points) * metres, up)
    if flavour in RETARGETED:
        out = conform_proportions(out)
    rate = 1.0 / frame_time
    if abs(rate - round(rate)) < 5e-4 * rate:  # headers round 1/120 s to .0083333 or 0.008333
        rate = float(round(rate))
    return place_on_floor(out).astype(np.float32), float(fps or rate), known, flavour, unit


def _leg_length(rest: np.ndarray, index: dict[str, int], table: dict) -> float:
    """Hip -> knee -> ankle rest length in file units, mean of both legs."""
    def at(key):
        return rest[index[table[key].lower()]]

    return float(np.mean([np.linalg.norm(at(f"{s}_knee") - at(f"{s}_hip"))
                          + np.linalg.norm(at(f"{s}_ankle") - at(f"{s}_knee")) for s in "lr"]))


def _repair_thorax(joints: list[BvhJoint], table: dict, index: dict[str, int]) -> None:
    """Give back the thorax bone that the cgspeed conversions dropped.

    CMU's ASF spine is lowerback -> upperback -> thorax, with the neck and clavicles hanging off the end
    of thorax. The cgspeed BVHs keep a joint for each bone's rotation but write the thorax bone with a
    zero offset, which puts neck, head and shoulders ~12 cm too low (pelvis->thorax 0.33 m against 0.46 m
    in the ASF skeletons and 0.49 m in H36M). The thorax bone is about as long as upperback in every CMU
    ASF, so the joints that should sit at its end get upperback's offset when theirs is zero.
    """
    if "repair_thorax" not in table:
        return
    source, *targets = (index[n.lower()] for n in table["repair_thorax"])
    for j in targets:
        if not np.any(joints[j].offset):
            joints[j].offset = joints[source].offset.copy()


def _ancestors(joints: list[BvhJoint], j: int) -> list[int]:
    out = []
    while j >= 0:
        out.append(j)
        j = joints[j].parent
    return out
