"""Sample 3D Gaussians from a trained RealEstate10K student: a source frame (or any image + intrinsics) → N samples →
`.ply` files and a short fly-through animation per sample (and the teacher's prediction, for comparison).

    uv run apps/re10k/sample.py runs/re10k-cpu-demo                     # source frame of the split file's row 0
    uv run apps/re10k/sample.py runs/re10k --row 120 --num-samples 8
    uv run apps/re10k/sample.py runs/re10k --image room.jpg --intrinsics 0.47 0.84 0.5 0.5 --format mp4

The image is resized to the run's image size; `--intrinsics` are RealEstate10K's normalized `fx fy cx cy` (row 0 of K
divided by the width, row 1 by the height), otherwise a horizontal field of view with square pixels is assumed.
Gaussians live in the source camera's frame (OpenCV: x right, y down, z forward). The fly-through moves forward into
the scene and back while swaying sideways and turning, scaled by the median depth of the teacher's Gaussians.
Samples differ only by their starting noise (`--seed`).
"""

import sys

from app_re10k import APP
from splat_apps import sample_main

if __name__ == "__main__":
    sys.exit(sample_main(APP, __doc__))
