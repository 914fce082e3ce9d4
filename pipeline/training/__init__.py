"""Training: mocap readers, virtual cameras, training pairs, losses and the trainers. Never imported by inference."""


