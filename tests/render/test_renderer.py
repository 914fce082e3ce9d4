"""Stage 6 drawing: pixels where the skeletons should be, the right colours, sizes and orientation."""

from __future__ import annotations

import itertools

import cv2
import numpy as np
import pytest

from pipeline.errors import ConfigError, ShapeError
from pipeline.render.renderer import Renderer, frames_of
from pipeline.render.style import PersonFrame, RenderConfig, track_color
from pipeline.types import Track

W, H = 640, 480
BACKGROUND = np.array([32, 28, 26])            # the 3D panel's BGR background

# COCO-17 pixels of a person facing the camera: their left side is on the image's right.
COCO = np.array([
    [320, 110], [328, 104], [312, 104], [336, 108], [304, 108],      # nose, eyes, ears
    [360, 150], [280, 150], [380, 210], [260, 210], [390, 270], [250, 270],   # shoulders, elbows, wrists
    [345, 270], [295, 270], [350, 350], [290, 350], [352, 430], [288, 430],   # hips, knees, ankles
], np.float32)
L_WRIST, L_ELBOW = 9, 7

# H36M-17 camera-frame metres (x right, y down, z forward), pelvis at 0, facing the camera (-z): the
# left side is at +x. Arms hang out sideways so every limb is easy to find in the panel.
POSE = np.array([
    [0, 0, 0], [-0.12, 0, 0], [-0.13, 0.45, 0], [-0.13, 0.9, 0],              # pelvis, right leg
    [0.12, 0, 0], [0.13, 0.45, 0], [0.13, 0.9, 0],                             # left leg
    [0, -0.25, 0], [0, -0.5, 0], [0, -0.6, -0.05], [0, -0.75, 0],              # spine .. head
    [0.18, -0.5, 0], [0.42, -0.45, 0], [0.62, -0.4, 0],                        # left arm
    [-0.18, -0.5, 0], [-0.42, -0.45, 0], [-0.62, -0.4, 0],                     # right arm
], np.float32)


def person(track_id=3, keypoints=COCO, scores=None, pose=None, interpolated=False, x_shift=0.0):
    scores = np.full(17, 0.9, np.float32) if scores is None else np.asarray(scores, np.float32)
    return PersonFrame(track_id, keypoints + np.float32([x_shift, 0]), scores, pose, interpolated)


def overlay(people, **cfg):
    cfg = {"layout": "overlay", "line_thickness": 3, "show_ids": False, **cfg}
    return Renderer(RenderConfig(**cfg), W, H, 30.0).render(np.zeros((H, W, 3), np.uint8), people, 0.0).copy()


def panel(people, time=0.0, **cfg):
    """The 3D panel of a "side" render (grid and ids off, so only skeleton pixels differ from BACKGROUND)."""
    cfg = {"grid": False, "show_ids": False, "orbit_deg_per_s": 0.0, **cfg}
    out = Renderer(RenderConfig(**cfg), W, H, 30.0).render(np.zeros((H, W, 3), np.uint8), people, time)
    return out[:H, W:W + H].astype(int)


def patch(image, xy, r=2):
    x, y = int(xy[0]), int(xy[1])
    return image[y - r:y + r + 1, x - r:x + r + 1]


def hue(bgr):
    return int(cv2.cvtColor(np.uint8([[bgr]]), cv2.COLOR_BGR2HSV)[0, 0, 0])


def test_track_color_stable_and_distinct():
    colors = [track_color(i) for i in range(21)]
    assert colors == [track_color(i) for i in range(21)]
    assert all(len(c) == 3 and all(isinstance(v, int) and 0 <= v <= 255 for v in c) for c in colors)
    dists = [np.linalg.norm(np.subtract(a, b)) for a, b in itertools.combinations(colors, 2)]
    assert min(dists) > 40
    assert min(max(c) for c in colors) > 150          # readable on a dark background


def test_bones_drawn_in_track_colour():
    img = overlay([person(5)])
    color = track_color(5)
    # The shoulder line is a centre bone: exactly the track colour at its middle.
    assert np.abs(img[150, 320].astype(int) - color).max() <= 2
    # Upper arms: left lighter, right darker, both the track's hue.
    left, right = img[180, 370].astype(int), img[180, 270].astype(int)
    assert left.sum() > np.sum(color) > right.sum() > 0
    assert abs(hue(left) - hue(color)) <= 3 and abs(hue(right) - hue(color)) <= 3
    for xy in COCO:                                    # every joint is drawn
        assert patch(img, xy).max() > 0
    assert img[20:60, 20:200].max() == 0 and img[:, 500:].max() == 0   # nothing elsewhere


def test_low_confidence_joint_is_fainter_and_very_low_is_hidden():
    def wrist_brightness(score):
        scores = np.full(17, 0.9, np.float32)
        scores[L_WRIST] = score
        return patch(overlay([person(scores=scores)]), COCO[L_WRIST], 3).max()

    confident, faint, hidden = wrist_brightness(0.9), wrist_brightness(0.2), wrist_brightness(0.01)
    assert 0 < faint < 0.7 * confident
    assert hidden == 0


def test_nan_keypoints_draw_nothing():
    kp = np.full((17, 2), np.nan, np.float32)
    nothing = overlay([person(keypoints=kp, scores=np.zeros(17))], show_ids=True)
    assert nothing.max() == 0
    kp = COCO.copy()
    kp[L_WRIST] = np.nan
    img = overlay([person(keypoints=kp)])
    assert patch(img, COCO[L_WRIST], 3).max() == 0     # no wrist dot, no forearm end
    assert patch(img, COCO[L_ELBOW]).max() > 0


def test_interpolated_frames_have_hollow_joints():
    kp = np.full((17, 2), np.nan, np.float32)
    kp[0] = (100, 100)                                 # a lone nose: a dot and no bones
    solid = overlay([person(keypoints=kp)], line_thickness=4)
    hollow = overlay([person(keypoints=kp, interpolated=True)], line_thickness=4)
    full = max(track_color(3))
    assert solid[100, 100].max() >= full - 2 and hollow[100, 100].max() < 0.3 * full
    assert patch(hollow, (100, 100), 6).max() >= full - 2    # but the ring is there


def test_id_label_drawn_above_head():
    img = overlay([person(7)], show_ids=True)
    above = img[60:100, 280:360]
    assert (np.abs(above.astype(int) - track_color(7)).max(axis=2) <= 2).sum() > 50


@pytest.mark.parametrize("layout, size, expected", [
    ("side", (1920, 1080), (3000, 1080)),
    ("pip", (1920, 1080), (1920, 1080)),
    ("overlay", (1920, 1080), (1920, 1080)),
    ("side", (641, 359), (1002, 360)),
    ("pip", (641, 359), (642, 360)),
])
def test_output_size_per_layout(layout, size, expected):
    renderer = Renderer(RenderConfig(layout=layout), *size, 25.0)
    assert renderer.output_size == expected
    out = renderer.render(np.zeros((size[1], size[0], 3), np.uint8), [person(pose=POSE)], 1.0)
    assert out.shape == (expected[1], expected[0], 3) and out.dtype == np.uint8


def test_side_panel_size_option_and_input_untouched():
    renderer = Renderer(RenderConfig(panel_size=300), W, H, 30.0)
    assert renderer.output_size == (W + 300, H)
    frame = np.full((H, W, 3), 7, np.uint8)
    renderer.render(frame, [person(pose=POSE)], 0.0)
    assert (frame == 7).all()
    with pytest.raises(ShapeError):
        renderer.render(np.zeros((H, W + 2, 3), np.uint8), [], 0.0)
    with pytest.raises(ConfigError):
        RenderConfig(layout="sideways")


def _classes(img):
    """Masks of left-coloured (blue), right-coloured (red) and neutral (grey/white) panel pixels."""
    b, r = img[..., 0], img[..., 2]
    left, right = (b > r + 60) & (b > 90), (r > b + 60) & (r > 90)
    neutral = (img.min(axis=2) > 100) & (img.max(axis=2) - img.min(axis=2) < 30)
    return left, right, neutral


def test_panel_person_upright_and_not_mirrored():
    img = panel([person(pose=POSE)])
    left, right, neutral = _classes(img)
    assert left.sum() > 50 and right.sum() > 50 and neutral.sum() > 50
    rows = lambda m: np.nonzero(m)[0]                  # noqa: E731
    cols = lambda m: np.nonzero(m)[1]                  # noqa: E731
    limbs = left | right
    assert rows(neutral).min() < rows(limbs).min()     # the head is the top of the person
    assert rows(limbs).max() > rows(neutral).max()     # the feet are below the pelvis
    # Facing the virtual camera (azimuth 0 = the real camera): the left arm is on screen right.
    assert cols(left).mean() > cols(neutral).mean() > cols(right).mean()
    # Seen from behind, left is on screen left: the orbit is a rotation, never a mirror.
    left, right, _ = _classes(panel([person(pose=POSE)], azimuth_deg=180.0))
    assert cols(left).mean() < cols(right).mean()


def test_orbit_quarter_turn_sees_the_person_from_their_left():
    reach = POSE.copy()
    reach[[12, 15], 2], reach[[13, 16], 2] = -0.25, -0.5      # both arms reach towards the real camera
    reach[[12, 13], 0], reach[[15, 16], 0] = 0.18, -0.18
    left, right, neutral = _classes(panel([person(pose=reach)], azimuth_deg=90.0))
    cols, centre = np.nonzero(left | right)[1], np.nonzero(neutral)[1].mean()
    # The camera stands at the person's left, so the person faces screen left: the arms point that way.
    assert centre - cols.min() > 3 * (cols.max() - centre)


def test_two_people_do_not_overlap_in_panel():
    a = person(1, pose=POSE, x_shift=-0.25 * W)
    b = person(2, pose=POSE, x_shift=0.25 * W)
    mask_a = (panel([a]) != BACKGROUND).any(axis=2)
    mask_b = (panel([b]) != BACKGROUND).any(axis=2)
    both = (panel([a, b]) != BACKGROUND).any(axis=2)
    assert mask_a.sum() > 100 and mask_b.sum() > 100
    assert np.nonzero(mask_a)[1].max() < np.nonzero(mask_b)[1].min()
    assert (both == (mask_a | mask_b)).mean() > 0.999


def test_person_without_pose_not_in_panel():
    assert (panel([person(pose=None)]) == BACKGROUND).all()


@pytest.mark.parametrize("orbit, changes", [(10.0, True), (0.0, False)])
def test_orbit_moves_camera(orbit, changes):
    kw = {"orbit_deg_per_s": orbit, "grid": True}
    start, later = panel([person(pose=POSE)], 0.0, **kw), panel([person(pose=POSE)], 5.0, **kw)
    assert (np.abs(start - later).max() > 50) == changes


def test_frames_of_looks_up_people_per_frame():
    def track(tid, frames):
        t = len(frames)
        kp = np.broadcast_to(COCO, (t, 17, 2)).copy() + np.arange(t, dtype=np.float32)[:, None, None]
        return Track(tid, np.array(frames, np.int64), kp, np.full((t, 17), 0.8, np.float32),
                     np.array([f == frames[-1] for f in frames]), np.zeros((t, 17, 3), np.float32))

    lookup = frames_of([track(4, [0, 1, 2]), track(9, [2, 3])])
    assert [p.track_id for p in lookup(0)] == [4]
    assert sorted(p.track_id for p in lookup(2)) == [4, 9]
    assert lookup(7) == [] and lookup(-1) == []
    nine = next(p for p in lookup(3) if p.track_id == 9)
    assert np.array_equal(nine.keypoints2d, COCO + 1) and nine.interpolated
    assert nine.pose3d.shape == (17, 3) and not lookup(1)[0].interpolated
