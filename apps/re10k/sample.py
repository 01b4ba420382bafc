"""Sample 3D Gaussians from a trained RealEstate10K student: a source frame (or any image) → the teacher's prediction
and N samples → `.ply` files and a fly-through each (forward into the scene and back, swaying and turning, scaled by
the median depth of the teacher's Gaussians; OpenCV axes of the source camera).

    uv run apps/re10k/sample.py runs/re10k-cpu-demo                     # source frame of the split file's row 0
    uv run apps/re10k/sample.py runs/re10k --row 120 --num-samples 8
    uv run apps/re10k/sample.py runs/re10k --image room.jpg --intrinsics 0.47 0.84 0.5 0.5 --format mp4

`--intrinsics` are RealEstate10K's normalized `fx fy cx cy` (without them: `--fov-degrees`, square pixels).
"""

import sys

from app_re10k import APP
from splat_apps import sample_main

if __name__ == "__main__":
    sys.exit(sample_main(APP, __doc__))
