"""Stage 6 drawing speed: our OpenCV renderer against a matplotlib 3D panel, 1920x1080, 1 and 5 people.

For each person count it prints the median ms/frame (after a warm-up) of

* ``Renderer.render`` -- the whole composed frame ("side" layout: video with 2D skeletons + 1080x1080
  3D panel with grid, orbiting camera),
* ``Pose3DPanel.draw`` -- our 3D panel alone,
* matplotlib -- ``mpl_toolkits.mplot3d`` on the Agg backend drawing the same skeletons and floor grid
  into a figure of the same panel size, ``fig.canvas.draw()`` + buffer to a BGR numpy array. Artists are
  created once and only their data and the view angle change per frame (matplotlib's fast path).

and the ratios matplotlib / ours (the product requirement is >= 10x for the whole frame). Wall time and
CPU time of the timing thread are both shown; on a busy machine the CPU-time ratio is the steadier one.

Usage:
    python benchmarks/render_speed.py                    # 100 frames ours, 30 frames matplotlib
    python benchmarks/render_speed.py --frames 200 --mpl-frames 50
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.render.renderer import Renderer
from pipeline.render.style import PersonFrame, RenderConfig
from pipeline.skeleton import H36M17

W, H, FPS = 1920, 1080, 30.0
# H36M-17 camera-frame metres (y down), pelvis at 0, facing the camera.
POSE = np.array([
    [0, 0, 0], [-0.12, 0, 0], [-0.14, 0.44, -0.05], [-0.14, 0.88, 0.02], [0.12, 0, 0], [0.14, 0.44, 0],
    [0.14, 0.88, 0], [0, -0.25, 0], [0, -0.5, 0], [0, -0.62, -0.06], [0, -0.75, 0], [0.18, -0.5, 0],
    [0.3, -0.75, -0.05], [0.34, -1.0, -0.1], [-0.18, -0.5, 0], [-0.22, -0.24, -0.05], [-0.24, 0, -0.15],
], np.float32)
# COCO-17 pixel layout of the same person, pelvis at (0, 0), 1080p scale.
COCO = np.array([
    [0, -330], [12, -345], [-12, -345], [28, -335], [-28, -335], [60, -240], [-60, -240], [100, -330],
    [-70, -120], [110, -420], [-75, 0], [40, 0], [-40, 0], [45, 200], [-45, 200], [45, 400], [-45, 400],
], np.float32)
# The renderer's side colours (centre grey, left blue, right red) by each H36M bone's child joint.
BONE_RGB = ["#3296ff" if c in H36M17.left else "#f0463c" if c in H36M17.right else "#d7d7d7"
            for _, c in H36M17.bones]


def make_people(n: int, rng: np.random.Generator) -> list[PersonFrame]:
    """``n`` people spread across the frame, each turned and jittered a little."""
    people = []
    for k in range(n):
        a = rng.uniform(-0.8, 0.8)
        turn = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]], np.float32)
        pose = (POSE + rng.normal(0, 0.02, POSE.shape).astype(np.float32)) @ turn.T
        centre = np.float32([(k + 0.5) / n * W, 560])
        people.append(PersonFrame(k, COCO * 0.8 + centre, rng.uniform(0.2, 1.0, 17).astype(np.float32), pose))
    return people


def median_ms(fn, frames: int, warmup: int = 5) -> tuple[float, float]:
    """Median wall and CPU (this thread) time of ``fn(i)``, ms, over ``frames`` calls after ``warmup``.

    CPU time leaves out the time the thread waits for a core, so it stays meaningful on a busy machine.
    """
    for i in range(warmup):
        fn(i)
    wall, cpu = [], []
    for i in range(frames):
        t0, c0 = time.perf_counter(), time.thread_time()
        fn(i)
        wall.append(time.perf_counter() - t0)
        cpu.append(time.thread_time() - c0)
    return 1e3 * statistics.median(wall), 1e3 * statistics.median(cpu)


class MatplotlibPanel:
    """The same scene drawn by mplot3d: a square Agg figure with one 3D axes, artists reused."""

    def __init__(self, renderer: Renderer, people: list[PersonFrame]):
        self.cfg, self.panel = renderer.config, renderer.panel
        size = renderer.panel_size
        self.fig = Figure(figsize=(size / 100, size / 100), dpi=100, facecolor="#1a1c20")
        self.canvas = FigureCanvasAgg(self.fig)
        self.ax = self.fig.add_axes((0, 0, 1, 1), projection="3d", facecolor="#1a1c20")
        self.ax.set_axis_off()
        half = self.cfg.scene_width_m / 2 + 0.5
        self.ax.set(xlim=(-half, half), ylim=(-half, half), zlim=(0, 2 * half))
        self.ax.set_box_aspect((1, 1, 1), zoom=1.8)            # people about as large as in ours
        for t in np.arange(-half, half + 1e-6, self.cfg.grid_step_m):      # floor grid
            self.ax.plot([-half, half], [t, t], [0, 0], color="#46494e", lw=0.8)
            self.ax.plot([t, t], [-half, half], [0, 0], color="#46494e", lw=0.8)
        self.lines = [[self.ax.plot([], [], [], color=c, lw=2.5)[0] for c in BONE_RGB] for _ in people]

    def draw(self, people: list[PersonFrame], time_s: float) -> np.ndarray:
        """Update the skeletons and view, render, return (size, size, 3) uint8 BGR."""
        for lines, p in zip(self.lines, people):
            pose = self.panel.place(p)
            xyz = np.stack([pose[:, 0], pose[:, 2], -pose[:, 1]], axis=1)    # y-down camera -> z-up
            for line, (i, j) in zip(lines, H36M17.bones):
                line.set_data_3d(xyz[[i, j], 0], xyz[[i, j], 1], xyz[[i, j], 2])
        self.ax.view_init(elev=self.cfg.elevation_deg, azim=-90 + self.cfg.orbit_deg_per_s * time_s)
        self.canvas.draw()
        rgba = np.asarray(self.canvas.buffer_rgba())
        return np.ascontiguousarray(rgba[..., 2::-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=100, help="timed frames for our renderer")
    parser.add_argument("--mpl-frames", type=int, default=30, help="timed frames for matplotlib")
    parser.add_argument("--save", help="write the 5-person panels to SAVE_ours.png and SAVE_mpl.png")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (H, W, 3), dtype=np.uint8)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"{W}x{H}, layout side (panel {H}x{H}), {os.cpu_count()} CPUs, load average {load:.1f}, "
          f"matplotlib {matplotlib.__version__}")
    print(f"{'':>6} {'-------- wall ms --------':>27} {'--------- cpu ms ---------':>28}")
    print(f"{'people':>6} {'render':>8} {'panel':>8} {'mpl':>8} {'render':>8} {'panel':>8} {'mpl':>8}"
          f"   mpl/render  mpl/panel (cpu)")
    for n in (1, 5):
        people = make_people(n, rng)
        renderer = Renderer(RenderConfig(), W, H, FPS)
        ours = median_ms(lambda i: renderer.render(image, people, i / FPS), args.frames)
        view = np.empty((H, H, 3), np.uint8)
        panel = median_ms(lambda i: renderer.panel.draw(view, people, i / FPS), args.frames)
        mpl_panel = MatplotlibPanel(renderer, people)
        mpl = median_ms(lambda i: mpl_panel.draw(people, i / FPS), args.mpl_frames, warmup=2)
        if n == 5 and args.save:
            import cv2
            cv2.imwrite(f"{args.save}_ours.png", renderer.render(image, people, 0.0)[:, W:])
            cv2.imwrite(f"{args.save}_mpl.png", mpl_panel.draw(people, 0.0))
        print(f"{n:>6} {ours[0]:>8.2f} {panel[0]:>8.2f} {mpl[0]:>8.1f} {ours[1]:>8.2f} {panel[1]:>8.2f} "
              f"{mpl[1]:>8.1f}   {mpl[1] / ours[1]:>9.1f}x {mpl[1] / panel[1]:>9.1f}x")

if __name__ == "__main__":
    main()
