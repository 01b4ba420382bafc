"""Paint colours the built-in scenes draw from (linear RGB in [0, 1])."""

import numpy as np

PAINTS = np.array(
    [
        [0.80, 0.10, 0.08],  # red
        [0.92, 0.76, 0.10],  # yellow
        [0.12, 0.55, 0.22],  # green
        [0.16, 0.32, 0.76],  # blue
        [0.95, 0.45, 0.08],  # orange
        [0.72, 0.72, 0.74],  # silver
        [0.93, 0.93, 0.90],  # white
        [0.20, 0.20, 0.22],  # dark grey
    ]
)
