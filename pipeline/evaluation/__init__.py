"""Evaluation: metrics, held-out protocols, rendered clips and ablations. Never imported by inference."""


