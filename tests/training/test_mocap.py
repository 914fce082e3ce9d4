"""Tests for pipeline/training/mocap.py (+ mocap_bvh, mocap_asf): FK on hand-made files, CMU files of every flavour,
clean / resample, the dataset loader and its cache."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from pipeline.errors import InputError, ShapeError
from pipeline.io.bvh import forward_kinematics, parse_bvh
from pipeline.training import mocap
from pipeline.training.mocap import Motion, clean, load_dataset, load_manifest, load_motion, read_bvh, resample
from pipeline.training.mocap_bvh import read_bvh_detail
from pipeline.training.mocap_fk import REFERENCE_BONES, conform_proportions
from tests.support.synth import SHARED, STANDING

CMU = SHARED / "data" / "mocap" / "cmu"

# One motion per flavour: (relative path, flavour, capture fps, scale_known).
FILES = {
    "cgspeed-mb": ("bvh/cgspeed-mb/06_01.bvh.gz", 120.0, True),
    "cgspeed-daz": ("bvh/cgspeed-daz/10_04.bvh.gz", 120.0, True),
    "daz-metres": ("bvh/daz-metres/60_01_scaled.bvh.gz", 60.0, False),
    "cgspeed-3dsmax": ("bvh/cgspeed-3dsmax/131_01.bvh.gz", 120.0, True),
    "cgspeed-3dsmax-metres": ("bvh/cgspeed-3dsmax-metres/scaled_131_03.bvh.gz", 120.0, True),
    "asf-amc": ("asfamc/02/02_01.amc.gz", 120.0, True),
}
WALKS = ("cgspeed-mb", "cgspeed-daz", "asf-amc")  # all three are CMU "walk" trials
# Rigid segments: FK keeps their lengths exactly (pelvis-hip, spine and shoulders may flex with the
# spine/hip/clavicle joints, so they are not in the list).
RIGID = [(1, 2), (2, 3), (4, 5), (5, 6), (8, 9), (11, 12), (12, 13), (14, 15), (15, 16)]


@pytest.fixture(scope="module")
def cmu() -> Path:
    if not CMU.is_dir():
        pytest.skip("../shared/data/mocap not present")
    return CMU


@pytest.fixture(scope="module")
def motions(cmu) -> dict[str, Motion]:
    return {k: load_motion(cmu / rel, fps=fps) for k, (rel, fps, _) in FILES.items()}


# --------------------------------------------------------------------------------------------------------------
# hand-made BVH files: exact forward kinematics, gzip, flavour tables, errors


CHAIN = """HIERARCHY
ROOT a
{
  OFFSET 0 0 0
  CHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation
  JOINT b
  {
    OFFSET 1 0 0
    CHANNELS 3 Xrotation Yrotation Zrotation
    End Site
    {
      OFFSET 0 2 0
    }
  }
}
MOTION
Frames: 2
Frame Time: 0.04
0 0 0 0 0 0 0 0 0
1 2 3 90 0 0 90 0 90
"""


def _rz(d):
    c, s = np.cos(np.radians(d)), np.sin(np.radians(d))
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


def _rx(d):
    c, s = np.cos(np.radians(d)), np.sin(np.radians(d))
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def test_fk_chain_matches_hand_computation(tmp_path):
    joints, motion, frame_time = parse_bvh(CHAIN, tmp_path / "chain.bvh")
    assert [j.name for j in joints] == ["a", "b"] and frame_time == 0.04 and motion.shape == (2, 9)
    fk = forward_kinematics(joints, motion, {0, 1})
    np.testing.assert_allclose(fk[1][0][0], [1, 0, 0], atol=1e-12)  # frame 0: rest pose
    # Frame 1: root at (1, 2, 3) turned 90 deg about Z, so b's offset (1, 0, 0) points along +Y.
    np.testing.assert_allclose(fk[0][0][1], [1, 2, 3], atol=1e-12)
    np.testing.assert_allclose(fk[1][0][1], [1, 3, 3], atol=1e-12)
    # b: X 90 then Z 90 in listed order, R = Rx Rz; the End Site (0, 2, 0) goes through Rz Rx Rz.
    rot_b = _rz(90) @ _rx(90) @ _rz(90)
    np.testing.assert_allclose(fk[1][1][1], rot_b, atol=1e-12)
    end = fk[1][0][1] + fk[1][1][1] @ np.array([0.0, 2.0, 0.0])
    np.testing.assert_allclose(end, [1, 3, 3] + _rz(90) @ _rx(90) @ np.array([-2.0, 0, 0]), atol=1e-12)
    np.testing.assert_allclose(end, [1, 1, 3], atol=1e-12)


def _bvh(tree, frames: list[list[float]]) -> str:
    """A BVH file from nested (name, offset, channels, children | "end" offset) tuples."""
    lines = ["HIERARCHY"]

    def emit(node, depth, root=False):
        name, offset, channels, children = node
        pad = "  " * depth
        lines.append(f"{pad}{'ROOT' if root else 'JOINT'} {name}")
        lines.append(pad + "{")
        lines.append(f"{pad}  OFFSET {offset[0]} {offset[1]} {offset[2]}")
        lines.append(f"{pad}  CHANNELS {len(channels)} {' '.join(channels)}")
        if isinstance(children, tuple):  # End Site offset
            lines.extend([f"{pad}  End Site", pad + "  {",
                          f"{pad}    OFFSET {' '.join(map(str, children))}", pad + "  }"])
        else:
            for child in children:
                emit(child, depth + 1)
        lines.append(pad + "}")

    emit(tree, 0, root=True)
    lines += ["MOTION", f"Frames: {len(frames)}", "Frame Time: 0.0083333"]
    lines += [" ".join(f"{v:g}" for v in f) for f in frames]
    return "\n".join(lines) + "\n"


ROT = ["Zrotation", "Yrotation", "Xrotation"]


def _limb(side, sign, hip, knee, ankle):
    return (f"{side}Hip", (sign * hip[0], hip[1], 0), ROT, [
        (f"{side}Knee", (0, knee, 0), ROT, [(f"{side}Ankle", (0, ankle, 0), ROT, (0, 0, 0.1))])])


def _arm(side, sign):
    return (f"{side}Collar", (sign * 0.02, 0.0, 0), ROT, [
        (f"{side}Shoulder", (sign * 0.15, 0.02, 0), ROT, [
            (f"{side}Elbow", (0, -0.28, 0), ROT, [(f"{side}Wrist", (0, -0.25, 0), ROT, (0, -0.1, 0))])])])


# A 'cgspeed-3dsmax'-named body in metres, arms hanging: hips 0.1 m either side, 0.43 + 0.42 m legs, root
# 0.93 m up; spine joints at 1.13 and 1.33 m, neck base 1.43, neck 1.53, head top 1.78.
SMALL_3DSMAX = ("Hips", (0, 0, 0), ["Xposition", "Yposition", "Zposition"] + ROT, [
    _limb("Left", 1, (0.1, -0.0), -0.43, -0.42),
    _limb("Right", -1, (0.1, -0.0), -0.43, -0.42),
    ("Chest", (0, 0.2, 0), ROT, [("Chest2", (0, 0.2, 0), ROT, [
        ("lowerneck", (0, 0.1, 0), ROT, [("Neck", (0, 0.1, 0), ROT, [("Head", (0, 0.1, 0), ROT, (0, 0.15, 0))])]),
        _arm("Left", 1), _arm("Right", -1)])]),
])
N_CH = 3 + 3 * 20  # root translation + 20 joints x 3 rotations


def _small_frames() -> list[list[float]]:
    still = [0.0, 0.93, 0.0] + [0.0] * (N_CH - 3)
    bent = list(still)
    bent[3 + 3 * 1 + 2] = -90.0  # LeftHip (2nd joint) Xrotation -90: thigh swings forward to +Z
    bent[3 + 3 * 2 + 2] = 90.0  # LeftKnee Xrotation +90: the shin hangs down again
    bent[0] = 0.5  # and the root moves 0.5 m along +X
    return [still, bent]


def test_known_flavour_fk_plain_and_gzip_identical(tmp_path):
    text = _bvh(SMALL_3DSMAX, _small_frames())
    plain, packed = tmp_path / "01_01.bvh", tmp_path / "01_02.bvh.gz"
    plain.write_text(text)
    with gzip.open(packed, "wt") as f:
        f.write(text)
    j_plain, fps, known, flavour, unit = read_bvh_detail(plain)
    j_gz, fps_gz, known_gz = read_bvh(packed)
    np.testing.assert_array_equal(j_plain, j_gz)
    assert (flavour, unit, known, fps, fps_gz) == ("cgspeed-3dsmax", "m", True, 120.0, 120.0)
    assert j_plain.shape == (2, 17, 3) and j_plain.dtype == np.float32
    f0, f1 = j_plain.astype(np.float64)
    # Rest frame: feet already at 0.08 m so the floor is kept; pelvis = mid-hips, left at +X.
    np.testing.assert_allclose(f0[[0, 4, 5, 6, 1, 3]], [[0, 0.93, 0], [0.1, 0.93, 0], [0.1, 0.5, 0],
                                                        [0.1, 0.08, 0], [-0.1, 0.93, 0], [-0.1, 0.08, 0]],
                               atol=1e-6)
    np.testing.assert_allclose(f0[[8, 9, 10]], [[0, 1.43, 0], [0, 1.53, 0], [0, 1.78, 0]], atol=1e-6)
    np.testing.assert_allclose(f0[[11, 12, 13]], [[0.17, 1.35, 0], [0.17, 1.07, 0], [0.17, 0.82, 0]], atol=1e-6)
    np.testing.assert_allclose(f0[[14, 16]], [[-0.17, 1.35, 0], [-0.17, 0.82, 0]], atol=1e-6)
    np.testing.assert_allclose(f0[7], [0, 0.93 + 0.48 * 0.5, 0], atol=1e-6)  # spine at 0.48 pelvis->thorax
    # Bent frame: left knee 0.43 m in front of the hip (+Z), ankle hangs 0.42 m below the knee.
    np.testing.assert_allclose(f1[4], [0.6, 0.93, 0], atol=1e-6)
    np.testing.assert_allclose(f1[5], [0.6, 0.93, 0.43], atol=1e-6)
    np.testing.assert_allclose(f1[6], [0.6, 0.51, 0.43], atol=1e-6)


def test_units_are_detected_from_leg_length(tmp_path):
    text = _bvh(SMALL_3DSMAX, _small_frames())
    # The same body written in centimetres (offsets and root translation x100) reads identically.
    scaled = []
    for line in text.splitlines():
        t = line.split()
        if t and t[0] == "OFFSET":
            line = line.replace(line.strip(), "OFFSET " + " ".join(f"{100 * float(v):g}" for v in t[1:]))
        scaled.append(line)
    frames = [[100 * v if i < 3 else v for i, v in enumerate(f)] for f in _small_frames()]
    head = "\n".join(scaled[:scaled.index("MOTION")])
    body = "\n".join(["MOTION", "Frames: 2", "Frame Time: 0.0083333"] + [" ".join(map(str, f)) for f in frames])
    path = tmp_path / "cm.bvh"
    path.write_text(head + "\n" + body + "\n")
    j_cm, _, known, _, unit = read_bvh_detail(path)
    (tmp_path / "m.bvh").write_text(text)
    np.testing.assert_allclose(j_cm, read_bvh(tmp_path / "m.bvh")[0], atol=1e-5)
    assert unit == "cm" and known


def test_unknown_naming_lists_names_and_flavours(tmp_path):
    path = tmp_path / "chain.bvh"
    path.write_text(CHAIN)
    with pytest.raises(InputError) as e:
        read_bvh(path)
    msg = str(e.value)
    assert str(path) in msg and "a, b" in msg and "cgspeed-mb" in msg and "cgspeed-daz" in msg


@pytest.mark.parametrize("breakage,why", [
    (lambda t: "not a bvh at all", "not a BVH"),
    (lambda t: t.rstrip()[:-2] + "\n", "not a multiple"),  # last value missing
    (lambda t: t.replace("0.93 0 0 0", "0.93 x 0 0"), "non-numeric"),
    (lambda t: t.replace("}\nMOTION", "MOTION"), "braces"),
    (lambda t: t.replace("Zrotation Yrotation Xrotation", "Zrotation Yrotation Wrotation", 1), "channels"),
])
def test_malformed_bvh_raises_input_error_naming_file(tmp_path, breakage, why):
    path = tmp_path / "bad.bvh"
    path.write_text(breakage(_bvh(SMALL_3DSMAX, _small_frames())))
    with pytest.raises(InputError, match=f"bad.bvh.*{why}"):
        load_motion(path)


def test_missing_and_unknown_files(tmp_path):
    with pytest.raises(InputError, match="nope.bvh"):
        load_motion(tmp_path / "nope.bvh")
    (tmp_path / "x.c3d").write_bytes(b"\0")
    with pytest.raises(InputError, match="x.c3d"):
        load_motion(tmp_path / "x.c3d")
    (tmp_path / "01_01.amc").write_text("1\nroot 0 0 0 0 0 0\n")
    with pytest.raises(InputError, match="01_01.amc"):  # no skeleton beside it
        load_motion(tmp_path / "01_01.amc")


def test_malformed_amc_raises_input_error(cmu, tmp_path):
    asf = cmu / "asfamc" / "02" / "02.asf.gz"
    (tmp_path / "02.asf.gz").symlink_to(asf)
    (tmp_path / "02_01.amc").write_text(":FULLY-SPECIFIED\n:DEGREES\n1\nroot 0 0 0 0 0 0\nlfemur 1 2\n")
    with pytest.raises(InputError, match="02_01.amc"):
        load_motion(tmp_path / "02_01.amc")


# --------------------------------------------------------------------------------------------------------------
# Motion, resample, clean on synthetic motions


def _linear(frames: int, fps: float, velocity=(1.0, 0.0, 0.5)) -> Motion:
    t = np.arange(frames)[:, None, None] / fps
    joints = STANDING[None] + t * np.asarray(velocity)
    return Motion(joints.astype(np.float32), fps, "1", "01_01")


@pytest.mark.parametrize("bad", [
    dict(joints=np.zeros((5, 16, 3), np.float32)),
    dict(joints=np.zeros((5, 17, 3), np.float64)),
    dict(joints=np.full((5, 17, 3), np.nan, np.float32)),
    dict(joints=np.zeros((0, 17, 3), np.float32)),
    dict(fps=0.0),
])
def test_motion_validates(bad):
    kw = dict(joints=np.zeros((5, 17, 3), np.float32), fps=50.0, subject="1", name="01_01") | bad
    with pytest.raises(ShapeError):
        Motion(**kw)


@pytest.mark.parametrize("src,dst", [(120.0, 50.0), (60.0, 50.0), (30.0, 50.0), (120.0, 120.0)])
def test_resample_length_and_linear_motion(src, dst):
    m = _linear(241, src)
    out = resample(m, dst)
    assert out.fps == dst and out.num_frames == int(np.floor(240 * dst / src + 1e-9)) + 1
    expected = _linear(out.num_frames, dst).joints
    np.testing.assert_allclose(out.joints, expected, atol=1e-5)


def test_clean_cuts_glitches_and_drops_short_pieces():
    m = _linear(600, 120.0)
    joints = m.joints.copy()
    joints[200] += [0.0, 0.0, 0.3]  # one bad frame
    joints[450:] += [2.0, 0.0, 0.0]  # a jump: two pieces
    joints[560:] += [0.0, -1.0, 0.0]  # another: leaves a 110-frame (< 1 s) piece that is dropped
    pieces = clean(Motion(joints, 120.0, "1", "01_01"))
    assert [p.num_frames for p in pieces] == [200, 249]  # [200] alone and the last 110 + 40 frames go
    assert [p.name for p in pieces] == ["01_01-1", "01_01-2"]
    np.testing.assert_array_equal(pieces[1].joints, joints[201:450])
    assert clean(m)[0] is m and len(clean(m)) == 1  # nothing to do


def test_clean_drops_leading_tpose_only():
    m = _linear(240, 120.0)
    tpose = STANDING.copy()
    for side, sign in (((11, 12, 13), 1), ((14, 15, 16), -1)):
        tpose[list(side)] = [[sign * 0.18, 1.43, 0], [sign * 0.46, 1.43, 0], [sign * 0.71, 1.43, 0]]
    joints = m.joints.copy()
    joints[0] = tpose
    joints[100] = tpose + [joints[100, 0] - tpose[0]]  # a T-pose mid-motion stays
    (out,) = clean(Motion(joints, 120.0, "1", "01_01"))
    np.testing.assert_array_equal(out.joints, joints[1:])


# --------------------------------------------------------------------------------------------------------------
# the CMU files, one per flavour


@pytest.mark.parametrize("key", FILES)
def test_cmu_reads_shape_fps_scale(motions, key):
    m, (_, fps, known) = motions[key], FILES[key]
    assert m.joints.shape[1:] == (17, 3) and m.joints.dtype == np.float32 and np.isfinite(m.joints).all()
    assert m.fps == fps and m.scale_known is known and m.num_frames > 200


@pytest.mark.parametrize("key", FILES)
def test_cmu_rigid_bones_constant(motions, key):
    j = motions[key].joints.astype(np.float64)
    for p, c in RIGID:
        length = np.linalg.norm(j[:, c] - j[:, p], axis=-1)
        assert length.std() / length.mean() < 0.01, (p, c)


@pytest.mark.parametrize("key", FILES)
def test_cmu_body_size_and_floor(motions, key):
    j = motions[key].joints.astype(np.float64)
    assert 1.4 < np.median(j[:, 10, 1]) < 2.0  # head top above the floor
    leg = np.linalg.norm(j[:, 4] - j[:, 5], axis=-1) + np.linalg.norm(j[:, 5] - j[:, 6], axis=-1)
    assert 0.7 < np.median(leg) < 1.0
    low = np.minimum(j[:, 3, 1], j[:, 6, 1])
    assert 0.0 <= np.percentile(low, 5) <= 0.2 and low.min() > -0.1
    assert np.median(j[:, 8, 1] - j[:, 0, 1]) > 0.35  # Y is up: thorax above pelvis


@pytest.mark.parametrize("key", FILES)
def test_cmu_flavours_share_one_anatomy(motions, key):
    """Every flavour, retargeted daz rigs included, gives the actors' proportions: shoulder width and
    forearm relative to the leg, and the neck base below the shoulder line."""
    j = motions[key].joints.astype(np.float64)
    leg = np.linalg.norm(j[:, 4] - j[:, 5], axis=-1).mean() + np.linalg.norm(j[:, 5] - j[:, 6], axis=-1).mean()
    shoulders = np.linalg.norm(j[:, 11] - j[:, 14], axis=-1).mean() / leg
    forearm = np.linalg.norm(j[:, 12] - j[:, 13], axis=-1).mean() / leg
    assert 0.38 < shoulders < 0.50 and 0.19 < forearm < 0.26, (shoulders, forearm)
    mid = 0.5 * (j[:, 11] + j[:, 14])
    up = (mid - j[:, 0]) / np.linalg.norm(mid - j[:, 0], axis=-1, keepdims=True)
    assert np.median(((j[:, 8] - mid) * up).sum(-1)) < 0.0


def test_conform_proportions_keeps_pelvis_and_leg_and_sets_lengths():
    rng = np.random.default_rng(0)
    j = STANDING[None].astype(np.float64) + rng.normal(0, 0.01, (5, 17, 3))
    out = conform_proportions(j)
    assert np.allclose(out[:, 0], j[:, 0])
    parents = [0, 0, 1, 2, 0, 4, 5, 0, 7, 8, 9, 8, 11, 12, 8, 14, 15]
    lengths = np.linalg.norm(out - out[:, parents], axis=-1).mean(0)
    leg_in = 0.5 * sum(np.linalg.norm(j[:, c] - j[:, p], axis=-1).mean() for c, p in ((2, 1), (3, 2), (5, 4), (6, 5)))
    assert np.allclose(lengths[1:], REFERENCE_BONES[1:] * leg_in, rtol=0.02)


def _forward(j: np.ndarray) -> np.ndarray:
    """Body forward per frame for a right-handed Y-up world: (left hip - right hip) x up."""
    f = np.cross(j[:, 4] - j[:, 1], j[:, 8] - j[:, 0])
    return f / np.linalg.norm(f, axis=-1, keepdims=True)


@pytest.mark.parametrize("key", FILES)
def test_cmu_not_mirrored_knees_bend_forward(motions, key):
    j = motions[key].joints[1:].astype(np.float64)
    fwd = _forward(j)
    for hip, knee, ankle in ((1, 2, 3), (4, 5, 6)):
        ha, hk = j[:, ankle] - j[:, hip], j[:, knee] - j[:, hip]
        off = hk - (np.sum(hk * ha, -1) / np.sum(ha * ha, -1))[:, None] * ha
        bent = np.linalg.norm(off, axis=-1) > 0.05
        assert bent.sum() > 20 and np.mean(np.sum(off * fwd, -1)[bent] > 0) > 0.9


@pytest.mark.parametrize("key", WALKS)
def test_cmu_walks_go_where_the_body_faces(motions, key):
    j = motions[key].joints[1:].astype(np.float64)
    walk = j[-1, 0] - j[0, 0]
    walk[1] = 0
    assert np.linalg.norm(walk) > 2.0
    assert np.dot(walk / np.linalg.norm(walk), _forward(j).mean(0)) > 0.9


def test_cmu_mb_tpose_removed(motions):
    raw = motions["cgspeed-mb"]
    (out,) = clean(raw)
    assert out.num_frames == raw.num_frames - 1
    np.testing.assert_array_equal(out.joints, raw.joints[1:])
    arms = raw.joints[0, [11, 12, 13, 14, 15, 16], 1]
    assert np.ptp(arms) < 0.1  # frame 0 was the T-pose: both arms level


def test_cmu_glitch_frames_dropped(cmu):
    raw = load_motion(cmu / "bvh/cgspeed-mb/07_12.bvh.gz")  # starts with a T-pose and a 2 m pelvis jump
    (out,) = clean(raw)
    assert out.num_frames == raw.num_frames - 2
    speed = np.linalg.norm(np.diff(out.joints[:, 0], axis=0), axis=-1) * out.fps
    assert speed.max() < 5.0


# --------------------------------------------------------------------------------------------------------------
# manifest, dataset loader, cache


def test_manifest_columns(cmu):
    entries = load_manifest(cmu)
    assert len(entries) > 200 and all(e.path.is_file() for e in entries[:5])
    daz = [e for e in entries if "daz-metres" in str(e.path)]
    assert daz and all(e.capture_fps == 60.0 and e.file_fps > 119 for e in daz)
    assert {e.subject for e in entries} >= {"6", "16", "131"}


def test_dataset_uses_capture_fps_and_caches(cmu, tmp_path, monkeypatch):
    calls = []
    out = load_dataset(cmu, fps=30.0, subjects={"60"}, cache_dir=tmp_path,
                       progress=lambda done, total: calls.append((done, total)))
    raw = {e.path.name.split(".")[0][:5]: e.frames for e in load_manifest(cmu) if e.subject == "60"}
    assert calls[-1] == (len(raw), len(raw)) and len(calls) == len(raw)
    assert all(m.fps == 30.0 and m.subject == "60" and not m.scale_known for m in out)
    # Captured at 60 fps: 30 fps keeps about half the frames (at the header's 120 it would be a quarter).
    total_raw, total = sum(raw.values()), sum(m.num_frames for m in out)
    assert 0.45 * total_raw < total <= 0.5 * total_raw + len(out)
    assert len(list(tmp_path.glob("*.npz"))) == len(raw)

    def fail(*a, **k):
        raise AssertionError("cache missed")

    monkeypatch.setattr(mocap, "load_motion", fail)
    again = load_dataset(cmu, fps=30.0, subjects={"60"}, cache_dir=tmp_path)
    assert [m.name for m in again] == [m.name for m in out]
    for a, b in zip(out, again):
        np.testing.assert_array_equal(a.joints, b.joints)
        assert (a.fps, a.subject, a.description, a.scale_known) == (b.fps, b.subject, b.description, b.scale_known)


def test_dataset_without_manifest(tmp_path):
    folder = tmp_path / "mine" / "7"
    folder.mkdir(parents=True)
    frames = [_small_frames()[0]] * 130  # 130 still frames at 120 fps: one piece over 1 s
    (folder / "07_03.bvh").write_text(_bvh(SMALL_3DSMAX, frames))
    (folder / "notes.txt").write_text("ignored")
    out = load_dataset(tmp_path / "mine", fps=60.0, cache_dir=tmp_path / "cache")
    assert [(m.subject, m.name, m.fps, m.num_frames) for m in out] == [("7", "07_03", 60.0, 65)]
    assert load_dataset(tmp_path / "mine", subjects={"8"}, cache_dir=tmp_path / "cache") == []
    with pytest.raises(InputError, match="missing"):
        load_dataset(tmp_path / "missing")
