"""Stages 2-3: people detection, identity tracking and 2D keypoints (YOLO + mmpose, or MediaPipe offline)."""


