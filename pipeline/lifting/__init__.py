"""Stage 5: the temporal lifter, its checkpoints, the pose bank, the trajectory model and the world frame."""


